"""End-to-end: the rollback window. A Succeeded node rolled back to Docker on request (the Node
annotation or spec.undo), through an operator SIGKILL in the middle of it, and the commit that ends the
window (Docker per spec.docker and the backups removed, once) after which an undo is refused.

The operator is the real process against the API emulator; the node side is `tests.e2e.simnodes`,
whose state files count every real node change (`undone` counts each step's own undo).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord

from shimshift.model import keys
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepState
from tests.e2e.conftest import Operator, eventually, migration, node, status_of, web, web_pods
from tests.e2e.history import min_healthy_after_ready
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

NODE_CHANGES = ("backup", "configure", "images", "recheck", "switch", "finish")  # the staged order
STEPS_UNDONE = {"configure": 1, "images": 1, "switch": 1}


def _record(cluster: KubeApi, name: str) -> NodeRecord | None:
    return status_of(cluster).node(name)


def _phase(cluster: KubeApi, name: str) -> NodePhase | None:
    record = _record(cluster, name)
    return record.phase if record is not None else None


def _migrated(cluster: KubeApi, operator: Operator, **spec: Any) -> None:
    cluster.seed([node("spare", labels={"pool": "other"}), node("w1"), node("w2")])
    cluster.seed(web(replicas=3, min_available=2))
    eventually(lambda: len(web_pods(cluster)) == 3, 20, "the web pods")
    operator.start()
    cluster.seed(migration(rollout={"maxUnavailable": 2}, **spec))
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 60, "the migration to succeed")


def _condition(cluster: KubeApi, type_: str) -> dict[str, Any]:
    raw = cluster.must_get("nodemigrations.shimshift.io", "m")["status"]
    return next((c for c in raw.get("conditions") or () if c["type"] == type_), {})


def _events(cluster: KubeApi, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", namespace="default") if e.get("reason") == reason]


def _assert_on_docker_released(cluster: KubeApi, name: str) -> None:
    obj = cluster.must_get("nodes", name)
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert not obj["spec"].get("unschedulable"), f"{name} left cordoned"
    annotations = obj["metadata"].get("annotations") or {}
    for key in (keys.LOCK_ANNOTATION, keys.CORDONED_BY_ANNOTATION, keys.UNDO_ANNOTATION):
        assert key not in annotations, (name, key)
    assert keys.RUNTIME_LABEL not in obj["metadata"]["labels"]


def test_an_annotated_succeeded_node_goes_back_to_docker_with_one_undo_per_step_uncordoned(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    operator = operator_factory()
    _migrated(cluster, operator)
    window = _condition(cluster, "RollbackWindow")
    assert window["status"] == "True" and "set spec.commit: true" in window["message"], window

    cluster.patch("nodes", "w1", {"metadata": {"annotations": {keys.UNDO_ANNOTATION: "please"}}})
    # a settled NodeMigration re-checks its nodes every 30 s: the annotation is seen within that
    eventually(lambda: _phase(cluster, "w1") == NodePhase.ROLLED_BACK, 60, "w1 rolled back on request")
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 20, "the NodeMigration settled")

    w1 = _record(cluster, "w1")
    assert w1 is not None and w1.undo_request == "annotation=please" and w1.last_error is None
    assert [s.id for s in w1.steps][-2:] == ["undo", "rollback"]
    assert all(s.state == StepState.DONE for s in w1.steps)
    _assert_on_docker_released(cluster, "w1")
    state = read_state(sim_dir, "w1")
    assert state["undone"] == STEPS_UNDONE, state
    assert state["changes"] == {**dict.fromkeys(NODE_CHANGES, 1), "undo": 1}, state["changes"]
    assert _phase(cluster, "w2") == NodePhase.SUCCEEDED
    assert read_state(sim_dir, "w2").get("undone") is None
    assert len(_events(cluster, "NodeUndone")) >= 1  # on the NodeMigration and on the Node
    assert _events(cluster, "NodeRolledBack") == []  # not a failure
    assert "rolled back to Docker on request (w1)" in status_of(cluster).message
    assert min_healthy_after_ready(cluster, 3) >= 2, "the PodDisruptionBudget was violated"
    assert not [r for r in cluster.requests if r.method == "DELETE" and r.resource == "pods"]
    assert operator.starts == 1


def _undo_started(rec: RequestRecord) -> bool:
    if rec.resource != "nodemigrationnodes" or rec.subresource != "status" or rec.name != "m.w1":
        return False
    status = (rec.body or {}).get("status") if isinstance(rec.body, dict) else None
    return isinstance(status, dict) and status.get("step") == "undo" and status.get("stepState") == "Started"


@pytest.mark.parametrize("point", ["undo-recorded-started", "inside-node-undo"])
def test_a_sigkill_in_the_middle_of_an_undo_resumes_to_docker_with_nothing_undone_twice(
    point: str, cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    operator = operator_factory(SHIMSHIFT_SIM_CRASH="w1:undo" if point == "inside-node-undo" else "")
    fired: list[RequestRecord] = []
    if point == "undo-recorded-started":

        def kill(rec: RequestRecord) -> None:
            fired.append(rec)
            assert operator.proc is not None
            os.kill(operator.proc.pid, signal.SIGKILL)  # the record landed, the step never ran

        cluster.faults.add_trigger(_undo_started, kill)
    _migrated(cluster, operator)

    cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"undo": ["w1"]}})
    if point == "undo-recorded-started":
        eventually(lambda: bool(fired), 30, "the undo recorded Started")
    else:
        eventually(lambda: (sim_dir / "crashed-w1-undo").exists(), 30, "the node undo")
    assert operator.proc is not None
    operator.proc.wait(timeout=10)
    assert operator.proc.returncode == -signal.SIGKILL
    operator.start()
    eventually(lambda: _phase(cluster, "w1") == NodePhase.ROLLED_BACK, 60, "w1 rolled back after the restart")

    assert operator.starts == 2
    _assert_on_docker_released(cluster, "w1")
    state = read_state(sim_dir, "w1")
    assert state["undone"] == STEPS_UNDONE, state
    assert state["changes"]["undo"] == 1
    assert state["undo-calls"] == (2 if point == "inside-node-undo" else 1)  # a re-run that changed nothing
    w1 = _record(cluster, "w1")
    assert w1 is not None and w1.undo_request == "spec.undo"
    assert _phase(cluster, "w2") == NodePhase.SUCCEEDED
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 20, "the NodeMigration settled")
    raw = cluster.must_get("nodemigrations.shimshift.io", "m")["status"]
    assert raw["inFlight"] == [] and raw["failedNodes"] == [], raw


def test_commit_runs_once_per_node_and_then_an_undo_is_refused(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    operator = operator_factory()
    _migrated(cluster, operator, docker="Stop")
    for name in ("w1", "w2"):
        assert "commit" not in read_state(sim_dir, name)["changes"]  # nothing before the commit
    message = _condition(cluster, "RollbackWindow")["message"]
    assert "stops and disables Docker" in message and "/var/lib/shimshift/m/backup" in message

    cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"commit": True}})

    def committed() -> bool:
        records = [_record(cluster, n) for n in ("w1", "w2")]
        return all(r is not None and r.committed and r.phase == NodePhase.SUCCEEDED for r in records)

    eventually(committed, 30, "both nodes committed")
    eventually(
        lambda: _condition(cluster, "RollbackWindow").get("status") == "False", 20, "the window closed"
    )
    operator.stop()  # a restart commits nothing again
    operator.start()
    cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"undo": ["w1"]}})
    eventually(lambda: _condition(cluster, "UndoRefused").get("status") == "True", 30, "the undo refused")

    refused = _condition(cluster, "UndoRefused")["message"]
    assert "node w1: its rollback window is committed" in refused and "remove w1 from spec.undo" in refused
    assert _events(cluster, "UndoRefused")
    for name in ("w1", "w2"):
        changes = read_state(sim_dir, name)["changes"]
        assert changes == {**dict.fromkeys(NODE_CHANGES, 1), "commit": 1}, (name, changes)
        obj = cluster.must_get("nodes", name)
        assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert not obj["spec"].get("unschedulable")
    assert _phase(cluster, "w1") == NodePhase.SUCCEEDED
    on = {e["involvedObject"]["name"] for e in _events(cluster, "NodeCommitted")}
    assert on == {"m", "w1", "w2"}, on  # on the NodeMigration and on each Node


DOCKERSHIM = "/var/run/dockershim.sock"
CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"  # spec.kubelet.runtimeEndpoint's default


@pytest.mark.realapi
def test_an_undo_puts_back_kubeadms_cri_socket_annotation_and_the_commit_drops_the_saved_value(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    """On the real API server (the operator as the chart's ServiceAccount): kubeadm nodes, whose
    cri-socket annotation the migration points at containerd. The value it had is kept on the Node
    while the rollback window is open, an undo of a Succeeded node puts it back (a `kubeadm upgrade`
    after the undo finds Docker's socket again), and the commit drops the saved value."""
    kubeadm = {"annotations": {keys.CRI_SOCKET_ANNOTATION: DOCKERSHIM}}
    nodes = [node("w1"), node("w2")]
    for n in nodes:
        n["metadata"].update(kubeadm)
    cluster.seed(nodes)
    operator_factory().start()
    cluster.seed(migration(rollout={"maxUnavailable": 2}))
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 60, "the migration to succeed")

    def annotations(name: str) -> dict[str, str]:
        return dict(cluster.must_get("nodes", name)["metadata"].get("annotations") or {})

    for name in ("w1", "w2"):
        saved = annotations(name)
        assert saved[keys.CRI_SOCKET_ANNOTATION] == CONTAINERD_SOCKET, saved
        assert saved[keys.CRI_SOCKET_BEFORE_ANNOTATION] == DOCKERSHIM, saved  # kept for an undo

    cluster.patch("nodes", "w1", {"metadata": {"annotations": {keys.UNDO_ANNOTATION: "yes"}}})
    # a settled NodeMigration re-checks its nodes every 30 s: the annotation is seen within that
    eventually(lambda: _phase(cluster, "w1") == NodePhase.ROLLED_BACK, 60, "w1 rolled back on request")
    _assert_on_docker_released(cluster, "w1")
    w1 = annotations("w1")
    assert w1[keys.CRI_SOCKET_ANNOTATION] == DOCKERSHIM, w1
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in w1, w1
    assert read_state(sim_dir, "w1")["undone"] == STEPS_UNDONE

    cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"commit": True}})

    def committed() -> bool:  # its commit step done, not only begun
        record = _record(cluster, "w2")
        return record is not None and record.committed and record.phase == NodePhase.SUCCEEDED

    eventually(committed, 30, "w2 committed")
    w2_record = _record(cluster, "w2")
    assert w2_record is not None and w2_record.steps[-1].id == "commit"
    assert w2_record.steps[-1].state == StepState.DONE
    w2 = annotations("w2")
    assert w2[keys.CRI_SOCKET_ANNOTATION] == CONTAINERD_SOCKET, w2
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in w2, w2  # nothing can be undone any more
    assert annotations("w1")[keys.CRI_SOCKET_ANNOTATION] == DOCKERSHIM  # the commit leaves w1 alone
    assert _phase(cluster, "w1") == NodePhase.ROLLED_BACK
