"""SIGKILL the operator process at one point of a node's migration, restart it, and it still ends clean.

One run per point: each test case starts a fresh cluster and a fresh operator, kills the operator
exactly once at its point, starts it again, and lets it finish. The points are exact, not sampled:

- step boundaries: the API emulator SIGKILLs the operator right after it has committed the write of
  node w1's NodeMigrationNode status that records the first step as Started (before it acts) or a
  step as Done (the same write records the next step as Started, before it acts), before the
  operator sees the answer (`Faults.add_trigger`); and once more at
  the end of each step, when its work is done but the write of its Done record never lands;
- inside steps: right after a node change is made and before the operator could record it (the
  simulated node kills its own process: `SHIMSHIFT_SIM_CRASH`), and right after one of the step's
  own API writes is committed (the lock annotation, the cordon, an eviction, the completion label,
  the uncordon, the lock release).

Node w2 migrates at the same time (maxUnavailable 2), so each kill also lands somewhere in its
steps. Every real node change is counted in the simulated nodes' state files, so "nothing changed
twice" is checked from outside the operator; PDB safety is replayed from the emulator's history.
Every status write point is also covered in-process by tests/unit/engine/test_crash_resume.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord

from shimshift.model import keys
from shimshift.model.keys import StepId
from shimshift.model.spec import Staging
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepState
from shimshift.model.steporder import step_order
from tests.e2e.conftest import Operator, eventually, migration, node, status_of, web, web_pods
from tests.e2e.history import min_healthy_after_ready
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.timeout(120)]

NODE_CHANGES = ("backup", "configure", "images", "recheck", "switch", "finish")


def node_changes(staging: Staging) -> tuple[str, ...]:
    """The node changes a migration makes under `staging` (the re-check runs in the staged order only)."""
    return tuple(c for c in NODE_CHANGES if c in {str(s) for s in step_order(staging)})


Predicate = Callable[[RequestRecord], bool]


@dataclass(frozen=True)
class Point:
    """Where the operator dies: after a committed API request (`request`) or inside a node op (`sim`)."""

    id: str
    request: Predicate | None = None
    before: bool = False  # kill before the request is served (it never lands), not after it committed
    sim: str = ""  # the simulated node operation of w1 that kills its own process
    staging: Staging = Staging.BEFORE_CORDON  # spec.staging: which step order the migration runs


def recorded(step: StepId, state: StepState) -> Predicate:
    """The write of w1's NodeMigrationNode status that records its `step` in `state` (the first that
    holds it so: a Done goes in the same write as the next step's Started)."""

    def matches(rec: RequestRecord) -> bool:
        if rec.resource != "nodemigrationnodes" or rec.subresource != "status" or rec.name != "m.w1":
            return False
        if not isinstance(rec.body, dict):
            return False
        raw = {k: v for k, v in (rec.body.get("status") or {}).items() if v is not None}
        record = NodeRecord.from_storage({**raw, "name": "w1"})
        return record.state_of(step) == state

    return matches


def node_write(check: Callable[[dict[str, Any]], bool]) -> Predicate:
    """A write to Node w1 whose body passes `check`."""
    return lambda rec: (
        rec.resource == "nodes"
        and rec.name == "w1"
        and rec.subresource == ""
        and rec.method == "PATCH"
        and isinstance(rec.body, dict)
        and check(rec.body)
    )


def _annotations(body: dict[str, Any]) -> dict[str, Any]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def _prefix(staging: Staging) -> str:
    return "" if staging == Staging.BEFORE_CORDON else "after-cordon-"


BOUNDARIES = [
    point
    for staging in Staging
    for i, step in enumerate(step_order(staging))
    for point in (
        # a later step's Started is the write of the Done before it: that point is "<previous>-done"
        *(
            (
                Point(
                    f"{_prefix(staging)}{step}-started",
                    request=recorded(step, StepState.STARTED),
                    staging=staging,
                ),
            )
            if i == 0
            else ()
        ),
        # the step's work is all done, but its Done record never lands
        Point(
            f"{_prefix(staging)}{step}-finished-unrecorded",
            request=recorded(step, StepState.DONE),
            before=True,
            staging=staging,
        ),
        Point(f"{_prefix(staging)}{step}-done", request=recorded(step, StepState.DONE), staging=staging),
    )
]
INSIDE = [
    Point("inside-facts", sim="facts"),
    Point("inside-lock", request=node_write(lambda b: bool(_annotations(b).get(keys.LOCK_ANNOTATION)))),
    Point("inside-cordon", request=node_write(lambda b: (b.get("spec") or {}).get("unschedulable") is True)),
    Point("inside-drain"),  # the eviction of w1's web pod; its predicate needs the pod's name
    *(
        Point(f"inside-{op}", sim=op)
        for op in ("backup", "configure", "images", "recheck", "switch", "verify")
    ),
    *(
        Point(f"after-cordon-inside-{op}", sim=op, staging=Staging.AFTER_CORDON)
        for op in ("backup", "configure", "images", "switch")
    ),
    Point("inside-finish-node", sim="finish"),
    Point(
        "inside-finish-label",
        request=node_write(lambda b: keys.RUNTIME_LABEL in ((b.get("metadata") or {}).get("labels") or {})),
    ),
    Point(
        "inside-finish-uncordon",
        request=node_write(
            lambda b: "unschedulable" in (b.get("spec") or {}) and not b["spec"]["unschedulable"]
        ),
    ),
    Point(
        "inside-finish-unlock",
        request=node_write(
            lambda b: (
                keys.LOCK_ANNOTATION in _annotations(b) and _annotations(b)[keys.LOCK_ANNOTATION] is None
            )
        ),
    ),
]
ROLLBACK = [
    Point("verify-failed", request=recorded(StepId.VERIFY, StepState.FAILED)),
    Point("rollback-started", request=recorded(StepId.ROLLBACK, StepState.STARTED)),
    Point("inside-rollback-undo", sim="undo"),
    Point(
        "inside-rollback-uncordon",
        request=node_write(
            lambda b: "unschedulable" in (b.get("spec") or {}) and not b["spec"]["unschedulable"]
        ),
    ),
    Point("rollback-done", request=recorded(StepId.ROLLBACK, StepState.DONE)),
]


