"""Per-zone limits: `spec.rollout.maxUnavailablePerZone` besides the global `maxUnavailable`, the zone
being a node's `spec.rollout.zoneLabel` value ("" without it), in `decide` and in the planned waves."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ConditionReason, MigrationStatus, NodePhase, NodeRecord
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Node
from shimshift.planning.gates import gate_lines
from shimshift.planning.report_markdown import render_markdown
from shimshift.planning.rollout import decide
from shimshift.planning.waves import fill_wave, plan_waves, wave_size, zone_limits
from tests.unit.conftest import minimal_manifest
from tests.unit.planning.factory import cluster, node
from tests.unit.planning.factory import spec as make_spec

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
ZONE = "topology.kubernetes.io/zone"


def migrate(**rollout: Any) -> NodeMigrationSpec:
    return make_spec(mode="Migrate", rollout=rollout)


def worker(name: str, zone: str | None, label: str = ZONE) -> Node:
    labels = {"pool": "w"} if zone is None else {"pool": "w", label: zone}
    return Node(name, labels=labels, runtime_version="docker://20.10.24")


TWO_ZONES = [
    worker("a1", "eu-1a"),
    worker("a2", "eu-1a"),
    worker("a3", "eu-1a"),
    worker("b1", "eu-1b"),
    worker("b2", "eu-1b"),
]


def test_a_full_zone_waits_and_the_wave_fills_from_the_other_zone() -> None:
    decision = decide(migrate(maxUnavailable=3, maxUnavailablePerZone=1), MigrationStatus(), TWO_ZONES, NOW)

    # a1 takes eu-1a's one place; a2 and a3 wait for their zone, b1 fills the wave; b2 waits for eu-1b
    assert decision.start == ("a1", "b1")
    assert decision.reason == ConditionReason.WAVE_STARTED
    assert decision.message == (
        "starting a1, b1; zone eu-1a at its limit (1/1); zone eu-1b at its limit (1/1)"
    )
    assert {r.name for r in decision.nodes if r.phase == NodePhase.IN_PROGRESS} == {"a1", "b1"}


def test_the_global_limit_still_holds_and_a_node_waiting_for_it_is_not_blamed_on_its_zone() -> None:
    decision = decide(migrate(maxUnavailable=1, maxUnavailablePerZone=2), MigrationStatus(), TWO_ZONES, NOW)

    assert decision.start == ("a1",)
    assert decision.message == "starting a1"


def test_one_full_zone_does_not_hold_the_rollout_while_another_has_nodes() -> None:
    nodes = [worker("a1", "eu-1a"), worker("a2", "eu-1a"), worker("b1", "eu-1b")]
    decision = decide(migrate(maxUnavailable=2, maxUnavailablePerZone=1), MigrationStatus(), nodes, NOW)

    assert decision.start == ("a1", "b1")
    assert decision.message == "starting a1, b1; zone eu-1a at its limit (1/1)"


def test_a_percentage_is_of_each_zones_selected_workers_rounded_down_at_least_1() -> None:
    nodes = [worker(f"a{i}", "eu-1a") for i in range(1, 5)] + [worker("b1", "eu-1b"), worker("b2", "eu-1b")]
    decision = decide(migrate(maxUnavailable=10, maxUnavailablePerZone="50%"), MigrationStatus(), nodes, NOW)

    # eu-1a: 50% of 4 is 2; eu-1b: 50% of 2 is 1
    assert decision.start == ("a1", "a2", "b1")
    assert "zone eu-1a at its limit (2/2)" in decision.message
    assert "zone eu-1b at its limit (1/1)" in decision.message

    small = decide(migrate(maxUnavailable=10, maxUnavailablePerZone="10%"), MigrationStatus(), nodes, NOW)
    assert small.start == ("a1", "b1")  # 10% of 4 and of 2 round down to 0: at least 1


def test_nodes_without_the_zone_label_form_one_zone() -> None:
    nodes = [worker("a1", "eu-1a"), worker("u1", None), worker("u2", None), worker("u3", None)]
    decision = decide(migrate(maxUnavailable=4, maxUnavailablePerZone=1), MigrationStatus(), nodes, NOW)

    assert decision.start == ("a1", "u1")
    assert decision.message == 'starting a1, u1; zone "" at its limit (1/1)'


def test_the_zone_label_is_configurable() -> None:
    nodes = [
        worker("a1", "r1", "example.com/rack"),
        worker("a2", "r1", "example.com/rack"),
        worker("b1", "r2"),
    ]
    spec = migrate(maxUnavailable=3, maxUnavailablePerZone=1, zoneLabel="example.com/rack")
    decision = decide(spec, MigrationStatus(), nodes, NOW)

    # b1 has no example.com/rack label: zone "", not its topology zone
    assert decision.start == ("a1", "b1")
    assert decision.message == "starting a1, b1; zone r1 at its limit (1/1)"


def test_without_a_per_zone_limit_zones_do_not_matter() -> None:
    decision = decide(migrate(maxUnavailable=3), MigrationStatus(), TWO_ZONES, NOW)

    assert decision.start == ("a1", "a2", "a3")
    assert decision.message == "starting a1, a2, a3"


def test_after_a_restart_nodes_in_flight_in_several_zones_finish_before_the_next_wave_keeps_the_limits() -> (
    None
):
    spec = migrate(maxUnavailable=3, maxUnavailablePerZone=1)
    # the status an operator restarted into: one node in flight in each zone
    status = MigrationStatus(
        nodes=(
            NodeRecord(name="a1", phase=NodePhase.IN_PROGRESS),
            NodeRecord(name="b1", phase=NodePhase.ROLLING_BACK),
        )
    )
    waiting = decide(spec, status, TWO_ZONES, NOW)
    assert waiting.start == ()
    assert waiting.reason == ConditionReason.NODES_IN_FLIGHT
    assert waiting.message == "migrating a1, b1"

    done = MigrationStatus(
        nodes=(
            NodeRecord(name="a1", phase=NodePhase.SUCCEEDED),
            NodeRecord(name="b1", phase=NodePhase.ROLLED_BACK),
        )
    )
    nxt = decide(migrate(maxUnavailable=3, maxUnavailablePerZone=1, maxFailures=1), done, TWO_ZONES, NOW)
    assert nxt.start == ("a2", "b2")
    assert nxt.message == "starting a2, b2; zone eu-1a at its limit (1/1)"


def test_a_percentage_per_zone_counts_finished_nodes_of_the_zone_as_selected() -> None:
    nodes = [worker(f"a{i}", "eu-1a") for i in range(1, 5)]
    done = MigrationStatus(
        nodes=(
            NodeRecord(name="a1", phase=NodePhase.SUCCEEDED),
            NodeRecord(name="a2", phase=NodePhase.SUCCEEDED),
        )
    )
    decision = decide(migrate(maxUnavailable=4, maxUnavailablePerZone="50%"), done, nodes, NOW)

    assert decision.start == ("a3", "a4")  # 50% of the zone's 4 selected workers, not of the 2 pending


def test_the_planned_waves_keep_to_the_per_zone_limit_as_the_rollout_does() -> None:
    spec = migrate(maxUnavailable=3, maxUnavailablePerZone=1)
    waves = plan_waves(spec.rollout, TWO_ZONES)
    assert [w.nodes for w in waves] == [("a1", "b1"), ("a2", "b2"), ("a3",)]

    # the rollout, pass after pass, starts the same waves
    records: tuple[NodeRecord, ...] = ()
    started = []
    for _ in range(3):
        decision = decide(spec, MigrationStatus(nodes=records), TWO_ZONES, NOW)
        started.append(decision.start)
        records = tuple(
            NodeRecord(name=r.name, phase=NodePhase.SUCCEEDED) if r.phase == NodePhase.IN_PROGRESS else r
            for r in decision.nodes
        )
    assert started == [w.nodes for w in waves]


@settings(max_examples=200, deadline=None)
@given(
    zones=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=40),
    global_limit=st.sampled_from([1, 2, 5, "30%", "100%"]),
    zone_limit=st.sampled_from([1, 2, 3, "10%", "50%", "100%"]),
)
def test_planned_waves_are_the_rollouts_waves_and_keep_both_limits(
    zones: list[str | None], global_limit: int | str, zone_limit: int | str
) -> None:
    rollout = migrate(maxUnavailable=global_limit, maxUnavailablePerZone=zone_limit).rollout
    nodes = [worker(f"n{i:02}", z) for i, z in enumerate(zones)]
    zone = {n.name: n.labels.get(ZONE, "") for n in nodes}
    limits = zone_limits(rollout, zone.values())
    assert limits is not None
    size = wave_size(rollout, len(nodes))

    waves = [w.nodes for w in plan_waves(rollout, nodes)]

    assert sorted(n for w in waves for n in w) == sorted(zone)  # every worker once
    for w in waves:
        assert 1 <= len(w) <= size
        for z, limit in limits.items():
            assert sum(1 for n in w if zone[n] == z) <= limit
    # the same waves as the rollout's fill, wave after wave, of the pending nodes in name order
    pending = sorted(zone)
    expected = []
    while pending:
        taken = fill_wave(pending, size, zone, limits).nodes
        expected.append(taken)
        pending = [n for n in pending if n not in taken]
    assert waves == expected


def test_many_nodes_in_one_zone_plan_quickly_in_waves_of_the_zone_limit() -> None:
    nodes = [worker(f"n{i:04}", "eu-1a") for i in range(3000)] + [worker("z", "eu-1z")]
    waves = plan_waves(migrate(maxUnavailable=100, maxUnavailablePerZone=2).rollout, nodes)
    assert len(waves) == 1500
    assert waves[0].nodes == ("n0000", "n0001", "z")


def test_the_plan_report_says_the_per_zone_limit_and_the_zones() -> None:
    c = cluster(
        [
            node("n1", labels={ZONE: "eu-1a"}),
            node("n2", labels={ZONE: "eu-1a"}),
            node("n3", labels={ZONE: "eu-1b"}),
            node("n4"),
        ]
    )
    report = build_plan(make_spec(rollout={"maxUnavailable": 4, "maxUnavailablePerZone": 1}), c, {}, NOW)

    line = gate_lines(report.rollout_gates)[4]
    assert line == (
        "Zones (topology.kubernetes.io/zone): at most 1 of a zone's workers in one wave "
        "(spec.rollout.maxUnavailablePerZone), besides spec.rollout.maxUnavailable; the selected workers are "
        "in 3 zone(s) (nodes without the label count as one); the waves keep to it."
    )
    assert f"- {line}" in render_markdown(report)
    assert [w.nodes for w in report.waves] == [("n1", "n3", "n4"), ("n2",)]

    plain = build_plan(make_spec(rollout={"maxUnavailable": 4}), c, {}, NOW)
    assert gate_lines(plain.rollout_gates)[4] == (
        "Zones: no per-zone limit (spec.rollout.maxUnavailablePerZone is not set)."
    )
    assert [w.nodes for w in plain.waves] == [("n1", "n2", "n3", "n4")]


def test_the_spec_defaults_the_zone_label_and_leaves_the_per_zone_limit_unset() -> None:
    rollout = make_spec().rollout
    assert rollout.max_unavailable_per_zone is None
    assert rollout.zone_label == ZONE
    given = make_spec(rollout={"maxUnavailablePerZone": "25%"}).rollout.max_unavailable_per_zone
    assert given is not None
    assert (given.value, given.percent) == (25, True)


BAD = [
    ({"maxUnavailablePerZone": 0}, "spec.rollout.maxUnavailablePerZone: must be at least 1 node, not 0"),
    (
        {"maxUnavailablePerZone": "0%"},
        "spec.rollout.maxUnavailablePerZone: must be a percentage from 1% to 100%, not 0%",
    ),
    (
        {"maxUnavailablePerZone": "101%"},
        "spec.rollout.maxUnavailablePerZone: must be a percentage from 1% to 100%, not 101%",
    ),
    ({"maxUnavailablePerZone": "half"}, "spec.rollout.maxUnavailablePerZone: invalid value 'half'"),
    ({"zoneLabel": "a/b/c"}, "spec.rollout.zoneLabel: invalid value 'a/b/c'"),
    ({"zoneLabel": ""}, "spec.rollout.zoneLabel"),
    ({"zoneLabel": "x" * 64}, "spec.rollout.zoneLabel: 'xxxx"),
]


@pytest.mark.parametrize(("rollout", "expected"), BAD, ids=[str(b[0]) for b in BAD])
def test_bad_zone_settings_are_rejected_naming_the_field(
    crd: dict[str, Any], rollout: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(minimal_manifest(rollout=rollout), crd)
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith(expected) for m in messages), messages
