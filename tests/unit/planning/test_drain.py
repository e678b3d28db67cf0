"""The drain simulation: what kubectl drain's filters and the Eviction API do with each pod."""

from __future__ import annotations

from typing import Any

from shimshift.model.selectors import parse_label_selector
from shimshift.model.spec import LabelSelector
from shimshift.planning.drain import (
    DrainContext,
    NodeDrain,
    PodAction,
    PodPlan,
    RefusalReason,
    plan_node_drain,
)
from shimshift.planning.findings import Level
from shimshift.planning.pdb import EvictionVerdict, evaluate_pdbs
from tests.unit.planning.factory import cluster, controller, pdb, pod, spec, web_deployment

DS = [controller("DaemonSet", "agent", replicas=None)]


def drain(
    pods: list[dict[str, Any]],
    *,
    pdbs: list[dict[str, Any]] | None = None,
    controllers: list[dict[str, Any]] | None = None,
    **policy: Any,
) -> NodeDrain:
    c = cluster(
        pods=pods, pdbs=pdbs, controllers=web_deployment() + DS if controllers is None else controllers
    )
    s = spec(drain=policy) if policy else spec()
    states, pod_pdbs = evaluate_pdbs(c.pdbs, c.pods, c.controller_index())
    selector = parse_label_selector(s.drain.pod_selector) if s.drain.pod_selector else LabelSelector()
    ctx = DrainContext(
        s.drain,
        selector,
        c.controller_index(),
        states,
        pod_pdbs,
        {p.key: p.unhealthy_pod_eviction_policy for p in c.pdbs},
    )
    return plan_node_drain("n1", [p for p in c.pods if p.node == "n1"], ctx)


def only(d: NodeDrain) -> PodPlan:
    assert len(d.pods) == 1
    return d.pods[0]


def codes(d: NodeDrain) -> dict[str, Level]:
    return {f.code: f.level for f in d.findings}


def test_a_replicaset_pod_is_evicted_and_names_its_deployment() -> None:
    p = only(drain([pod("web-1-abc")]))
    assert (p.action, p.controller, p.verdict) == (PodAction.EVICT, "Deployment/web", EvictionVerdict.ALLOWED)


def test_daemonset_pods_are_ignored_when_allowed_and_stop_the_drain_otherwise() -> None:
    assert only(drain([pod("a", owner=("DaemonSet", "agent"))])).action == PodAction.IGNORE_DAEMONSET
    refused = drain([pod("a", owner=("DaemonSet", "agent"))], ignoreDaemonSets=False)
    assert only(refused).refusal == RefusalReason.DAEMONSET
    assert codes(refused) == {"DrainRefusedDaemonSet": Level.BLOCKER}


def test_a_pod_of_a_deleted_daemonset_needs_force_and_is_then_deleted_for_good_as_kubectl_does() -> None:
    orphan = [pod("a", owner=("DaemonSet", "gone"))]
    refused = drain(orphan)
    assert only(refused).refusal == RefusalReason.DAEMONSET_MISSING
    assert codes(refused) == {"DrainRefusedDaemonSetMissing": Level.BLOCKER}
    # even with ignoreDaemonSets: kubectl looks the DaemonSet up first, and a missing one is an error
    assert only(drain(orphan, ignoreDaemonSets=True)).refusal == RefusalReason.DAEMONSET_MISSING
    forced = only(drain(orphan, force=True))
    assert forced.action == PodAction.EVICT
    assert "its DaemonSet gone no longer exists: deleted for good (force)" in forced.notes


def test_a_finished_daemonset_pod_is_removed_like_any_finished_pod() -> None:
    done = only(drain([pod("a", owner=("DaemonSet", "agent"), phase="Failed")], ignoreDaemonSets=False))
    assert done.action == PodAction.EVICT and done.refusal is None


def test_mirror_pods_are_skipped_not_evicted() -> None:
    p = only(drain([pod("etcd-n1", owner=("Node", "n1"), mirror=True)]))
    assert p.action == PodAction.SKIP_MIRROR and p.verdict is None


