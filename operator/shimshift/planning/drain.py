"""The drain of one node, simulated: what `kubectl drain` would do with each pod under the spec's policy.

Filters follow kubectl's pkg/drain/filters.go in its order (`classify_pod`, which the operator's drain
uses too): finished pods are removed; DaemonSet pods (ignored when `ignoreDaemonSets`, refused
otherwise; a missing DaemonSet needs `force`, and its pods are then deleted), mirror pods (skipped),
emptyDir (refused unless `deleteEmptyDirData`; terminal pods pass), pods without a controller (refused
unless `force`; terminal pods pass); `podSelector` limits which pods are considered at all. Each pod to
evict gets the Eviction API's answer right now (`shimshift.planning.pdb`). Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from shimshift.model.spec import Drain, DrainTimeoutAction, LabelSelector
from shimshift.planning.cluster import Controller, Pod, UnhealthyPodEvictionPolicy
from shimshift.planning.findings import Finding, Level, name_some
from shimshift.planning.pdb import EvictionVerdict, PdbState, eviction_verdict, ignores_pdb


class PodAction(StrEnum):
    EVICT = "Evict"  # through the Eviction API, PDBs respected
    IGNORE_DAEMONSET = "IgnoreDaemonSet"  # left alone by the drain; restarted under containerd
    SKIP_MIRROR = "SkipMirror"  # static pod: kubelet restarts it from its manifest
    NOT_SELECTED = "NotSelected"  # outside spec.drain.podSelector: not evicted, stopped at the switch
    REFUSED = "Refused"  # the drain stops here: the policy does not allow removing this pod


class RefusalReason(StrEnum):
    DAEMONSET = "DaemonSet"
    DAEMONSET_MISSING = "DaemonSetMissing"
    EMPTY_DIR = "EmptyDir"
    UNMANAGED = "Unmanaged"


_REFUSALS: Mapping[RefusalReason, tuple[str, str]] = {
    RefusalReason.DAEMONSET: (
        "DaemonSet-managed pods and spec.drain.ignoreDaemonSets is false",
        "set spec.drain.ignoreDaemonSets: true (DaemonSet pods are restarted on the node after the switch)",
    ),
    RefusalReason.DAEMONSET_MISSING: (
        "pods of a DaemonSet that no longer exists",
        "delete the orphaned pods, or set spec.drain.force: true",
    ),
    RefusalReason.EMPTY_DIR: (
        "pods with emptyDir data and spec.drain.deleteEmptyDirData is false",
        "set spec.drain.deleteEmptyDirData: true if that data may be lost, or move it to a volume",
    ),
    RefusalReason.UNMANAGED: (
        "pods that declare no controller (nothing would recreate them)",
        "give them a controller, delete them yourself, or set spec.drain.force: true to delete them",
    ),
}


@dataclass(frozen=True)
class PodPlan:
    namespace: str
    name: str
    action: PodAction
    controller: str = ""  # "Deployment/web", "DaemonSet/fluentd", "" when none
    pdbs: tuple[str, ...] = ()
    verdict: EvictionVerdict | None = None  # the Eviction API's answer now; None when not evicted
    refusal: RefusalReason | None = None
    notes: tuple[str, ...] = ()
    uses_budget: bool = False  # the eviction consumes a PDB disruption

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NodeDrain:
    node: str
    pods: tuple[PodPlan, ...]
    findings: tuple[Finding, ...]
    max_grace_seconds: int  # the longest termination grace among the pods to evict

    def count(self, action: PodAction) -> int:
        return sum(1 for p in self.pods if p.action == action)

    @property
    def evictions_blocked_now(self) -> tuple[PodPlan, ...]:
        return tuple(p for p in self.pods if p.verdict not in (None, EvictionVerdict.ALLOWED))


@dataclass(frozen=True)
class DrainContext:
    """What every node's drain plan reads, computed once per plan."""

    policy: Drain
    pod_selector: LabelSelector
    controllers: Mapping[tuple[str, str, str], Controller]
    pdb_states: Mapping[str, PdbState]
    pod_pdbs: Mapping[str, tuple[str, ...]]
    unhealthy_policies: Mapping[str, UnhealthyPodEvictionPolicy]
    #: describe_controller's answers by owner, filled as nodes are planned (pods of one controller share it)
    described: dict[tuple[str, str, str] | None, tuple[str, bool]] = field(default_factory=dict)


