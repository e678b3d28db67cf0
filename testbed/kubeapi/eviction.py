"""``pods/eviction`` with the PodDisruptionBudget arithmetic of the disruption controller.

The budget's status is computed on the spot from the pods it selects (healthy = Ready and not
being deleted) and the scale of their controllers, as pkg/controller/disruption does, so an
eviction sees the same numbers a real cluster's would once its controller has caught up.
Answers: 201 Success and a graceful delete when allowed; 429 TooManyRequests with a
DisruptionBudget cause when not; 500 when more than one budget selects the pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ApiError, success_body
from .objects import controller_ref, int_or_percent, pod_is_ready
from .selectors import LabelSelector
from .store import Store, Stored

PDB_GK = ("policy", "poddisruptionbudgets")
PODS_GK = ("", "pods")
_SCALED_KINDS = {
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "Deployment": ("apps", "deployments"),
    "ReplicationController": ("", "replicationcontrollers"),
}


@dataclass(frozen=True)
class Budget:
    expected: int
    desired_healthy: int
    current_healthy: int
    disruptions_allowed: int
    error: str | None = None

    def status(self, generation: int) -> dict[str, Any]:
        return {
            "observedGeneration": generation,
            "expectedPods": self.expected,
            "desiredHealthy": self.desired_healthy,
            "currentHealthy": self.current_healthy,
            "disruptionsAllowed": self.disruptions_allowed,
        }


def selected_pods(store: Store, pdb: dict[str, Any]) -> list[Stored]:
    selector = LabelSelector.from_struct((pdb.get("spec") or {}).get("selector"))
    if selector is None:
        return []
    namespace = pdb["metadata"]["namespace"]
    bucket = store.buckets.get(PODS_GK)
    if bucket is None:
        return []
    return [s for s in bucket.by_ns.get(namespace, {}).values() if selector.matches(s.meta.get("labels"))]


def _controller_scale(store: Store, namespace: str, ref: dict[str, Any]) -> int | None:
    gk = _SCALED_KINDS.get(ref.get("kind", ""))
    if gk is None:
        return None
    owner = store.get(gk, namespace, ref.get("name", ""))
    if owner is None or owner.meta.get("uid") != ref.get("uid"):
        return None
    return int((owner.obj.get("spec") or {}).get("replicas", 1))


def compute_budget(store: Store, pdb: dict[str, Any]) -> Budget:
    spec = pdb.get("spec") or {}
    pods = selected_pods(store, pdb)
    healthy = sum(1 for p in pods if pod_is_ready(p.obj) and not p.meta.get("deletionTimestamp"))
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and isinstance(min_available, int):
        expected, desired = len(pods), min_available
    else:
        # percentages and maxUnavailable need the controllers' scale (getExpectedScale)
        expected = 0
        seen: set[str] = set()
        for pod in pods:
            ref = controller_ref(pod.obj)
            if ref is None:
                return Budget(0, 0, healthy, 0, error=f"found no controller ref for pod {pod.meta['name']!r}")
            if ref.get("uid") in seen:
                continue
            seen.add(ref.get("uid", ""))
            scale = _controller_scale(store, pod.meta["namespace"], ref)
            if scale is None:
                return Budget(0, 0, healthy, 0, error=f"found no controllers for pod {pod.meta['name']!r}")
            expected += scale
        if max_unavailable is not None:
            desired = max(0, expected - int_or_percent(max_unavailable, expected, round_up=True))
        elif min_available is not None:
            desired = int_or_percent(min_available, expected, round_up=True)
        else:
            desired = expected
    allowed = max(0, healthy - desired)
    return Budget(expected, desired, healthy, allowed)


def matching_budgets(store: Store, pod: dict[str, Any]) -> list[Stored]:
    namespace = pod["metadata"]["namespace"]
    labels = pod["metadata"].get("labels") or {}
    bucket = store.buckets.get(PDB_GK)
    if bucket is None:
        return []
    out = []
    for pdb in bucket.by_ns.get(namespace, {}).values():
        selector = LabelSelector.from_struct((pdb.obj.get("spec") or {}).get("selector"))
        if selector is not None and selector.matches(labels):
            out.append(pdb)
    return out


def decide_eviction(store: Store, pod: dict[str, Any]) -> dict[str, Any] | None:
    """None when the pod may be deleted; raises the API error a real server answers otherwise."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        return None
    budgets = matching_budgets(store, pod)
    if not budgets:
        return None
    if len(budgets) > 1:
        message = (
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        )
        raise ApiError(
            500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
        )
    pdb = budgets[0].obj
    budget = compute_budget(store, pdb)
    if not pod_is_ready(pod):
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        if policy == "AlwaysAllow" or (budget.current_healthy >= budget.desired_healthy > 0):
            return None
    if budget.disruptions_allowed <= 0:
        raise ApiError(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": f"The disruption budget {pdb['metadata']['name']} needs "
                        f"{budget.desired_healthy} healthy pods and has {budget.current_healthy} currently",
                    }
                ]
            },
            headers={"Retry-After": "0"},
        )
    return None


def eviction_success() -> dict[str, Any]:
    return success_body(201)
