"""Crash anywhere, restart, and the rollout ends as if nothing happened: nothing changed twice.

A crash is simulated by `Crash` (a BaseException, so no `except` in the engine can swallow it) raised
at a status write (before or after every step, the points where the durable record changes) or right
after a node change was made and before it was recorded. Then a new Engine, with no memory, resumes.
"""

from __future__ import annotations

import pytest

from shimshift.model import keys
from shimshift.model.status import NodePhase, Phase
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, Crash, FakeCluster, FakeNodes, manifest, workers

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")


def _fleet(clock: Clock) -> tuple[FakeCluster, FakeNodes]:
    cluster = FakeCluster(workers(2, pods=["default/a"], daemonsets=("kube-system/proxy",)), clock)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))
    return cluster, FakeNodes(cluster)


def _writes_in_a_clean_run() -> int:
    clock = Clock()
    cluster, nodes = _fleet(clock)
    run_to_end(cluster, nodes, clock)
    return cluster.writes


def _assert_clean_end(cluster: FakeCluster, nodes: FakeNodes) -> None:
    status = cluster.status()
    assert status.phase == Phase.SUCCEEDED
    assert [n.phase for n in status.nodes] == [NodePhase.SUCCEEDED] * 2
    for name, node in cluster.nodes.items():
        assert not node.unschedulable, f"{name} left cordoned"
        assert keys.LOCK_ANNOTATION not in node.annotations
        assert cluster.changes[f"{name}:cordon"] == 1
        for op in NODE_CHANGES:
            assert nodes.changes[f"{name}:{op}"] == 1, (
                f"{name}:{op} changed {nodes.changes[f'{name}:{op}']} times"
            )
        assert nodes.changes[f"{name}:undo"] == 0
        # the DaemonSets recorded when the drain finished reached the verify, whatever the crash point
        assert cluster.daemonsets_expected[name] == ("kube-system/proxy",)


def _crash_then_resume(cluster: FakeCluster, nodes: FakeNodes, clock: Clock) -> None:
    engine = make_engine(cluster, nodes, clock)
    with pytest.raises(Crash):
        for _ in range(100):
            engine.reconcile(cluster.get("m"))
            clock.advance(1)
    cluster.crash_on_write = None
    run_to_end(cluster, nodes, clock)  # a new process: a new Engine with no memory


@pytest.mark.parametrize("write", range(1, _writes_in_a_clean_run() + 1))
def test_a_crash_at_any_status_write_resumes_without_changing_anything_twice(write: int) -> None:
    clock = Clock()
    cluster, nodes = _fleet(clock)
    cluster.crash_on_write = write

    _crash_then_resume(cluster, nodes, clock)

    _assert_clean_end(cluster, nodes)


@pytest.mark.parametrize("change", [f"w1:{op}" for op in NODE_CHANGES])
def test_a_crash_after_a_node_change_before_it_is_recorded_resumes_without_redoing_it(change: str) -> None:
    clock = Clock()
    cluster, nodes = _fleet(clock)
    nodes.crash_after = change

    _crash_then_resume(cluster, nodes, clock)

    _assert_clean_end(cluster, nodes)