class Crash:
    """Arms one point, and restarts the operator once it has been killed there."""

    def __init__(self, cluster: KubeApi, operator: Operator, sim_dir: Path, point: Point) -> None:
        self.operator, self.sim_dir, self.point = operator, sim_dir, point
        self.fired: list[RequestRecord] = []
        if point.request is not None:

            def kill(rec: RequestRecord) -> None:
                self.fired.append(rec)
                assert operator.proc is not None
                os.kill(operator.proc.pid, signal.SIGKILL)  # before the answer leaves the emulator

            cluster.faults.add_trigger(point.request, kill, before=point.before)

    def happened(self) -> bool:
        if self.point.sim:
            return (self.sim_dir / f"crashed-w1-{self.point.sim}").exists()
        return bool(self.fired)

    def wait_and_restart(self) -> None:
        eventually(self.happened, 60, f"the operator to reach {self.point.id}", 0.02)
        assert self.operator.proc is not None
        self.operator.proc.wait(timeout=10)
        assert self.operator.proc.returncode == -signal.SIGKILL, self.operator.proc.returncode
        self.operator.start()


def _start(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path, point: Point, **env: str
) -> Crash:
    operator = operator_factory(SHIMSHIFT_SIM_CRASH=f"w1:{point.sim}" if point.sim else "", **env)
    crash = Crash(cluster, operator, sim_dir, point)
    operator.start()
    return crash


def _assert_node_released(cluster: KubeApi, name: str) -> dict[str, Any]:
    obj = cluster.get("nodes", name)
    assert obj is not None
    assert not obj["spec"].get("unschedulable"), f"{name} left cordoned"
    annotations = obj["metadata"].get("annotations") or {}
    assert keys.LOCK_ANNOTATION not in annotations, f"{name} left locked"
    assert keys.CORDONED_BY_ANNOTATION not in annotations
    return obj


def _assert_status_consistent(cluster: KubeApi, progress: str) -> None:
    """The stored summary and printer-column fields agree with the node records (the NodeMigrationNode
    objects; a node never started has none), and nothing is in flight."""
    raw = (cluster.get("nodemigrations.shimshift.io", "m") or {}).get("status") or {}
    started = status_of(cluster).summary()
    for key in ("inProgress", "succeeded", "failed", "rolledBack"):
        assert raw["summary"][key] == started[key], (key, raw["summary"], started)
    assert raw["inFlight"] == [], raw["inFlight"]
    assert raw["summary"]["progress"] == progress and raw["summary"]["inProgress"] == 0, raw["summary"]
    assert raw["currentNodes"] == "", raw["currentNodes"]


