"""The rollback window against fake ports: a Succeeded node rolled back on request (annotation or
spec.undo) with the automatic rollback's guarantees, refusals, and the commit that ends the window."""

from __future__ import annotations

from typing import Any

import pytest

from shimshift.model import keys
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepState
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, Crash, FakeCluster, FakeNodes, manifest, workers

STEPS_UNDONE = ("configure", "images", "switch")


def _migrated(clock: Clock, count: int = 2, **spec: Any) -> tuple[FakeCluster, FakeNodes]:
    cluster = FakeCluster(workers(count, pods=["default/a"]), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": count}, **spec))
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    return cluster, nodes


def _record(cluster: FakeCluster, name: str) -> NodeRecord:
    record = cluster.status().node(name)
    assert record is not None
    return record


def _condition(cluster: FakeCluster, type_: str) -> tuple[str, str, str]:
    c = next(c for c in cluster.stored_status().conditions if c.type == type_)
    return c.status, c.reason, c.message


def _events(cluster: FakeCluster, reason: str) -> list[tuple[str | None, bool, str]]:
    return [(node, warning, message) for _, node, warning, r, message in cluster.events if r == reason]


def _assert_back_on_docker(cluster: FakeCluster, nodes: FakeNodes, name: str) -> None:
    node = cluster.nodes[name]
    assert node.runtime.startswith("docker://")
    assert not node.unschedulable, f"{name} left cordoned"
    assert (
        keys.LOCK_ANNOTATION not in node.annotations and keys.CORDONED_BY_ANNOTATION not in node.annotations
    )
    assert keys.RUNTIME_LABEL not in node.labels
    for op in STEPS_UNDONE:
        assert nodes.changes[f"{name}:undo-{op}"] == 1, (op, nodes.changes)
    assert nodes.changes[f"{name}:commit"] == 0


def test_an_annotated_succeeded_node_is_rolled_back_to_docker_and_the_request_removed(clock: Clock) -> None:
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].pods.append("default/b")  # scheduled there since its migration
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "please"

    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.SUCCEEDED
    _assert_back_on_docker(cluster, nodes, "w1")
    assert cluster.nodes["w1"].pods == []  # drained again before the kubelet went back to Docker
    assert cluster.changes["w1:cordon"] == 2  # the migration's cordon and the undo's
    assert keys.UNDO_ANNOTATION not in cluster.nodes["w1"].annotations
    w1 = _record(cluster, "w1")
    assert w1.phase == NodePhase.ROLLED_BACK and w1.undo_request == "annotation=please"
    assert w1.last_error is None
    assert [s.id for s in w1.steps][-2:] == [StepId.UNDO, StepId.ROLLBACK]
    assert all(s.state == StepState.DONE for s in w1.steps)
    assert _record(cluster, "w2").phase == NodePhase.SUCCEEDED  # untouched
    assert nodes.changes["w2:undo"] == 0
    assert [n for n, _, _ in _events(cluster, "NodeUndoStarted")] == ["w1"]
    ((node, warning, message),) = _events(cluster, "NodeUndone")
    assert node == "w1" and not warning and "on request" in message
    assert _events(cluster, "NodeRolledBack") == []  # not a failure: no rollback alert
    assert "rolled back to Docker on request (w1)" in cluster.stored_status().message
    summary = cluster.objects["m"]["status"]["summary"]
    assert summary["rolledBack"] == 1 and summary["succeeded"] == 1, summary
    assert cluster.objects["m"]["status"]["failedNodes"] == []  # undone on request is not failed


def test_a_node_listed_in_spec_undo_is_rolled_back_once_and_the_rollout_does_not_pause(clock: Clock) -> None:
    cluster, nodes = _migrated(clock, 3)
    cluster.set_spec("m", undo=["w2"])

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    run_to_end(cluster, nodes, clock)  # still listed: nothing runs again

    _assert_back_on_docker(cluster, nodes, "w2")
    assert nodes.changes["w2:undo"] == 1
    assert _record(cluster, "w2").undo_request == "spec.undo"
    assert _condition(cluster, "UndoRefused")[0] == "False"


