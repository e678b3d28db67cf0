"""Pods on a node, their eviction through the Eviction API, and the PodDisruptionBudget that blocks one.

Eviction is the only way shimshift removes a pod during a normal drain, so the API server enforces every
PodDisruptionBudget; a 429 is not an error but "not now", and the budget and pod are named so a person
can see what the drain waits for. Deleting a pod outright happens only on the explicit escalation
(`spec.drain.onTimeout: DeletePods`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.kube.api import ApiStatusError, Kube, NotFound, Object, TooManyRequests
from shimshift.kube.paths import segment
from shimshift.model.selectors import selector_matches
from shimshift.planning.cluster import Pod, PodPhase, parse_pdb, parse_pod

PODS = "/api/v1/pods"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{segment(namespace, 'namespace')}/pods/{segment(name, 'pod name')}"


def pods_on_node_query(node: str, label_selector: str = "") -> list[tuple[str, str]]:
    query = [("fieldSelector", f"spec.nodeName={node}")]
    if label_selector:
        query.append(("labelSelector", label_selector))
    return query


def list_pods_on_node(kube: Kube, node: str, label_selector: str = "") -> list[Pod]:
    """The pods bound to `node` (fieldSelector spec.nodeName), optionally only those matching a selector."""
    answer = kube.request("GET", PODS, query=pods_on_node_query(node, label_selector))
    return [parse_pod(p) for p in answer.get("items") or ()]


#: Pods that have not finished: a field selector the API server evaluates (pods index status.phase).
NOT_FINISHED = "status.phase!=Succeeded,status.phase!=Failed"
#: Pods per page of the blocking-pods LIST.
PAGE = 500


def list_blocking_pods(kube: Kube, label_selector: str) -> dict[str, tuple[str, ...]]:
    """node -> "namespace/name" (sorted) of its pods matching `label_selector` that have not finished
    (`spec.rollout.blockingPodSelector`). One LIST the API server filters by label and phase, read in
    pages: its cost is the matching pods', never the cluster's. Pods not bound to a node are left out."""
    out: dict[str, list[str]] = {}
    token = ""
    while True:
        query = [("labelSelector", label_selector), ("fieldSelector", NOT_FINISHED), ("limit", str(PAGE))]
        page = kube.request("GET", PODS, query=query + ([("continue", token)] if token else []))
        for raw in page.get("items") or ():
            meta, spec, status = raw.get("metadata") or {}, raw.get("spec") or {}, raw.get("status") or {}
            node = spec.get("nodeName")
            if not isinstance(node, str) or not node or status.get("phase") in ("Succeeded", "Failed"):
                continue
            out.setdefault(node, []).append(f"{meta.get('namespace', 'default')}/{meta.get('name', '')}")
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return {node: tuple(sorted(keys)) for node, keys in out.items()}


class EvictionResult(StrEnum):
    EVICTED = "Evicted"
    GONE = "Gone"
    BLOCKED = "Blocked"


@dataclass(frozen=True)
class Eviction:
    pod: str  # namespace/name
    result: EvictionResult
    pdbs: tuple[str, ...] = ()  # namespace/name of the budgets that select the pod (when blocked)
    message: str = ""

    def describe(self) -> str:
        if self.result != EvictionResult.BLOCKED:
            return f"pod {self.pod}: {self.result}"
        budgets = ", ".join(f"PodDisruptionBudget {p}" for p in self.pdbs) or "a PodDisruptionBudget"
        return f"eviction of pod {self.pod} blocked by {budgets}: {self.message}"


def budgets_selecting(kube: Kube, pod: Pod) -> tuple[str, ...]:
    """namespace/name of every PodDisruptionBudget in the pod's namespace whose selector matches it."""
    answer = kube.request(
        "GET", f"/apis/policy/v1/namespaces/{segment(pod.namespace, 'namespace')}/poddisruptionbudgets"
    )
    names = []
    for raw in answer.get("items") or ():
        pdb = parse_pdb(raw)
        if pdb.selector is not None and selector_matches(pdb.selector, pod.labels):
            names.append(pdb.key)
    return tuple(sorted(names))


