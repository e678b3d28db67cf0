"""The engine puts the node it runs on (`own_node`, from SHIMSHIFT_NODE_NAME) last, in its Plan mode
report and in its rollout alike."""

from __future__ import annotations

import json

from shimshift.engine import Engine
from shimshift.model.status import NodePhase, Phase
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
