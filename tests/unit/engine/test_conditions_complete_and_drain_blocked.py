"""`Complete` (what `kubectl wait --for=condition=Complete` waits for) and `DrainBlocked` (a drain that
waits on a PodDisruptionBudget), as the engine writes them pass by pass."""

from __future__ import annotations

import datetime as dt

from shimshift.model.keys import StepId
from shimshift.model.status import (
    Condition,
    ConditionReason,
    NodePhase,
    NodeRecord,
    Phase,
    StepRecord,
    StepState,
)
from shimshift.planning.rollout import drain_blocked_condition
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers


def _condition(cluster: FakeCluster, type_: str) -> Condition:
    return next(c for c in cluster.status().conditions if c.type == type_)


def test_complete_is_true_exactly_when_the_rollout_succeeded_or_failed(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:verify"] = 1
    cluster.create(manifest(rollout={"maxUnavailable": 1}))
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    assert cluster.status().phase == Phase.PROGRESSING
    assert _condition(cluster, "Complete").status == "False"

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    complete = _condition(cluster, "Complete")
    assert (complete.status, complete.reason) == ("True", ConditionReason.MIGRATED)

    failing = FakeCluster(workers(2), clock)
    broken = FakeNodes(failing)
    broken.fail["w1"] = "switch"
    failing.create(manifest(rollout={"maxFailures": 1}))
    assert run_to_end(failing, broken, clock).phase == Phase.FAILED
    assert _condition(failing, "Complete").status == "True"


def test_complete_stays_false_while_paused_at_max_failures(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "switch"
    cluster.create(manifest())
    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED
    assert _condition(cluster, "Complete").status == "False"


def test_drain_blocked_names_the_budget_and_the_node_while_the_drain_waits(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked, FakeNode("w2")], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 2}, drain={"timeout": "1h"}))
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))

    waiting = _condition(cluster, "DrainBlocked")
    assert waiting.status == "True"
    assert waiting.reason == ConditionReason.POD_DISRUPTION_BUDGET
    assert waiting.message == "the drain of node w1 waits on PodDisruptionBudget shop/web-pdb"
    since = waiting.last_transition_time

    # a restarted operator (a new Engine, no memory) keeps it True, unchanged
    clock.advance(30)
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    again = _condition(cluster, "DrainBlocked")
    assert (again.status, again.last_transition_time) == ("True", since)

    del cluster.nodes["w1"].blocked_pods["shop/web-0"]  # the budget allows the eviction now
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    done = _condition(cluster, "DrainBlocked")
    assert (done.status, done.reason, done.message) == ("False", ConditionReason.NOT_BLOCKED, "")
    assert sum(1 for c in cluster.status().conditions if c.type == "DrainBlocked") == 1


def test_drain_blocked_is_false_once_the_drain_timed_out_and_failed_the_node(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "1m"}, staging="AfterCordon"))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    assert cluster.status().node("w1").phase == NodePhase.FAILED  # type: ignore[union-attr]
    assert _condition(cluster, "DrainBlocked").status == "False"


def _draining(name: str) -> NodeRecord:
    return NodeRecord(
        name,
        NodePhase.IN_PROGRESS,
        StepId.DRAIN,
        StepState.STARTED,
        steps=(StepRecord(StepId.DRAIN, StepState.STARTED),),
    )


def test_drain_blocked_stays_bounded_whatever_the_number_of_nodes_and_budgets() -> None:
    records = [_draining(f"w{i}") for i in range(1, 11)]
    waits = {f"w{i}": (f"ns/pdb-{i}", "ns/shared") for i in range(1, 11)}
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    c = drain_blocked_condition((), records, waits, now, 1)

    assert c.status == "True"
    assert c.message == (
        "the drains of nodes w1, w10, w2 and 7 more wait on PodDisruptionBudget ns/pdb-1, ns/pdb-10, "
        "ns/pdb-2 and 8 more"
    )
