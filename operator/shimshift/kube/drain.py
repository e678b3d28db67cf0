"""Drain with kubectl's semantics, one bounded pass at a time.

`classify` applies kubectl drain's filter chain, the plan's own pure `classify_pod`: finished pods are
removed; DaemonSet pods are skipped when `ignoreDaemonSets` (else the drain refuses), and a pod whose
DaemonSet no longer exists needs `force` (then it is evicted, as kubectl deletes it); mirror pods are
skipped; pods with emptyDir volumes need `deleteEmptyDirData`; pods without a controller need `force`.
`drain_pass` evicts what can go, names what a budget holds back, then waits through a watch (bounded by
`wait`) for the node's pods to leave. The engine calls it again until the drain's own timeout, which is
measured from the step's recorded start so it survives restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shimshift.kube.api import ApiStatusError, Kube, NotFound
from shimshift.kube.paths import segment
from shimshift.kube.pods import (
    PODS,
    Eviction,
    EvictionResult,
    daemonsets_of,
    delete_pod,
    evict_pod,
    list_pods_on_node,
    pods_on_node_query,
)
from shimshift.kube.watching import Objects, wait_until
from shimshift.model.spec import Drain
from shimshift.planning.cluster import Pod, parse_pod
from shimshift.planning.drain import PodAction, classify_pod, refusal_text

#: The shortest pause between two evictions of a pod a budget refused.
MIN_PDB_BACKOFF = 0.5


def classify(kube: Kube, pods: Iterable[Pod], drain: Drain) -> tuple[list[Pod], list[str]]:
    """The pods to evict, and the refusals ("ns/name why; what to do"), by kubectl drain's filters
    (`shimshift.planning.drain.classify_pod`, the plan's own); a running DaemonSet pod's DaemonSet is
    looked up, since a pod whose DaemonSet is gone needs `force`, as in kubectl."""
    evict: list[Pod] = []
    refused: list[str] = []
    exists: dict[tuple[str, str], bool] = {}
    for pod in pods:
        found = True
        if pod.owner is not None and pod.owner.kind == "DaemonSet" and not pod.phase.terminal:
            key = (pod.namespace, pod.owner.name)
            if key not in exists:
                exists[key] = daemonset_exists(kube, *key)
            found = exists[key]
        action, reason, _ = classify_pod(pod, found, drain)
        if action == PodAction.EVICT:
            evict.append(pod)
        elif reason is not None:
            what, advice = refusal_text(reason)
            refused.append(f"{pod.key} is one of the {what}; {advice}")
    return evict, refused


def daemonset_exists(kube: Kube, namespace: str, name: str) -> bool:
    """Whether DaemonSet namespace/name exists (one GET; a 404 is the answer, not an error)."""
    try:
        ns, ds = segment(namespace, "namespace"), segment(name, "DaemonSet name")
        kube.request("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{ds}")
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class DrainProgress:
    node: str
    remaining: tuple[str, ...] = ()  # pods that must still leave
    blocked: tuple[Eviction, ...] = ()  # evictions a budget refused in this pass
    evicted: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # "ns/name <why>": kubectl would refuse to drain
    #: the DaemonSets ("namespace/name") with a pod on the node as the pass's last listing saw them;
    #: None when a pod selector narrowed that listing
    daemonsets: tuple[str, ...] | None = None

    @property
    def done(self) -> bool:
        return not self.remaining and not self.refused

    @property
    def budgets(self) -> tuple[str, ...]:
        """namespace/name of the PodDisruptionBudgets that refused an eviction in this pass, sorted
        ("(unknown)" for a refusal whose budget was not found: it changed in between)."""
        return tuple(sorted({p for b in self.blocked for p in (b.pdbs or ("(unknown)",))}))

    def describe(self) -> str:
        if self.refused:
            return f"node {self.node}: cannot drain: pod " + "; pod ".join(self.refused)
        if self.blocked:
            return f"node {self.node}: " + "; ".join(b.describe() for b in self.blocked)
        if self.remaining:
            return f"node {self.node}: waiting for {len(self.remaining)} pod(s) to leave: " + ", ".join(
                self.remaining[:5]
            )
        return f"node {self.node}: drained"


def drain_pass(kube: Kube, node: str, drain: Drain, *, wait: float, escalate: bool = False) -> DrainProgress:
    """Evict (or, when `escalate`, delete) the node's pods once, then wait up to `wait` s for them to go."""
    pods = list_pods_on_node(kube, node, drain.pod_selector)
    evict, refused = classify(kube, pods, drain)
    if refused:
        return DrainProgress(node, tuple(p.key for p in evict), refused=tuple(refused))
    evicted: list[str] = []
    blocked: list[Eviction] = []
    for pod in evict:
        if pod.deleting:
            continue
        if escalate:
            delete_pod(kube, pod, drain.grace_period_seconds)
            evicted.append(pod.key)
            continue
        try:
            outcome = evict_pod(kube, pod, drain.grace_period_seconds)
        except ApiStatusError as e:
            if not e.transient:
                raise
            continue  # this pod stays for now; the next pass asks again
        if outcome.result == EvictionResult.BLOCKED:
            blocked.append(outcome)
        elif outcome.result == EvictionResult.EVICTED:
            evicted.append(outcome.pod)
    wanted = {p.key for p in evict}

    def gone(objects: Objects) -> bool:
        return not wanted.intersection(objects)

    if wanted and not blocked:
        wait_until(kube, PODS, gone, timeout=wait, query=pods_on_node_query(node, drain.pod_selector))
    elif wanted:
        # A budget said "not now": sleep on the budget itself, waking as soon as its status allows a
        # disruption again (the replacement pod elsewhere became Ready), or at the bound.
        began = time.monotonic()
        _wait_for_budgets(kube, blocked, wait)
        # A budget's status can lag the eviction's own arithmetic; never ask again sooner than this.
        time.sleep(max(0.0, min(MIN_PDB_BACKOFF, wait) - (time.monotonic() - began)))
    after = [
        parse_pod(p)
        for p in kube.request("GET", PODS, query=pods_on_node_query(node, drain.pod_selector)).get("items")
        or ()
    ]
    remaining = tuple(sorted(wanted.intersection(p.key for p in after)))
    # that listing is every pod on the node when no selector narrows it: the DaemonSets with a pod
    # there come from it, instead of one more LIST (pods.daemonsets_of, as KubeCluster.daemonsets_on)
    daemonsets = None if drain.pod_selector else daemonsets_of(after)
    return DrainProgress(node, remaining, tuple(blocked), tuple(evicted), daemonsets=daemonsets)


def _wait_for_budgets(kube: Kube, blocked: Sequence[Eviction], wait: float) -> bool:
    """True once one of the blocking budgets allows a disruption; False at `wait` s."""
    budgets = {key for b in blocked for key in b.pdbs}
    namespaces = sorted({key.split("/", 1)[0] for key in budgets})
    if len(namespaces) != 1:  # unknown budget, or several namespaces: a plain bounded wait on one of them
        namespaces = namespaces[:1] or [blocked[0].pod.split("/", 1)[0]]

    def allows(objects: Objects) -> bool:
        return any(
            int(((obj.get("status") or {}).get("disruptionsAllowed")) or 0) > 0
            for key, obj in objects.items()
            if key in budgets
        )

    return wait_until(
        kube,
        f"/apis/policy/v1/namespaces/{segment(namespaces[0], 'namespace')}/poddisruptionbudgets",
        allows,
        timeout=wait,
    )