def test_empty_dir_pods_stop_the_drain_unless_their_data_may_be_deleted() -> None:
    assert only(drain([pod("a", empty_dir=True)])).refusal == RefusalReason.EMPTY_DIR
    allowed = only(drain([pod("a", empty_dir=True)], deleteEmptyDirData=True))
    assert allowed.action == PodAction.EVICT and "its emptyDir data is deleted" in allowed.notes


def test_an_empty_dir_the_pod_names_disposable_does_not_stop_the_drain() -> None:
    # the chart's operator pod names its scratch /tmp: draining the operator's own node evicts it
    disposable = pod("operator", empty_dir=True)
    disposable["metadata"]["annotations"] = {"shimshift.io/disposable-empty-dirs": " other, scratch "}
    assert only(drain([disposable])).action == PodAction.EVICT
    another = pod("a", empty_dir=True)
    another["metadata"]["annotations"] = {"shimshift.io/disposable-empty-dirs": "cache"}
    assert only(drain([another])).refusal == RefusalReason.EMPTY_DIR


def test_a_finished_pod_with_empty_dir_and_no_controller_is_removed_without_force() -> None:
    p = only(drain([pod("job-x", owner=None, empty_dir=True, phase="Succeeded")]))
    assert p.action == PodAction.EVICT and not p.uses_budget


def test_unmanaged_pods_stop_the_drain_unless_forced() -> None:
    refused = drain([pod("debug", owner=None)])
    assert only(refused).refusal == RefusalReason.UNMANAGED
    assert codes(refused) == {"DrainRefusedUnmanaged": Level.BLOCKER}
    forced = only(drain([pod("debug", owner=None)], force=True))
    assert forced.action == PodAction.EVICT and any("deleted for good" in n for n in forced.notes)


def test_pods_outside_the_pod_selector_are_left_alone_even_if_unmanaged() -> None:
    d = drain([pod("debug", owner=None, labels={"keep": "yes"}), pod("web-1-a")], podSelector="!keep")
    actions = {p.name: p.action for p in d.pods}
    assert actions == {"debug": PodAction.NOT_SELECTED, "web-1-a": PodAction.EVICT}
    assert not d.findings


def test_the_spec_grace_period_overrides_the_pods_own() -> None:
    assert drain([pod("a", grace=120)]).max_grace_seconds == 120
    assert drain([pod("a", grace=120)], gracePeriodSeconds=10).max_grace_seconds == 10


def test_a_pdb_that_can_never_allow_blocks_the_node_unless_the_spec_deletes_on_timeout() -> None:
    pods = [pod("a"), pod("b", node_name="n2"), pod("c", node_name="n2")]
    blocked = drain(pods, pdbs=[pdb("web", minAvailable=3)])
    assert only(blocked).verdict == EvictionVerdict.NO_BUDGET
    assert codes(blocked) == {"PdbNeverAllows": Level.BLOCKER}
    escalated = drain(pods, pdbs=[pdb("web", minAvailable=3)], onTimeout="DeletePods")
    assert codes(escalated) == {"PdbNeverAllows": Level.WARNING}


def test_a_pdb_spent_by_an_unready_pod_elsewhere_is_a_warning_not_a_blocker() -> None:
    pods = [pod("a"), pod("b", node_name="n2", ready=False)]
    d = drain(pods, pdbs=[pdb("web", maxUnavailable=1)], controllers=web_deployment(2))
    assert codes(d) == {"PdbBlocksNow": Level.WARNING}


def test_two_pods_under_a_one_at_a_time_pdb_serialise_the_drain() -> None:
    pods = [pod("a"), pod("b"), pod("c", node_name="n2"), pod("d", node_name="n2")]
    d = drain(pods, pdbs=[pdb("web", maxUnavailable=1)], controllers=web_deployment(4))
    assert [p.verdict for p in d.pods] == [EvictionVerdict.ALLOWED, EvictionVerdict.ALLOWED]
    assert codes(d) == {"PdbSerialisesDrain": Level.INFO}


def test_a_pod_under_two_pdbs_is_a_blocker() -> None:
    d = drain([pod("a")], pdbs=[pdb("p1", maxUnavailable=1), pdb("p2", maxUnavailable=1)])
    assert only(d).verdict == EvictionVerdict.MULTIPLE_PDBS
    assert codes(d)["MultiplePDBs"] == Level.BLOCKER
