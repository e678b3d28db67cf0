"""The cluster autoscaler's `scale-down-disabled` annotation while a node is in flight: set with the
lock, removed with it (after success, after a rollback, on deletion), never an admin's value."""

from __future__ import annotations

import pytest

from shimshift.model import keys
from shimshift.model.status import NodePhase, Phase
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, Crash, FakeCluster, FakeNode, FakeNodes, manifest, workers

SDD = keys.SCALE_DOWN_DISABLED_ANNOTATION
BY = keys.SCALE_DOWN_DISABLED_BY_ANNOTATION


def _annotations(cluster: FakeCluster, node: str) -> dict[str, str]:
    return dict(cluster.nodes[node].annotations)


def test_a_node_in_flight_carries_it_and_loses_it_after_success(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:verify"] = 1  # w1 stays in flight for a pass
    cluster.create(manifest(rollout={"maxUnavailable": 1}))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))

    assert _annotations(cluster, "w1")[SDD] == "true"
    assert _annotations(cluster, "w1")[BY] == "m"
    assert SDD not in _annotations(cluster, "w2")  # not started yet

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    for name in ("w1", "w2"):
        assert SDD not in _annotations(cluster, name)
        assert BY not in _annotations(cluster, name)
        assert cluster.changes[f"{name}:scale-down-disabled"] == 1


@pytest.mark.parametrize("value", ["true", "false"])
def test_an_admins_value_is_kept_and_never_marked(clock: Clock, value: str) -> None:
    cluster = FakeCluster([FakeNode("w1", annotations={SDD: value})], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    assert BY not in _annotations(cluster, "w1")

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    assert _annotations(cluster, "w1")[SDD] == value
    assert BY not in _annotations(cluster, "w1")
    assert cluster.changes["w1:scale-down-disabled"] == 0


def test_it_is_removed_after_a_rollback(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "configure"
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    assert cluster.status().node("w1").phase == NodePhase.ROLLED_BACK  # type: ignore[union-attr]
    assert SDD not in _annotations(cluster, "w1")
    assert BY not in _annotations(cluster, "w1")


def test_a_node_left_for_inspection_under_manual_rollback_keeps_it_with_the_lock(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "switch"
    cluster.create(manifest(rollback="Manual"))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    assert _annotations(cluster, "w1")[keys.LOCK_ANNOTATION] == "m"
    assert _annotations(cluster, "w1")[SDD] == "true"
    assert _annotations(cluster, "w1")[BY] == "m"


def test_it_is_removed_when_the_migration_is_deleted_during_the_drain(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "1h"}))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    assert _annotations(cluster, "w1")[SDD] == "true"

    assert engine.reconcile(cluster.get("m"), stopping=True).in_flight == 0

    assert SDD not in _annotations(cluster, "w1")
    assert BY not in _annotations(cluster, "w1")


def test_a_crash_after_it_was_set_resumes_finding_it_set_by_itself(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.crash_after_lock = "w1"
    cluster.create(manifest())
    with pytest.raises(Crash):
        make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    assert _annotations(cluster, "w1")[BY] == "m"  # the node says whose value it is
    cluster.crash_after_lock = None

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED  # a new process, no memory

    assert SDD not in _annotations(cluster, "w1")
    assert BY not in _annotations(cluster, "w1")
    assert cluster.changes["w1:scale-down-disabled"] == 1  # set once, not again on resume


def test_a_lock_taken_over_from_a_deleted_migration_takes_its_value_over_too(clock: Clock) -> None:
    stale = {keys.LOCK_ANNOTATION: "gone", SDD: "true", BY: "gone"}
    cluster = FakeCluster([FakeNode("w1", annotations=stale)], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    assert SDD not in _annotations(cluster, "w1")
    assert BY not in _annotations(cluster, "w1")


def test_plan_mode_writes_nothing(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(mode="Plan"))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    engine.reconcile(cluster.get("m"))

    for name in ("w1", "w2"):
        assert _annotations(cluster, name) == {}