def test_undo_of_a_node_that_did_not_succeed_is_refused_naming_the_node(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "configure"
    cluster.create(manifest(rollout={"maxUnavailable": 2, "maxFailures": 1}))
    run_to_end(cluster, nodes, clock)
    cluster.set_spec("m", undo=["w1", "nosuch"])

    run_to_end(cluster, nodes, clock)

    status, reason, message = _condition(cluster, "UndoRefused")
    assert status == "True" and reason == "UndoNotPossible"
    assert "node w1: its migration ended RolledBack, not Succeeded" in message
    assert "remove w1 from spec.undo" in message
    assert "node nosuch: not migrated by NodeMigration m" in message
    assert nodes.changes["w1:undo"] == 1  # only the automatic rollback's
    assert len(_events(cluster, "UndoRefused")) == 1  # once, not every pass


def test_commit_stops_docker_and_removes_backups_once_and_then_undo_is_refused(clock: Clock) -> None:
    cluster, nodes = _migrated(clock, docker="Stop")
    window = _condition(cluster, "RollbackWindow")
    assert window[0] == "True"
    assert "set spec.commit: true" in window[2] and "stops and disables Docker" in window[2]
    assert "/var/lib/shimshift/m/backup" in window[2]
    assert nodes.changes["w1:commit"] == 0  # Docker and the backups stay until the commit

    cluster.set_spec("m", commit=True)
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    run_to_end(cluster, nodes, clock)

    for name in ("w1", "w2"):
        assert nodes.changes[f"{name}:commit"] == 1
        record = _record(cluster, name)
        assert record.phase == NodePhase.SUCCEEDED and record.committed
        assert record.steps[-1].id == StepId.COMMIT and record.steps[-1].state == StepState.DONE
    assert sorted(str(n) for n, _, _ in _events(cluster, "NodeCommitted")) == ["w1", "w2"]
    assert _condition(cluster, "RollbackWindow")[:2] == ("False", "Committed")

    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "x"
    run_to_end(cluster, nodes, clock)

    assert nodes.changes["w1:undo"] == 0
    assert cluster.nodes["w1"].runtime.startswith("containerd://")
    status, _, message = _condition(cluster, "UndoRefused")
    assert status == "True" and "node w1: its rollback window is committed" in message
    assert f"remove the {keys.UNDO_ANNOTATION} annotation from node w1" in message
    assert cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] == "x"  # the admin's to remove


def test_an_undo_request_wins_over_a_commit_of_the_same_node(clock: Clock) -> None:
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = ""
    cluster.set_spec("m", commit=True)

    run_to_end(cluster, nodes, clock)

    _assert_back_on_docker(cluster, nodes, "w1")
    assert nodes.changes["w2:commit"] == 1


def test_a_drain_that_times_out_leaves_the_node_on_containerd_uncordoned(clock: Clock) -> None:
    cluster, nodes = _migrated(clock, drain={"timeout": "30s"})
    cluster.nodes["w1"].pods.append("default/guarded")
    cluster.nodes["w1"].blocked_pods["default/guarded"] = "guard-pdb"
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "1"

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    w1 = _record(cluster, "w1")
    assert w1.phase == NodePhase.SUCCEEDED and w1.undo_failed
    assert w1.last_error is not None and "timed out" in w1.last_error.message
    node = cluster.nodes["w1"]
    assert node.runtime.startswith("containerd://") and not node.unschedulable
    assert node.labels[keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
    assert keys.UNDO_ANNOTATION not in node.annotations and keys.LOCK_ANNOTATION not in node.annotations
    assert nodes.changes["w1:undo"] == 0
    assert [n for n, warning, _ in _events(cluster, "NodeUndoFailed") if warning] == ["w1"]


def test_plan_mode_neither_undoes_nor_commits(clock: Clock) -> None:
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "1"
    cluster.set_spec("m", mode="Plan", commit=True, undo=["w2"])

    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))

    assert nodes.changes["w1:undo"] == 0 and nodes.changes["w2:undo"] == 0
    assert nodes.changes["w1:commit"] == 0 and nodes.changes["w2:commit"] == 0
    assert not any(n.unschedulable for n in cluster.nodes.values())


def _undo_writes() -> int:
    clock = Clock()
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "1"
    before = cluster.writes
    run_to_end(cluster, nodes, clock)
    return cluster.writes - before


@pytest.mark.parametrize("write", range(1, _undo_writes() + 1))
def test_a_crash_at_any_write_of_an_undo_resumes_to_docker_with_one_undo_per_step(write: int) -> None:
    clock = Clock()
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "1"
    cluster.crash_on_write = cluster.writes + write
    engine = make_engine(cluster, nodes, clock)
    with pytest.raises(Crash):
        for _ in range(100):
            engine.reconcile(cluster.get("m"))
            clock.advance(1)
    cluster.crash_on_write = None

    run_to_end(cluster, nodes, clock)  # a new process: a new Engine with no memory

    _assert_back_on_docker(cluster, nodes, "w1")
    assert _record(cluster, "w1").phase == NodePhase.ROLLED_BACK


def test_a_crash_right_after_the_node_undo_resumes_without_undoing_twice(clock: Clock) -> None:
    cluster, nodes = _migrated(clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "1"
    nodes.crash_after = "w1:undo"
    engine = make_engine(cluster, nodes, clock)
    with pytest.raises(Crash):
        for _ in range(100):
            engine.reconcile(cluster.get("m"))
            clock.advance(1)

    run_to_end(cluster, nodes, clock)

    _assert_back_on_docker(cluster, nodes, "w1")
    assert nodes.changes["w1:undo"] == 2  # the call ran again, and changed nothing the second time
