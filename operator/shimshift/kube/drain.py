"""Drain with kubectl's semantics, one bounded pass at a time.

`classify_pod` is kubectl drain's filter chain (pure): mirror pods are skipped; DaemonSet pods are
skipped when `ignoreDaemonSets` (else the drain refuses); pods without a controller need `force`; pods
with emptyDir volumes need `deleteEmptyDirData`; finished pods are removed like any other. `drain_pass`
evicts what can go, names what a budget holds back, then waits through a watch (bounded by `wait`) for
the node's pods to leave. The engine calls it again until the drain's own timeout, which is measured
from the step's recorded start so it survives restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shimshift.kube.api import ApiStatusError, Kube
from shimshift.kube.pods import (
    PODS,
    Eviction,
    EvictionResult,
    delete_pod,
    evict_pod,
    list_pods_on_node,
    pods_on_node_query,
)
from shimshift.kube.watching import Objects, wait_until
from shimshift.model.spec import Drain
from shimshift.planning.cluster import Pod, parse_pod

#: The shortest pause between two evictions of a pod a budget refused.
MIN_PDB_BACKOFF = 0.5


class Disposition(StrEnum):
    EVICT = "Evict"
    SKIP_MIRROR = "SkipMirror"
    SKIP_DAEMONSET = "SkipDaemonSet"
    REFUSE_DAEMONSET = "RefuseDaemonSet"
    REFUSE_UNMANAGED = "RefuseUnmanaged"
    REFUSE_EMPTYDIR = "RefuseEmptyDir"


REFUSALS = {
    Disposition.REFUSE_DAEMONSET: "is managed by a DaemonSet; set spec.drain.ignoreDaemonSets: true",
    Disposition.REFUSE_UNMANAGED: (
        "has no controller and would be lost; set spec.drain.force: true to delete it anyway"
    ),
    Disposition.REFUSE_EMPTYDIR: (
        "uses emptyDir data that is lost on eviction; set spec.drain.deleteEmptyDirData: true"
    ),
}


def classify_pod(pod: Pod, drain: Drain) -> Disposition:
    """What kubectl drain does with `pod` under `drain` (the pod selector is applied by the list)."""
    if pod.mirror:
        return Disposition.SKIP_MIRROR
    if pod.owner is not None and pod.owner.kind == "DaemonSet":
        return Disposition.SKIP_DAEMONSET if drain.ignore_daemonsets else Disposition.REFUSE_DAEMONSET
    if pod.phase.terminal:
        return Disposition.EVICT
    if pod.owner is None and not drain.force:
        return Disposition.REFUSE_UNMANAGED
    if pod.has_empty_dir and not drain.delete_emptydir_data:
        return Disposition.REFUSE_EMPTYDIR
    return Disposition.EVICT


@dataclass(frozen=True)
class DrainProgress:
    node: str
    remaining: tuple[str, ...] = ()  # pods that must still leave
    blocked: tuple[Eviction, ...] = ()  # evictions a budget refused in this pass
    evicted: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # "ns/name <why>": kubectl would refuse to drain

    @property
    def done(self) -> bool:
        return not self.remaining and not self.refused

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


def _to_evict(pods: Iterable[Pod], drain: Drain) -> tuple[list[Pod], list[str]]:
    evict, refused = [], []
    for pod in pods:
        disposition = classify_pod(pod, drain)
        if disposition == Disposition.EVICT:
            evict.append(pod)
        elif disposition in REFUSALS:
            refused.append(f"{pod.key} {REFUSALS[disposition]}")
    return evict, refused


def drain_pass(kube: Kube, node: str, drain: Drain, *, wait: float, escalate: bool = False) -> DrainProgress:
    """Evict (or, when `escalate`, delete) the node's pods once, then wait up to `wait` s for them to go."""
    pods = list_pods_on_node(kube, node, drain.pod_selector)
    evict, refused = _to_evict(pods, drain)
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
    left = [
        parse_pod(p).key
        for p in kube.request("GET", PODS, query=pods_on_node_query(node, drain.pod_selector)).get("items")
        or ()
    ]
    remaining = tuple(sorted(wanted.intersection(left)))
    return DrainProgress(node, remaining, tuple(blocked), tuple(evicted))


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
        kube, f"/apis/policy/v1/namespaces/{namespaces[0]}/poddisruptionbudgets", allows, timeout=wait
    )