def describe_controller(pod: Pod, controllers: Mapping[tuple[str, str, str], Controller]) -> tuple[str, bool]:
    """`Deployment/web` for a pod of ReplicaSet web-abc owned by Deployment web; and whether it exists."""
    if pod.owner is None:
        return "", False
    ctrl = controllers.get((pod.namespace, pod.owner.kind, pod.owner.name))
    if ctrl is None:
        return str(pod.owner), False
    if ctrl.owner is not None:
        parent = controllers.get((pod.namespace, ctrl.owner.kind, ctrl.owner.name))
        if parent is not None:
            return parent.ref, True
    return ctrl.ref, True


def refusal_text(reason: RefusalReason) -> tuple[str, str]:
    """(what stops the drain, what to do about it) for `reason`."""
    return _REFUSALS[reason]


def classify_pod(
    pod: Pod, daemonset_found: bool, policy: Drain
) -> tuple[PodAction, RefusalReason | None, list[str]]:
    """What `kubectl drain` does with `pod` under `policy`, in the order of kubectl's filter chain
    (pkg/drain/filters.go): a finished pod is removed whatever owns it; a DaemonSet pod whose DaemonSet
    is gone needs `force` and is then deleted for good (nothing recreates it), one whose DaemonSet exists
    is left alone with `ignoreDaemonSets` and stops the drain without it; mirror pods are skipped;
    emptyDir data needs `deleteEmptyDirData`; a pod without a controller needs `force`. The pod selector
    is not applied here. Shared by the plan and the operator's drain, so the two cannot disagree."""
    notes: list[str] = []
    terminal = pod.phase.terminal
    if pod.owner is not None and pod.owner.kind == "DaemonSet" and not terminal:
        if not daemonset_found:
            if not policy.force:
                return PodAction.REFUSED, RefusalReason.DAEMONSET_MISSING, notes
            notes.append(f"its DaemonSet {pod.owner.name} no longer exists: deleted for good (force)")
        elif not policy.ignore_daemonsets:
            return PodAction.REFUSED, RefusalReason.DAEMONSET, notes
        else:
            return PodAction.IGNORE_DAEMONSET, None, ["restarted on the node by kubelet after the switch"]
    if pod.mirror:
        return (
            PodAction.SKIP_MIRROR,
            None,
            ["static pod: kubelet restarts it from its manifest after the switch"],
        )
    if pod.has_empty_dir and not terminal:
        if not policy.delete_emptydir_data:
            return PodAction.REFUSED, RefusalReason.EMPTY_DIR, notes
        notes.append("its emptyDir data is deleted")
    if pod.owner is None and not terminal:
        if not policy.force:
            return PodAction.REFUSED, RefusalReason.UNMANAGED, notes
        notes.append("no controller: deleted for good (force)")
    if terminal:
        notes.append(f"{pod.phase.value}: removed without a PDB check")
    if pod.deleting:
        notes.append("already terminating")
    return PodAction.EVICT, None, notes


