"""Which nodes a NodeMigration touches, and in which waves."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.cluster import Node
from shimshift.planning.selection import NodeSkipReason, select_nodes
from shimshift.planning.waves import plan_waves
from tests.unit.planning.factory import cluster, node, spec


def names(nodes: Iterable[Node]) -> list[str]:
    return [n.name for n in nodes]


def test_selector_and_node_names_together_select_either() -> None:
    c = cluster([node("a", labels={"pool": "x"}), node("b"), node("c")])
    s = spec(nodeSelector={"matchLabels": {"pool": "x"}}, nodeNames=["c"])
    assert names(select_nodes(s, c.nodes).selected) == ["a", "c"]


def test_nodes_on_containerd_or_labelled_migrated_or_on_another_runtime_are_skipped_with_reasons() -> None:
    c = cluster(
        [
            node("docker"),
            node("ctrd", runtime="containerd://1.6.20"),
            node("labelled", labels={"shimshift.io/runtime": "containerd"}),
            node("crio", runtime="cri-o://1.25.0"),
        ]
    )
    sel = select_nodes(spec(), c.nodes)
    assert names(sel.selected) == ["docker"]
    assert {s.node: s.reason for s in sel.skipped} == {
        "ctrd": NodeSkipReason.ALREADY_CONTAINERD,
        "labelled": NodeSkipReason.MIGRATED_LABEL,
        "crio": NodeSkipReason.NOT_DOCKER,
    }


def test_control_plane_nodes_are_skipped_when_the_rollout_excludes_them() -> None:
    c = cluster([node("cp", cp=True), node("w")])
    sel = select_nodes(spec(rollout={"controlPlane": "Exclude"}), c.nodes)
    assert names(sel.selected) == ["w"]
    assert sel.skipped[0].reason == NodeSkipReason.CONTROL_PLANE_EXCLUDED


def test_a_named_node_that_does_not_exist_is_reported() -> None:
    sel = select_nodes(_named(["ghost"]), cluster().nodes)
    assert [(s.node, s.reason) for s in sel.skipped] == [("ghost", NodeSkipReason.NOT_FOUND)]


def _named(nodes: list[str]) -> NodeMigrationSpec:
    return dataclasses.replace(spec(nodeNames=nodes), node_selector=None)


def test_workers_go_in_waves_of_max_unavailable_then_control_plane_nodes_one_by_one() -> None:
    c = cluster([node("cp-2", cp=True), node("cp-1", cp=True)] + [node(f"w{i}") for i in range(5)])
    waves = plan_waves(spec(rollout={"maxUnavailable": 2}).rollout, c.nodes)
    assert [(w.nodes, w.control_plane) for w in waves] == [
        (("w0", "w1"), False),
        (("w2", "w3"), False),
        (("w4",), False),
        (("cp-1",), True),
        (("cp-2",), True),
    ]


def test_a_percentage_is_of_the_selected_workers_rounded_down_but_at_least_one() -> None:
    workers = [node(f"w{i}") for i in range(7)]
    assert (
        len(plan_waves(spec(rollout={"maxUnavailable": "30%"}).rollout, cluster(workers).nodes)[0].nodes) == 2
    )
    assert (
        len(plan_waves(spec(rollout={"maxUnavailable": "10%"}).rollout, cluster(workers).nodes)[0].nodes) == 1
    )


@settings(max_examples=100, deadline=None)
@given(workers=st.integers(0, 40), control=st.integers(0, 4), size=st.integers(1, 10))
def test_every_selected_node_is_in_exactly_one_wave_and_no_wave_is_too_big(
    workers: int, control: int, size: int
) -> None:
    nodes = [node(f"w{i:02d}") for i in range(workers)] + [node(f"cp{i}", cp=True) for i in range(control)]
    waves = plan_waves(spec(rollout={"maxUnavailable": size}).rollout, cluster(nodes).nodes)
    placed = [n for w in waves for n in w.nodes]
    assert sorted(placed) == sorted(n["metadata"]["name"] for n in nodes)
    assert all(len(w.nodes) <= size for w in waves)
    assert all(w.control_plane for w in waves[len(waves) - control :])
