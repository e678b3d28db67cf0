"""The verify step's canary pod on the API: create it, watch it, read its log and its Events, delete it.

Everything happens in one namespace (the operator's own, or the one `shimshift run --canary-namespace`
names), where the chart's Role grants pods create/delete, pods/log get and events list; the pods are
listed and watched by label there, never fetched by name (the ClusterRole's pods list/watch covers it).
A canary is found by its labels (`model.canary.canary_selector`), so a canary a crash left behind is
found and deleted by the next verify, rollback or finish of its node.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from shimshift.kube.api import ApiStatusError, Conflict, Kube, NotFound, Object
from shimshift.kube.paths import segment
from shimshift.kube.watching import Objects, object_key, wait_until
from shimshift.model.canary import (
    CONTAINER,
    CanaryPod,
    canary_manifest,
    canary_name,
    canary_selector,
    parse_canary,
)

log = logging.getLogger(__name__)

#: Bytes of the canary's log read: it echoes one line.
LOG_LIMIT_BYTES = 4096
#: Events about the canary pod read (the API server's order; the newest are quoted).
EVENTS_LIMIT = 50


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{segment(namespace, 'namespace')}/pods"


def canary_query(node: str) -> list[tuple[str, str]]:
    """`node`'s canaries: by label, and bound to it (the server's spec.nodeName index answers; the
    cost is that node's pods, never the namespace's or the fleet's)."""
    return [("labelSelector", canary_selector(node)), ("fieldSelector", f"spec.nodeName={node}")]


def list_canaries(kube: Kube, namespace: str, node: str) -> list[CanaryPod]:
    answer = kube.request("GET", pods_path(namespace), query=canary_query(node))
    return [parse_canary(o) for o in answer.get("items") or ()]


def delete_canary(kube: Kube, namespace: str, name: str) -> None:
    with contextlib.suppress(NotFound):  # already gone: what was wanted
        kube.request(
            "DELETE",
            f"{pods_path(namespace)}/{segment(name, 'pod name')}",
            body={"gracePeriodSeconds": 0, "propagationPolicy": "Background"},
        )


def delete_canaries(kube: Kube, namespace: str, node: str) -> int:
    """Delete every canary pod of `node`; how many there were (those already deleting included)."""
    found = list_canaries(kube, namespace, node)
    for pod in found:
        if not pod.deleting:
            delete_canary(kube, namespace, pod.name)
    return len(found)


def run_canary(
    kube: Kube,
    namespace: str,
    node: str,
    *,
    image: str,
    token: str,
    migration: str,
    wait: float,
    settled: Callable[[CanaryPod], bool],
) -> CanaryPod:
    """`node`'s canary for `token`, created unless it exists, watched at most `wait` seconds until
    `settled`; as last seen. A canary of another token (an earlier attempt) is deleted first, and this
    one is created once that is gone (a later pass, while it terminates)."""
    name = canary_name(node)
    manifest = canary_manifest(node, namespace, image, token, migration)
    try:  # the first pass of a verify: nothing to look for first
        created: Object | None = kube.request("POST", pods_path(namespace), body=manifest)
    except Conflict:  # the node's canary exists: this verify's (an earlier pass) or an earlier attempt's
        created = None
    if created is not None:
        mine = parse_canary(created)
        known = (
            {object_key(created): created},
            str((created.get("metadata") or {}).get("resourceVersion", "")),
        )
    else:
        answer = kube.request("GET", pods_path(namespace), query=canary_query(node))
        items = list(answer.get("items") or ())
        pods = [parse_canary(o) for o in items]
        known = (
            {object_key(o): o for o in items},
            str((answer.get("metadata") or {}).get("resourceVersion", "")),
        )
        found = next((p for p in pods if p.token == token and not p.deleting), None)
        others = [p for p in pods if p is not found]
        for old in others:
            if not old.deleting:
                log.info("node %s: deleting the canary pod %s an earlier verify left", node, old.name)
                delete_canary(kube, namespace, old.name)
        if found is None:
            if any(p.name == name for p in others):
                return CanaryPod(
                    name, token, "", reason="Replacing", message="an earlier canary is terminating"
                )
            try:  # gone between the answer and the list
                made = kube.request("POST", pods_path(namespace), body=manifest)
            except Conflict:  # made again meanwhile: watch what is there
                made = {"metadata": {"name": name}}
            found = parse_canary(made)
            known = None
        mine = found
    last = mine

    def done(objects: Objects) -> bool:
        nonlocal last
        pod = next((parse_canary(o) for o in objects.values() if parse_canary(o).token == token), None)
        if pod is None:
            return False
        last = pod
        return settled(pod)

    if not settled(last):
        wait_until(kube, pods_path(namespace), done, timeout=wait, query=canary_query(node), known=known)
    return last


def read_canary_log(kube: Kube, namespace: str, node: str) -> str | None:
    """The canary's log; None when the API server answers that it cannot fetch it from the node's
    kubelet (a 5xx: its connection to the kubelet, not the runtime, failed)."""
    try:
        answer = kube.request(
            "GET",
            f"{pods_path(namespace)}/{segment(canary_name(node), 'pod name')}/log",
            query=[("container", CONTAINER), ("limitBytes", str(LOG_LIMIT_BYTES))],
            text=True,
        )
    except NotFound:
        return ""
    except ApiStatusError as e:
        if e.status < 500:
            raise
        log.warning("node %s: the canary's log cannot be read through the API server: %s", node, e)
        return None
    return str(answer.get("text", ""))


def _event_order(event: dict[str, Any]) -> tuple[str, int]:
    """Oldest first: by lastTimestamp (whole seconds: kubelet posts several Events in one), then by
    resourceVersion, which the API server raises with every write (a number on every real server;
    one that is not sorts first)."""
    rv = str((event.get("metadata") or {}).get("resourceVersion", ""))
    return str(event.get("lastTimestamp") or event.get("eventTime") or ""), int(rv) if rv.isdigit() else 0


def read_canary_events(kube: Kube, namespace: str, node: str) -> tuple[str, ...]:
    """ "<type> <reason>: <message>" of each Event about `node`'s canary pod, oldest first."""
    selector = f"involvedObject.kind=Pod,involvedObject.name={canary_name(node)}"
    answer = kube.request(
        "GET",
        f"/api/v1/namespaces/{segment(namespace, 'namespace')}/events",
        query=[("fieldSelector", selector), ("limit", str(EVENTS_LIMIT))],
    )
    events = [e for e in answer.get("items") or () if isinstance(e, dict)]
    events.sort(key=_event_order)
    return tuple(
        f"{e.get('type', 'Normal')} {e.get('reason', '')}: {' '.join(str(e.get('message', '')).split())}"
        for e in events
    )
