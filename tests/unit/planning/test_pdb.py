"""PDB arithmetic and the Eviction API's answers, as the disruption controller computes them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.planning.cluster import Cluster
from shimshift.planning.pdb import EvictionVerdict, PdbState, evaluate_pdbs, eviction_verdict, pdb_state
from tests.unit.planning.factory import cluster, pdb, pod, web_deployment


def state_of(
    pods: list[dict[str, Any]], budget: dict[str, Any], controllers: list[dict[str, Any]] | None = None
) -> tuple[PdbState, Cluster]:
    c = cluster(
        pods=pods, pdbs=[budget], controllers=web_deployment() if controllers is None else controllers
    )
    states, _ = evaluate_pdbs(c.pdbs, c.pods, c.controller_index())
    return next(iter(states.values())), c


def test_integer_min_available_counts_the_matching_pods_as_expected() -> None:
    state, _ = state_of([pod("a"), pod("b"), pod("c")], pdb("p", minAvailable=2))
    assert (state.expected, state.healthy, state.desired_healthy, state.disruptions_allowed) == (3, 3, 2, 1)


def test_percent_min_available_rounds_up_against_the_deployment_scale() -> None:
    # 50% of 3 replicas is 1.5: the controller rounds up to 2, so one disruption is allowed.
    state, _ = state_of([pod("a"), pod("b"), pod("c")], pdb("p", minAvailable="50%"))
    assert (state.expected, state.desired_healthy, state.disruptions_allowed) == (3, 2, 1)


def test_max_unavailable_uses_the_scale_of_the_deployment_behind_the_replicaset() -> None:
    # Only two pods exist but the Deployment wants five: the budget is computed against five.
    state, _ = state_of([pod("a"), pod("b")], pdb("p", maxUnavailable=1), web_deployment(replicas=5))
    assert (state.expected, state.healthy, state.desired_healthy, state.disruptions_allowed) == (5, 2, 4, 0)


def test_percent_max_unavailable_rounds_up() -> None:
    pods = [pod(f"p{i}") for i in range(4)]
    state, _ = state_of(pods, pdb("p", maxUnavailable="30%"), web_deployment(replicas=4))
    # 30% of 4 = 1.2, rounded up to 2 unavailable: desired healthy 2, two disruptions allowed.
    assert (state.desired_healthy, state.disruptions_allowed) == (2, 2)


def test_unready_and_terminating_pods_are_not_healthy() -> None:
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True)]
    state, _ = state_of(pods, pdb("p", minAvailable=1))
    assert (state.healthy, state.disruptions_allowed) == (1, 0)


def test_a_budget_equal_to_the_replicas_never_allows_an_eviction() -> None:
    state, _ = state_of([pod("a"), pod("b"), pod("c")], pdb("p", minAvailable=3))
    assert state.disruptions_allowed == 0
    assert state.never_allows


def test_a_budget_that_blocks_only_because_a_pod_is_unready_is_not_a_permanent_block() -> None:
    state, _ = state_of(
        [pod("a"), pod("b", ready=False)], pdb("p", maxUnavailable=1), web_deployment(replicas=2)
    )
    assert state.disruptions_allowed == 0
    assert not state.never_allows


def test_pods_owned_by_a_daemonset_give_a_percentage_budget_no_scale() -> None:
    pods = [pod("a", owner=("DaemonSet", "agent"))]
    state, _ = state_of(
        pods,
        pdb("p", maxUnavailable="10%"),
        [{"kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"}, "spec": {}}],
    )
    assert state.problem and "no scale" in state.problem
    assert state.disruptions_allowed == 0 and state.never_allows


def test_a_pdb_with_neither_field_allows_nothing() -> None:
    state, _ = state_of([pod("a"), pod("b")], pdb("p"))
    assert state.disruptions_allowed == 0
    assert "neither" in state.problem


def test_a_null_selector_selects_no_pod_and_an_empty_one_selects_the_whole_namespace() -> None:
    c = cluster(
        pods=[pod("a"), pod("b", ns="other")],
        pdbs=[pdb("none", selector=False, minAvailable=1), pdb("all", labels={}, minAvailable=1)],
        controllers=web_deployment(),
    )
    states, pod_pdbs = evaluate_pdbs(c.pdbs, c.pods, c.controller_index())
    assert states["default/none"].matched == 0
    assert states["default/all"].matched == 1
    assert pod_pdbs == {"default/a": ("default/all",)}


def test_eviction_is_refused_with_429_when_the_budget_is_spent() -> None:
    state, c = state_of([pod("a"), pod("b")], pdb("p", minAvailable=2))
    assert eviction_verdict(c.pods[0], [state], {}) == EvictionVerdict.NO_BUDGET


def test_terminal_pending_and_terminating_pods_are_evicted_without_a_budget() -> None:
    state, _ = state_of([pod("a"), pod("b")], pdb("p", minAvailable=2))
    for raw in (
        pod("x", phase="Succeeded"),
        pod("y", phase="Failed"),
        pod("z", phase="Pending"),
        pod("w", deleting=True),
    ):
        target = cluster(pods=[raw]).pods[0]
        assert eviction_verdict(target, [state], {}) == EvictionVerdict.ALLOWED


def test_an_unready_pod_may_go_when_the_budget_is_otherwise_healthy() -> None:
    # IfHealthyBudget: 2 healthy >= 2 desired, so the unready third pod can be evicted even at 0 allowed.
    state, c = state_of([pod("a"), pod("b"), pod("c", ready=False)], pdb("p", minAvailable=2))
    assert state.disruptions_allowed == 0
    assert eviction_verdict(c.pods[2], [state], {}) == EvictionVerdict.ALLOWED
    assert eviction_verdict(c.pods[0], [state], {}) == EvictionVerdict.NO_BUDGET


def test_two_pdbs_on_one_pod_make_the_eviction_api_refuse_it() -> None:
    c = cluster(
        pods=[pod("a")],
        pdbs=[pdb("p1", minAvailable=0), pdb("p2", minAvailable=0)],
        controllers=web_deployment(),
    )
    states, pod_pdbs = evaluate_pdbs(c.pdbs, c.pods, c.controller_index())
    verdict = eviction_verdict(c.pods[0], [states[k] for k in pod_pdbs["default/a"]], {})
    assert verdict == EvictionVerdict.MULTIPLE_PDBS


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(1, 12),
    unready=st.integers(0, 12),
    budget=st.one_of(
        st.builds(lambda n: {"minAvailable": n}, st.integers(0, 14)),
        st.builds(lambda n: {"minAvailable": f"{n}%"}, st.integers(0, 100)),
        st.builds(lambda n: {"maxUnavailable": n}, st.integers(0, 14)),
        st.builds(lambda n: {"maxUnavailable": f"{n}%"}, st.integers(0, 100)),
    ),
)
def test_evicting_only_what_the_budget_allows_never_drops_below_the_desired_healthy(
    replicas: int, unready: int, budget: dict[str, Any]
) -> None:
    pods = [pod(f"p{i}", ready=i >= min(unready, replicas)) for i in range(replicas)]
    c = cluster(pods=pods, pdbs=[pdb("p", **budget)], controllers=web_deployment(replicas))
    state = pdb_state(c.pdbs[0], c.pods, c.controller_index())
    assert 0 <= state.disruptions_allowed <= state.healthy
    if state.disruptions_allowed:
        assert state.healthy - state.disruptions_allowed >= state.desired_healthy