def evict_pod(kube: Kube, pod: Pod, grace_period_seconds: int | None = None) -> Eviction:
    """Ask the API server to evict `pod`; a PDB refusal (429) comes back as BLOCKED with the budget named."""
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
    }
    if grace_period_seconds is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace_period_seconds}
    try:
        kube.request("POST", pod_path(pod.namespace, pod.name) + "/eviction", body=body)
    except NotFound:
        return Eviction(pod.key, EvictionResult.GONE)
    except TooManyRequests as e:
        return Eviction(pod.key, EvictionResult.BLOCKED, budgets_selecting(kube, pod), _server_message(e))
    except ApiStatusError as e:
        # 500 "more than one PodDisruptionBudget" is a refusal too, and never passes by waiting alone.
        if e.status == 500 and "DisruptionBudget" in str(e):
            return Eviction(pod.key, EvictionResult.BLOCKED, budgets_selecting(kube, pod), _server_message(e))
        raise
    return Eviction(pod.key, EvictionResult.EVICTED)


def delete_pod(kube: Kube, pod: Pod, grace_period_seconds: int | None = None) -> bool:
    """Delete `pod` bypassing budgets (the explicit escalation only); False if it was already gone."""
    body = {"gracePeriodSeconds": grace_period_seconds} if grace_period_seconds is not None else None
    try:
        kube.request("DELETE", pod_path(pod.namespace, pod.name), body=body)
    except NotFound:
        return False
    return True


def _server_message(e: ApiStatusError) -> str:
    message = str(e.body.get("message", "")) if e.body else ""
    return message or str(e)


def pod_objects_on_node(kube: Kube, node: str) -> list[Object]:
    answer = kube.request("GET", PODS, query=pods_on_node_query(node))
    return list(answer.get("items") or ())


def daemonsets_of(pods: Iterable[Pod]) -> tuple[str, ...]:
    """The DaemonSets ("namespace/name") owning any of `pods` that is not finished or being deleted."""
    return tuple(
        sorted(
            {
                f"{p.namespace}/{p.owner.name}"
                for p in pods
                if p.owner is not None
                and p.owner.kind == "DaemonSet"
                and not p.mirror
                and not p.deleting
                and not p.phase.terminal
            }
        )
    )


def daemonset_pods_missing(pods: Iterable[Pod], expected: set[str], runtime: str = "") -> dict[str, str]:
    """DaemonSets (namespace/name, added to `expected`) with a pod bound here that have no Running and
    Ready pod here, each with what its pods are doing, e.g. {"kube-system/proxy": "pod proxy-x: Pending"}.

    A DaemonSet seen once stays expected, so a pod deleted and not yet recreated still counts as missing.
    With `runtime` ("containerd"), a pod counts only once its containers are that runtime's: right after
    the kubelet restarts on a new runtime, a pod's status is still the one written under the old one
    (Running, Ready, docker:// containers) until the kubelet syncs it.
    """
    ready: set[str] = set()
    seen: dict[str, list[str]] = {}
    for pod in pods:
        if pod.owner is None or pod.owner.kind != "DaemonSet" or pod.mirror:
            continue
        ds = f"{pod.namespace}/{pod.owner.name}"
        expected.add(ds)
        stale = sorted(pod.runtimes - {runtime}) if runtime else []
        if pod.deleting:
            state = "terminating"
        elif pod.phase != PodPhase.RUNNING:
            state = str(pod.phase) + (f", {pod.waiting}" if pod.waiting else "")
        elif not pod.ready:
            state = "not Ready" + (f", {pod.waiting}" if pod.waiting else "")
        elif stale:
            before = ", ".join(stale)
            state = f"Ready as reported before the switch ({before} containers), not yet on {runtime}"
        else:
            ready.add(ds)
            continue
        seen.setdefault(ds, []).append(f"pod {pod.name}: {state}")
    return {ds: ", ".join(seen.get(ds, ["no pod on the node"])) for ds in sorted(expected - ready)}