def plan_node_drain(node: str, pods: Sequence[Pod], ctx: DrainContext) -> NodeDrain:
    """Every pod on `node` with what the drain does to it, and the blockers and warnings that follow."""
    plans: list[PodPlan] = []
    grace = 0
    override = ctx.policy.grace_period_seconds
    select_all = not ctx.pod_selector.match_labels and not ctx.pod_selector.match_expressions
    names = ctx.described
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        owner_key = (pod.namespace, pod.owner.kind, pod.owner.name) if pod.owner else None
        described = names.get(owner_key)
        if described is None:
            described = names[owner_key] = describe_controller(pod, ctx.controllers)
        controller, found = described
        if not select_all and not ctx.pod_selector.matches(pod.labels):
            skip_note = ("outside spec.drain.podSelector: not evicted; its containers stop at the switch",)
            plans.append(
                PodPlan(pod.namespace, pod.name, PodAction.NOT_SELECTED, controller, notes=skip_note)
            )
            continue
        action, refusal, notes = classify_pod(pod, found, ctx.policy)
        pdb_keys = ctx.pod_pdbs.get(pod.key, ())
        verdict = None
        uses_budget = False
        if action == PodAction.EVICT:
            uses_budget = bool(pdb_keys) and not ignores_pdb(pod)
            states = [ctx.pdb_states[k] for k in pdb_keys]
            verdict = eviction_verdict(pod, states, ctx.unhealthy_policies)
            grace = max(grace, override if override is not None and override >= 0 else pod.grace_period)
        plan = PodPlan(
            pod.namespace, pod.name, action, controller, pdb_keys, verdict, refusal, tuple(notes), uses_budget
        )
        plans.append(plan)
    return NodeDrain(node, tuple(plans), tuple(_findings(node, plans, ctx)), grace)


def _findings(node: str, plans: Sequence[PodPlan], ctx: DrainContext) -> list[Finding]:
    out: list[Finding] = []
    refused: dict[RefusalReason, list[str]] = {}
    for p in plans:
        if p.refusal is not None:
            refused.setdefault(p.refusal, []).append(p.key)
    for reason, pods in sorted(refused.items()):
        what, advice = _REFUSALS[reason]
        out.append(
            Finding(
                f"DrainRefused{reason.value}",
                Level.BLOCKER,
                f"the drain would stop: {len(pods)} {what}: {name_some(pods)}",
                advice,
                node,
                pods[0],
            )
        )
    evicted = [p for p in plans if p.action == PodAction.EVICT]
    multi = [p for p in evicted if p.verdict == EvictionVerdict.MULTIPLE_PDBS]
    for p in multi:
        out.append(
            Finding(
                "MultiplePDBs",
                Level.BLOCKER,
                f"pod {p.key} is selected by {len(p.pdbs)} PDBs ({', '.join(p.pdbs)}); the Eviction API "
                "refuses such pods (HTTP 500) and the drain cannot finish",
                "make the PDB selectors disjoint so each pod has at most one PDB",
                node,
                p.key,
            )
        )
    budgeted = [p for p in evicted if p.uses_budget and len(p.pdbs) == 1]
    per_pdb = Counter(p.pdbs[0] for p in budgeted)
    for key, count in sorted(per_pdb.items()):
        state = ctx.pdb_states[key]
        blocked = [p.key for p in budgeted if p.pdbs == (key,) and p.verdict == EvictionVerdict.NO_BUDGET]
        if blocked and state.never_allows:
            timeout = ctx.policy.on_timeout == DrainTimeoutAction.DELETE_PODS
            out.append(
                Finding(
                    "PdbNeverAllows",
                    Level.WARNING if timeout else Level.BLOCKER,
                    f"PDB {state.describe()}: it allows no eviction even with every pod healthy, so evicting "
                    f"{name_some(blocked)} waits until spec.drain.timeout"
                    + (
                        " and then deletes the pods, bypassing the PDB"
                        if timeout
                        else " and the node is aborted"
                    ),
                    f"relax PDB {key} (e.g. maxUnavailable: 1) or scale its workload up for the migration",
                    node,
                    key,
                )
            )
        elif blocked:
            out.append(
                Finding(
                    "PdbBlocksNow",
                    Level.WARNING,
                    f"PDB {state.describe()}: evicting {name_some(blocked)} would wait now until enough "
                    "pods are healthy again",
                    f"check why PDB {key}'s pods are not Ready before migrating",
                    node,
                    key,
                )
            )
        elif count > state.disruptions_allowed > 0:
            out.append(
                Finding(
                    "PdbSerialisesDrain",
                    Level.INFO,
                    f"{count} pods under PDB {key} on this node and it allows {state.disruptions_allowed} "
                    "at a time: the drain waits for replacements to become Ready between evictions",
                    "",
                    node,
                    key,
                )
            )
    return out
