"""The node the acting operator runs on is migrated last: after every other selected node, worker or
control plane; the plan report's last wave says so, and the rollout starts the plan's waves in order."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ConditionReason, MigrationStatus, NodePhase, NodeRecord
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Node
from shimshift.planning.report_formats import render_report
from shimshift.planning.rollout import decide
from shimshift.planning.waves import plan_waves
from tests.unit.planning.factory import cluster, node
from tests.unit.planning.factory import spec as make_spec

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
ZONE = "topology.kubernetes.io/zone"
RUNS = "runs the operator: migrated last"


def migrate(**rollout: Any) -> NodeMigrationSpec:
    return make_spec(mode="Migrate", rollout=rollout)


def docker_node(name: str, *, cp: bool = False, zone: str | None = None) -> Node:
    labels = {} if zone is None else {ZONE: zone}
    if cp:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return Node(name, labels=labels, runtime_version="docker://20.10.24")


def rollout_order(
    spec: NodeMigrationSpec,
    nodes: list[Node],
    operator_node: str,
    *,
    blocked: dict[str, list[str]] | None = None,
    passes: int = 200,
) -> list[tuple[str, ...]]:
    """The waves `decide` starts, pass after pass, each wave succeeding before the next pass."""
    records: tuple[NodeRecord, ...] = ()
    started: list[tuple[str, ...]] = []
    for _ in range(passes):
        decision = decide(
            spec,
            MigrationStatus(nodes=records),
            nodes,
            NOW,
            blocked=blocked,
            operator_node=operator_node,
        )
        if not decision.start:
            break
        started.append(decision.start)
        records = tuple(
            NodeRecord(name=r.name, phase=NodePhase.SUCCEEDED) if r.phase == NodePhase.IN_PROGRESS else r
            for r in decision.nodes
        )
    return started


def test_the_operators_worker_goes_after_every_other_worker_and_the_control_plane() -> None:
    nodes = [docker_node(n) for n in ("w1", "w2", "w3", "w4")] + [docker_node("cp1", cp=True)]
    spec = migrate(maxUnavailable=2)

    waves = plan_waves(spec.rollout, nodes, "w2")

    assert [(w.nodes, w.control_plane, w.runs_operator) for w in waves] == [
        (("w1", "w3"), False, False),
        (("w4",), False, False),
        (("cp1",), True, False),
        (("w2",), False, True),
    ]
    assert rollout_order(spec, nodes, "w2") == [w.nodes for w in waves]


def test_the_operators_control_plane_node_goes_after_the_other_control_plane_nodes() -> None:
    nodes = [docker_node("w1"), docker_node("cp1", cp=True), docker_node("cp2", cp=True)]
    spec = migrate(maxUnavailable=1)

    waves = plan_waves(spec.rollout, nodes, "cp1")

    assert [(w.nodes, w.control_plane, w.runs_operator) for w in waves] == [
        (("w1",), False, False),
        (("cp2",), True, False),
        (("cp1",), True, True),
    ]
    assert rollout_order(spec, nodes, "cp1") == [w.nodes for w in waves]


def test_a_node_not_selected_or_unknown_changes_nothing() -> None:
    nodes = [docker_node("w1"), docker_node("w2")]
    spec = migrate(maxUnavailable=1)
    plain = plan_waves(spec.rollout, nodes)

    for elsewhere in ("", "cp-where-the-operator-runs"):
        assert plan_waves(spec.rollout, nodes, elsewhere) == plain
        assert rollout_order(spec, nodes, elsewhere) == [("w1",), ("w2",)]


def test_the_operators_node_alone_starts_at_once_and_says_why_it_is_last() -> None:
    decision = decide(migrate(), MigrationStatus(), [docker_node("w1")], NOW, operator_node="w1")
    assert decision.start == ("w1",)
    assert decision.message == f"starting w1; w1 {RUNS}"


def test_while_it_waits_the_message_says_so() -> None:
    nodes = [docker_node("w1"), docker_node("w2")]
    decision = decide(migrate(maxUnavailable=5), MigrationStatus(), nodes, NOW, operator_node="w1")
    assert decision.start == ("w2",)  # the wave has room, w1 still waits
    assert decision.message == f"starting w2; w1 {RUNS}"


def test_it_waits_for_a_node_held_back_by_blocking_pods_and_for_nodes_in_flight() -> None:
    nodes = [docker_node("w1"), docker_node("w2")]
    spec = migrate(maxUnavailable=5, blockingPodSelector="app=db")
    decision = decide(spec, MigrationStatus(), nodes, NOW, blocked={"w2": ["db/primary"]}, operator_node="w1")
    assert decision.start == ()
    assert decision.reason == ConditionReason.BLOCKED_BY_PODS
    assert decision.message.endswith(f"; w1 {RUNS}")

    in_flight = MigrationStatus(nodes=(NodeRecord(name="w2", phase=NodePhase.IN_PROGRESS),))
    assert decide(migrate(maxUnavailable=5), in_flight, nodes, NOW, operator_node="w1").start == ()
    failed = MigrationStatus(nodes=(NodeRecord(name="w2", phase=NodePhase.ROLLED_BACK),))
    # a rolled-back node is finished: with maxFailures not passed, the operator's node goes on
    assert decide(migrate(maxFailures=1), failed, nodes, NOW, operator_node="w1").start == ("w1",)


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", None])), min_size=1, max_size=14),
    which=st.integers(min_value=0, max_value=20),
    global_limit=st.sampled_from([1, 2, 3, "50%"]),
    zone_limit=st.sampled_from([None, 1, 2, "50%"]),
)
def test_the_planned_waves_are_what_the_rollout_starts(
    kinds: list[tuple[bool, str | None]], which: int, global_limit: int | str, zone_limit: int | str | None
) -> None:
    nodes = [docker_node(f"n{i:02}", cp=cp, zone=z) for i, (cp, z) in enumerate(kinds)]
    operator = nodes[which].name if which < len(nodes) else ""  # sometimes on no selected node
    rollout: dict[str, Any] = {"maxUnavailable": global_limit}
    if zone_limit is not None:
        rollout["maxUnavailablePerZone"] = zone_limit
    spec = migrate(**rollout)

    waves = plan_waves(spec.rollout, nodes, operator)

    assert rollout_order(spec, nodes, operator) == [w.nodes for w in waves]
    if operator:
        assert waves[-1].nodes == (operator,) and waves[-1].runs_operator
    assert sum(w.runs_operator for w in waves) == (1 if operator else 0)


def test_every_report_format_says_the_node_runs_the_operator_and_goes_last() -> None:
    c = cluster(nodes=[node("w1"), node("w2"), node("cp1", cp=True)])
    report = build_plan(make_spec(mode="Plan"), c, {}, NOW, name="m", operator_node="w1")

    assert [(w.nodes, w.runs_operator) for w in report.waves] == [
        (("w2",), False),
        (("cp1",), False),
        (("w1",), True),
    ]
    assert [n.name for n in report.nodes] == ["w2", "cp1", "w1"]
    w1 = next(n for n in report.nodes if n.name == "w1")
    assert w1.wave == 3
    assert [f.code for f in w1.findings if f.code == "RunsOperator"] == ["RunsOperator"]
    assert "| 3 | w1 | worker; runs the operator: migrated last |" in render_report(report, "markdown")
    assert f"<td>worker; {RUNS}</td>" in render_report(report, "html")
    as_json = json.loads(render_report(report, "json"))
    assert [w["runsOperator"] for w in as_json["waves"]] == [False, False, True]
    assert any(f["code"] == "RunsOperator" and f["node"] == "w1" for f in as_json["notes"])
