"""Replays of the cluster's event history: what an SRE fears, asserted after the fact.

Sampling the cluster while the operator works can miss a moment; the emulator's history holds every
write in order, and on the real server a watch recorded from the test's start does
(``tests.e2e.realapi.Recorder``), so a replay sees each state the cluster was in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from testbed.kubeapi import KubeApi

from shimshift.kube.api import USER_AGENT
from shimshift.model import keys


def is_ready(obj: dict[str, Any]) -> bool:
    """The object's Ready condition is True (a pod or a node)."""
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


#: one change: (ADDED/MODIFIED/DELETED, (namespace, name), the object after it)
Change = tuple[str, tuple[str, str], dict[str, Any]]


def _history(cluster: Any, resource: str, since_rv: int) -> list[Change]:
    if hasattr(cluster, "history"):  # the real server: the recorded watch
        return [(e.type, e.key, e.obj) for e in cluster.history(resource, since_rv)]
    emulated: KubeApi = cluster
    history = emulated.call(lambda: list(emulated.emulator.store.history))
    return [(e.type, e.key, e.new.obj) for e in history if e.gk == ("", resource) and e.rv > since_rv]


def min_healthy_after_ready(cluster: Any, replicas: int, app: str = "web") -> int:
    """Replay the cluster's pod history: the fewest healthy pods labelled `app` once all `replicas` were
    first up (a pod being deleted is not healthy, as the disruption controller counts)."""
    state: dict[tuple[str, str], bool] = {}
    lowest: int | None = None
    for kind, key, obj in _history(cluster, "pods", 0):
        if (obj["metadata"].get("labels") or {}).get("app") != app:
            continue
        if kind == "DELETED":
            state.pop(key, None)
        else:
            state[key] = is_ready(obj) and not obj["metadata"].get("deletionTimestamp")
        healthy = sum(state.values())
        if lowest is None and healthy >= replicas:
            lowest = healthy
        elif lowest is not None:
            lowest = min(lowest, healthy)
    assert lowest is not None, f"the {app} pods never all became ready"
    return lowest


def max_cordoned(cluster: Any, since_rv: int) -> int:
    """Replay the cluster's node history after `since_rv`: the most nodes cordoned at any one moment.
    A node counts from the first write that cordons it or marks it with shimshift's cordoned-by
    annotation until both are gone, so whichever order the operator writes them in, no moment is missed."""
    cordoned: set[str] = set()
    most = 0
    for kind, key, obj in _history(cluster, "nodes", since_rv):
        marked = keys.CORDONED_BY_ANNOTATION in (obj["metadata"].get("annotations") or {})
        if kind != "DELETED" and (marked or (obj.get("spec") or {}).get("unschedulable")):
            cordoned.add(key[1])
        else:
            cordoned.discard(key[1])
        most = max(most, len(cordoned))
    return most


def operator_requests(records: Iterable[Any]) -> list[Any]:
    """The API requests the operator process made, kopf's included, told apart from the fake kubelets',
    kubectl's and the test's own by their User-Agent."""
    return [r for r in records if r.resource and r.user_agent.startswith((USER_AGENT, "kopf/"))]