@pytest.mark.parametrize("point", [*BOUNDARIES, *INSIDE], ids=lambda p: p.id)
def test_a_sigkill_at_this_point_resumes_to_a_clean_migration_with_nothing_done_twice(
    point: Point, cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    # a node outside the migration first, and one web pod on each of spare, w1 and w2 (the pods'
    # anti-affinity; the real scheduler would otherwise put them all on the first node it can use); an
    # evicted pod's replacement waits for its node to be uncordoned, and until it runs the PDB
    # (minAvailable 2 of 3) refuses the other node's eviction: the two drains take turns
    cluster.seed([node("spare", labels={"pool": "other"})])
    cluster.seed([node("w1"), node("w2")])
    cluster.seed(web(replicas=3, min_available=2, one_per_node=True))

    def all_running() -> list[dict[str, Any]]:
        pods = web_pods(cluster)
        return pods if len(pods) == 3 and all(_running(p) for p in pods) else []

    pods = eventually(all_running, 20, "the web pods running")
    on_w1 = {p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == "w1"}
    placed = [(p["metadata"]["name"], p["spec"].get("nodeName")) for p in pods]
    assert on_w1, (placed, [(n["metadata"]["name"], n["spec"]) for n in cluster.list("nodes")])
    if point.id == "inside-drain":
        point = Point(point.id, request=lambda rec: rec.subresource == "eviction" and rec.name in on_w1)
    crash = _start(cluster, operator_factory, sim_dir, point)
    cluster.seed(migration(rollout={"maxUnavailable": 2}, staging=str(point.staging)))

    crash.wait_and_restart()
    eventually(
        lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.PAUSED, Phase.FAILED), 60, "the end"
    )

    operator = crash.operator
    status = status_of(cluster)
    assert status.phase == Phase.SUCCEEDED, (status, operator.logs()[-3000:])
    assert operator.starts == 2  # one kill, one restart
    for name in ("w1", "w2"):
        record = status.node(name)
        assert record is not None and record.phase == NodePhase.SUCCEEDED, record
        assert [s.id for s in record.steps] == list(step_order(point.staging)), record.steps
        assert all(s.state == StepState.DONE for s in record.steps), record.steps
        assert record.was_unschedulable is False
        obj = _assert_node_released(cluster, name)
        assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert obj["metadata"]["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
        changes = read_state(sim_dir, name)["changes"]
        assert changes == dict.fromkeys(node_changes(point.staging), 1), (name, changes)
    _assert_status_consistent(cluster, "2/2")
    eventually(lambda: sum(_running(p) for p in web_pods(cluster)) == 3, 20, "web pods running again")
    assert min_healthy_after_ready(cluster, 3) >= 2, "the PodDisruptionBudget was violated"
    assert not [r for r in cluster.requests if r.method == "DELETE" and r.resource == "pods"]
    spare = cluster.get("nodes", "spare")
    assert spare is not None and not spare["spec"].get("unschedulable")
    assert keys.RUNTIME_LABEL not in spare["metadata"]["labels"]


@pytest.mark.parametrize("point", ROLLBACK, ids=lambda p: p.id)
def test_a_sigkill_during_a_rollback_resumes_to_docker_uncordoned_with_one_undo(
    point: Point, cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1"), node("w2")])
    crash = _start(cluster, operator_factory, sim_dir, point, SHIMSHIFT_SIM_BREAK="w1")
    cluster.seed(migration())  # maxUnavailable 1, maxFailures 1: w1 fails, rolls back, the rollout pauses

    crash.wait_and_restart()
    eventually(
        lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.PAUSED, Phase.FAILED), 60, "the end"
    )

    status = status_of(cluster)
    assert status.phase == Phase.PAUSED, (status, crash.operator.logs()[-3000:])
    w1 = status.node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK, w1
    assert w1.last_error is not None and w1.last_error.step == "verify", w1.last_error
    assert [s.id for s in w1.steps][-1] == StepId.ROLLBACK and w1.steps[-1].state == StepState.DONE
    paused = next(c for c in status.conditions if c.type == "Paused")
    assert paused.status == "True" and paused.reason == "MaxFailures" and "w1" in paused.message
    obj = _assert_node_released(cluster, "w1")
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    changes = read_state(sim_dir, "w1")["changes"]
    assert changes == {"backup": 1, "configure": 1, "images": 1, "recheck": 1, "switch": 1, "undo": 1}, (
        changes
    )
    assert status.node("w2") is None  # never started: no NodeMigrationNode
    assert (cluster.get("nodemigrations.shimshift.io", "m") or {})["status"]["summary"]["pending"] == 1
    _assert_node_released(cluster, "w2")
    assert read_state(sim_dir, "w2")["changes"] == {}
    _assert_status_consistent(cluster, "0/2")


def test_the_crash_points_cover_both_edges_of_every_step_and_every_node_change() -> None:
    ids = {p.id for p in [*BOUNDARIES, *INSIDE, *ROLLBACK]}
    for staging in Staging:
        pre = _prefix(staging)
        order = step_order(staging)
        for i, step in enumerate(order):
            assert {f"{pre}{step}-finished-unrecorded", f"{pre}{step}-done"} <= ids
            # a step's Started is its own write for the first step, else the write of the Done before it
            started = f"{pre}{step}-started" if i == 0 else f"{pre}{order[i - 1]}-done"
            assert started in ids, (staging, step)
            assert {p.staging for p in BOUNDARIES if p.id.startswith(f"{pre}{step}-")} == {staging}
        for op in node_changes(staging):
            if op != "finish":  # the finish's node change is inside-finish-node, in either order
                assert any(p.sim == op and p.staging == staging for p in INSIDE), (staging, op)
    for op in (*NODE_CHANGES, "facts", "verify"):
        assert any(p.sim == op for p in INSIDE), op
    assert {"inside-lock", "inside-cordon", "inside-drain", "inside-rollback-undo"} <= ids
    print(f"\nSIGKILL points, one operator run each: {len(BOUNDARIES) + len(INSIDE) + len(ROLLBACK)}")


def _running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    return status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp")
