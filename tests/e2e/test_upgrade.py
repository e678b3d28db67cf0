"""An operator of this version takes over a rollout a previous version was running: that version kept
every node's record in the NodeMigration's `status.nodes[]`; this one moves them into NodeMigrationNode
objects and finishes the rollout without redoing any node's change or losing any record.

The cluster is left as the previous operator left it when it was replaced mid-rollout: w1 migrated
(labelled, on containerd, uncordoned), w2 locked and cordoned with its images step Started (its images
already moved: the change was made, its Done never recorded), w3 not started. The simulated nodes'
state files say which changes were made, so "nothing changed twice" is checked from outside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER_AFTER_CORDON, StepId
from shimshift.model.nodestate import record_of
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepRecord, StepState
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.simnodes import CONTAINERD, read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.timeout(180)]

T = "2026-01-01T00:00:00Z"
NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
#: The order the previous version ran (it cordoned and drained first); the NodeMigration it left has
#: no spec.staging, so this version resumes it in the staged order, whose next step not yet done after
#: the images is the re-check.
PREVIOUS_ORDER = STEP_ORDER_AFTER_CORDON


def _done(record: NodeRecord, steps: tuple[StepId, ...]) -> NodeRecord:
    for step in steps:
        record = record.with_step(StepRecord(step, StepState.DONE, T, T, f"{step} done"))
    return record


def _previous_version_status() -> dict[str, Any]:
    w1 = _done(
        NodeRecord("w1", NodePhase.SUCCEEDED, started_at=T, finished_at=T, was_unschedulable=False),
        PREVIOUS_ORDER,
    )
    before_images = PREVIOUS_ORDER[: PREVIOUS_ORDER.index(StepId.IMAGES)]
    w2 = _done(
        NodeRecord("w2", NodePhase.IN_PROGRESS, started_at=T, was_unschedulable=False), before_images
    ).with_step(StepRecord(StepId.IMAGES, StepState.STARTED, T))
    w3 = NodeRecord("w3")
    return {
        "phase": "Progressing",
        "observedGeneration": 1,
        "nodes": [r.for_storage() for r in (w1, w2, w3)],
        "summary": {"total": 3, "inProgress": 1, "succeeded": 1, "pending": 1, "progress": "1/3"},
        "currentNodes": "w2",
    }


def _sim_state(sim_dir: Path, name: str, done: tuple[str, ...]) -> None:
    sim_dir.mkdir(parents=True, exist_ok=True)
    (sim_dir / f"{name}.json").write_text(json.dumps({"done": list(done), "changes": dict.fromkeys(done, 1)}))


def test_a_rollout_a_previous_version_was_running_is_finished_with_every_record_kept(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed(
        [
            node("w1", labels={keys.RUNTIME_LABEL: keys.RUNTIME_LABEL_VALUE}),
            node("w2", unschedulable=True),
            node("w3"),
        ]
    )
    cluster.patch(
        "nodes", "w1", {"status": {"nodeInfo": {"containerRuntimeVersion": CONTAINERD}}}, subresource="status"
    )
    cluster.patch(
        "nodes",
        "w2",
        {"metadata": {"annotations": {keys.LOCK_ANNOTATION: "m", keys.CORDONED_BY_ANNOTATION: "m"}}},
    )
    _sim_state(sim_dir, "w1", NODE_CHANGES)
    _sim_state(sim_dir, "w2", ("backup", "configure", "images"))
    body = migration(rollout={"maxUnavailable": 1})
    body["metadata"]["finalizers"] = [keys.FINALIZER]
    body["status"] = _previous_version_status()
    cluster.seed(body)
    legacy_w1 = NodeRecord.from_storage(body["status"]["nodes"][0])

    operator = operator_factory()
    operator.start()
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to finish")

    stored = cluster.must_get("nodemigrations.shimshift.io", "m")["status"]
    assert "nodes" not in stored, "the previous version's list stays after its records moved"
    assert stored["summary"]["succeeded"] == 3
    children = {
        c["spec"]["node"]: c
        for c in cluster.list("nodemigrationnodes.shimshift.io", label_selector="shimshift.io/migration=m")
    }
    assert sorted(children) == ["w1", "w2", "w3"]
    assert record_of(children["w1"]) == legacy_w1  # w1's record moved as it was
    w2 = record_of(children["w2"])
    resumed = PREVIOUS_ORDER.index(StepId.IMAGES) + 1  # the steps it had, and the one it resumed: kept
    rest = [StepId.RECHECK, StepId.SWITCH, StepId.VERIFY, StepId.FINISH]
    assert w2.phase == NodePhase.SUCCEEDED and [s.id for s in w2.steps] == [*PREVIOUS_ORDER[:resumed], *rest]
    assert [s.started_at for s in w2.steps[:resumed]] == [T] * resumed
    for name in ("w1", "w2", "w3"):
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
        obj = cluster.must_get("nodes", name)
        assert not obj["spec"].get("unschedulable"), name
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {}), name
    assert (
        (children["w1"]["metadata"]["ownerReferences"][0]["uid"])
        == cluster.must_get("nodemigrations.shimshift.io", "m")["metadata"]["uid"]
    )
    assert "moved 2 node record(s) from status.nodes[]" in operator.logs()
