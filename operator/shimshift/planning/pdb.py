"""PodDisruptionBudget arithmetic, as the disruption controller and the Eviction API do it.

The numbers in a PDB's status can be stale or missing in a snapshot, so they are recomputed from the
pods: healthy = Ready and not being deleted; the expected count is the number of matching pods for an
integer `minAvailable`, otherwise the sum of the scales of their controllers (a ReplicaSet owned by a
Deployment counts the Deployment's replicas); percentages round up (kubernetes/kubernetes
pkg/controller/disruption/disruption.go, `getExpectedPodCount`; `GetScaledValueFromIntOrPercent(..., true)`).
Eviction follows pkg/registry/core/pod/storage/eviction.go. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shimshift.planning.cluster import Controller, Pdb, Pod, PodPhase, UnhealthyPodEvictionPolicy

#: Workload kinds that have a scale the disruption controller can read.
_SCALED_KINDS = frozenset({"ReplicaSet", "Deployment", "StatefulSet", "ReplicationController"})


@dataclass(frozen=True)
class PdbState:
    """A PDB's budget right now, recomputed from the pods it selects."""

    namespace: str
    name: str
    expected: int
    healthy: int
    desired_healthy: int
    disruptions_allowed: int
    matched: int
    problem: str = ""  # why the controller cannot compute a budget (then nothing may be evicted)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def never_allows(self) -> bool:
        """No eviction is allowed even when every pod is healthy: a drain can only time out."""
        return bool(self.problem) or self.desired_healthy >= self.expected

    def describe(self) -> str:
        if self.problem:
            return f"{self.key}: {self.problem}"
        return (
            f"{self.key}: {self.healthy} healthy of {self.expected} expected, needs {self.desired_healthy}, "
            f"allows {self.disruptions_allowed} disruption(s)"
        )


class EvictionVerdict(StrEnum):
    ALLOWED = "Allowed"  # 200 now
    NO_BUDGET = "NoBudget"  # 429 now: the PDB allows no disruption at the moment
    MULTIPLE_PDBS = "MultiplePDBs"  # 500: the Eviction API refuses pods with more than one PDB


def _scaled(value: int, percent: bool, total: int) -> int:
    return math.ceil(value * total / 100) if percent else value


def _expected_scale(
    pods: Sequence[Pod], controllers: Mapping[tuple[str, str, str], Controller]
) -> tuple[int, str]:
    """Sum of the scales of the pods' controllers, or 0 and why it cannot be computed."""
    seen: dict[tuple[str, str, str], int] = {}
    for pod in pods:
        if pod.owner is None:
            continue  # unmanaged pods are left out of the expected count (an UnmanagedPods event)
        key = (pod.namespace, pod.owner.kind, pod.owner.name)
        ctrl = controllers.get(key)
        if ctrl is not None and ctrl.kind == "ReplicaSet" and ctrl.owner is not None:
            parent = controllers.get((pod.namespace, ctrl.owner.kind, ctrl.owner.name))
            if parent is not None:
                ctrl, key = parent, (pod.namespace, parent.kind, parent.name)
        if ctrl is None or ctrl.kind not in _SCALED_KINDS or ctrl.replicas is None:
            return 0, f"pod {pod.key} is owned by {pod.owner} which has no scale the PDB can use"
        seen[key] = ctrl.replicas
    return sum(seen.values()), ""


def pdb_state(
    pdb: Pdb, pods: Sequence[Pod], controllers: Mapping[tuple[str, str, str], Controller]
) -> PdbState:
    """The budget of `pdb` given the pods it selects (all of them, on every node)."""
    healthy = sum(1 for p in pods if p.ready and not p.deleting)
    problem = ""
    if pdb.min_available is not None and not pdb.min_available.percent:
        expected = len(pods)
        desired = pdb.min_available.value
    else:
        expected, problem = _expected_scale(pods, controllers)
        if pdb.max_unavailable is not None:
            unavailable = _scaled(pdb.max_unavailable.value, pdb.max_unavailable.percent, expected)
            desired = max(0, expected - unavailable)
        elif pdb.min_available is not None:
            desired = _scaled(pdb.min_available.value, True, expected)
        else:  # neither given: policy/v1 has no default; expected stays 0, so nothing may be evicted
            expected, desired = 0, 0
            problem = "sets neither minAvailable nor maxUnavailable, so it allows no disruption"
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0 or problem:
        allowed = 0
    return PdbState(pdb.namespace, pdb.name, expected, healthy, desired, allowed, len(pods), problem)


def evaluate_pdbs(
    pdbs: Sequence[Pdb], pods: Sequence[Pod], controllers: Mapping[tuple[str, str, str], Controller]
) -> tuple[dict[str, PdbState], dict[str, tuple[str, ...]]]:
    """Every PDB's state, and for each pod key the keys of the PDBs selecting it."""
    by_ns: dict[str, list[Pod]] = {}
    by_label: dict[tuple[str, str, str], list[Pod]] = {}  # (namespace, key, value) -> pods, in pod order
    for pod in pods:
        by_ns.setdefault(pod.namespace, []).append(pod)
        for item in pod.labels.items():
            by_label.setdefault((pod.namespace, *item), []).append(pod)
    states: dict[str, PdbState] = {}
    pod_pdbs: dict[str, list[str]] = {}
    for pdb in sorted(pdbs, key=lambda p: (p.namespace, p.name)):
        selector = pdb.selector
        if selector is None:
            matched: list[Pod] = []
        else:
            # Narrow to the pods carrying one of the required labels before the full match.
            first = next(iter(selector.match_labels.items()), None)
            candidates = by_label.get((pdb.namespace, *first), []) if first else by_ns.get(pdb.namespace, [])
            matched = [p for p in candidates if selector.matches(p.labels)]
        state = pdb_state(pdb, matched, controllers)
        states[state.key] = state
        for pod in matched:
            pod_pdbs.setdefault(pod.key, []).append(state.key)
    return states, {k: tuple(v) for k, v in pod_pdbs.items()}


def ignores_pdb(pod: Pod) -> bool:
    """The Eviction API removes terminal, pending and terminating pods without a budget (canIgnorePDB)."""
    return pod.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED, PodPhase.PENDING) or pod.deleting


def eviction_verdict(
    pod: Pod, states: Sequence[PdbState], policies: Mapping[str, UnhealthyPodEvictionPolicy]
) -> EvictionVerdict:
    """What the Eviction API would answer for `pod` right now."""
    if ignores_pdb(pod):
        return EvictionVerdict.ALLOWED
    if len(states) > 1:
        return EvictionVerdict.MULTIPLE_PDBS
    if not states:
        return EvictionVerdict.ALLOWED
    state = states[0]
    if not pod.ready:
        policy = policies.get(state.key, UnhealthyPodEvictionPolicy.IF_HEALTHY_BUDGET)
        if policy == UnhealthyPodEvictionPolicy.ALWAYS_ALLOW:
            return EvictionVerdict.ALLOWED
        if state.healthy >= state.desired_healthy > 0:
            return EvictionVerdict.ALLOWED
    return EvictionVerdict.ALLOWED if state.disruptions_allowed > 0 else EvictionVerdict.NO_BUDGET
