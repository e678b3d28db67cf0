"""The engine puts the node it runs on (`own_node`, from SHIMSHIFT_NODE_NAME) last, in its Plan mode
report and in its rollout alike."""

from __future__ import annotations

import json
from dataclasses import replace

from shimshift.engine import Engine
from shimshift.model.status import ConditionReason, ConditionType, NodePhase, Phase
from shimshift.planning.cluster import Pod
from shimshift.planning.operatorpod import OPERATOR_NAME, OPERATOR_NAME_LABEL
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers


def engine(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, own_node: str) -> Engine:
    return Engine(
        cluster,
        lambda migration: nodes,
        config=EngineConfig(drain_pass_wait=5.0),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
        own_node=own_node,
    )


def test_the_plan_report_and_the_rollout_put_the_operators_node_last(clock: Clock) -> None:
    planned = FakeCluster(workers(5), clock)
    planned.create(manifest(mode="Plan", rollout={"maxUnavailable": 2}))
    engine(planned, FakeNodes(planned), clock, "w2").reconcile(planned.get("m"))
    report = json.loads(planned.reports["m"]["report.json"])
    waves = [tuple(w["nodes"]) for w in report["waves"]]
    assert waves == [("w1", "w3"), ("w4", "w5"), ("w2",)]
    assert [w["runsOperator"] for w in report["waves"]] == [False, False, True]

    cluster = FakeCluster(workers(5), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))
    operator = engine(cluster, nodes, clock, "w2")
    for _ in range(200):
        result = operator.reconcile(cluster.get("m"))
        if result.in_flight == 0 and result.phase == Phase.SUCCEEDED:
            break
        clock.advance(max(result.delay, 1.0))
    by_start: dict[str, list[str]] = {}
    for record in cluster.status().nodes:
        by_start.setdefault(record.started_at, []).append(record.name)
    started = [tuple(sorted(by_start[t])) for t in sorted(by_start)]
    assert started == waves  # what the plan said is what the rollout did
    assert [r.phase for r in cluster.status().nodes] == [NodePhase.SUCCEEDED] * 5
    assert not any(n.unschedulable for n in cluster.nodes.values())


def test_the_operators_node_waits_uncordoned_while_its_replacement_could_run_nowhere_else(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    pinned = Pod(
        "default",
        "shimshift-7d9-abc",
        "w2",
        labels={OPERATOR_NAME_LABEL: OPERATOR_NAME},
        node_selector={"kubernetes.io/hostname": "w2"},
    )
    cluster.operator_pods = (pinned,)
    cluster.create(manifest(rollout={"maxUnavailable": 1}))
    operator = engine(cluster, nodes, clock, "w2")
    for _ in range(200):
        result = operator.reconcile(cluster.get("m"))
        status = cluster.status()
        if (
            result.in_flight == 0
            and all(r.phase == NodePhase.SUCCEEDED for r in status.nodes if r.name != "w2")
            and len([r for r in status.nodes if r.name != "w2"]) == 2
        ):
            break
        clock.advance(max(result.delay, 1.0))
    operator.reconcile(cluster.get("m"))
    status = cluster.status()
    # the others migrated; the operator's node is not started, not cordoned, and the status says why
    assert {r.name: r.phase for r in status.nodes if r.name != "w2"} == {
        "w1": NodePhase.SUCCEEDED,
        "w3": NodePhase.SUCCEEDED,
    }
    own = status.node("w2")
    assert own is None or own.phase == NodePhase.PENDING, own
    assert status.phase == Phase.PROGRESSING
    progressing = next(c for c in status.conditions if c.type == ConditionType.PROGRESSING)
    assert progressing.reason == ConditionReason.OPERATOR_CANNOT_MOVE, progressing
    assert "w2 runs the operator and is not started" in status.message
    assert (
        "w1: nodeSelector kubernetes.io/hostname=w2" in status.message and "replicaCount: 2" in status.message
    )
    assert not cluster.nodes["w2"].unschedulable
    assert not [c for c in nodes.changes if c.startswith("w2:")], nodes.changes

    # the chart's nodeSelector widened: the replacement can run elsewhere, and the node migrates
    cluster.operator_pods = (replace(pinned, node_selector={}),)
    for _ in range(200):
        result = operator.reconcile(cluster.get("m"))
        if result.in_flight == 0 and result.phase == Phase.SUCCEEDED:
            break
        clock.advance(max(result.delay, 1.0))
    assert [r.phase for r in cluster.status().nodes] == [NodePhase.SUCCEEDED] * 3
