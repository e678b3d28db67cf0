"""Named objects of any kind, read for their conditions (`spec.rollout.gates.conditions`).

The kind's resource name comes from API discovery (`/api/v1`, `/apis/<group>/<version>`), kept per
group-version for the life of the process. Reading only: GET of one object by name. What the operator
may read is the chart's ClusterRole (`rbac.gateRules`); a 403 says which rule is missing.
"""

from __future__ import annotations

import threading
from typing import Any

from shimshift.kube.api import ApiStatusError, Kube, NotFound
from shimshift.kube.paths import segment
from shimshift.model.errors import KubeError


class ObjectUnreadable(KubeError):
    """The object a gate names cannot be read (missing, forbidden, an unknown kind): not a "no"."""

    transient = True  # someone may create it or grant the rule; the gate is read again with backoff


class Discovery:
    """kind -> (resource, namespaced) per group-version, asked once each."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._known: dict[str, dict[str, tuple[str, bool]]] = {}
        self._lock = threading.Lock()

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        with self._lock:
            known = self._known.get(api_version)
        if known is None or kind not in known:
            base = _base(api_version)
            try:
                answer = self.kube.request("GET", base)
            except NotFound as e:
                raise ObjectUnreadable(
                    f"the API server serves no {api_version} (is its CRD installed?)"
                ) from e
            except ApiStatusError as e:
                raise ObjectUnreadable(
                    f"discovery of {api_version} failed: HTTP {e.status} {e.reason}"
                ) from e
            known = {
                r["kind"]: (r["name"], bool(r.get("namespaced")))
                for r in answer.get("resources") or ()
                if isinstance(r, dict) and "/" not in str(r.get("name", "")) and r.get("kind")
            }
            with self._lock:
                self._known[api_version] = known
        if kind not in known:
            raise ObjectUnreadable(
                f"{api_version} has no kind {kind} (kinds: {', '.join(sorted(known)) or 'none'})"
            )
        return known[kind]


def _base(api_version: str) -> str:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return f"/apis/{segment(group, 'API group')}/{segment(version, 'API version')}"
    return f"/api/{segment(api_version, 'API version')}"


def read_object(
    kube: Kube, discovery: Discovery, api_version: str, kind: str, namespace: str, name: str
) -> dict[str, Any]:
    """The object, as the API server returns it; ObjectUnreadable saying why it cannot be read."""
    resource, namespaced = discovery.resource(api_version, kind)
    where = f"{namespace}/{name}" if namespace else name
    if namespaced and not namespace:
        raise ObjectUnreadable(f"{kind} is namespaced: give the namespace of {kind} {name}")
    path = _base(api_version)
    if namespaced:
        path += f"/namespaces/{segment(namespace, 'namespace')}"
    path += f"/{segment(resource, 'resource')}/{segment(name, f'{kind} name')}"
    try:
        return kube.request("GET", path)
    except NotFound as e:
        raise ObjectUnreadable(f"{kind} {where} does not exist") from e
    except ApiStatusError as e:
        if e.status == 403:
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            raise ObjectUnreadable(
                f"forbidden to get {kind} {where}: grant get on {resource} of API group {group!r} "
                "(the chart's rbac.gateRules)"
            ) from e
        raise ObjectUnreadable(f"reading {kind} {where}: HTTP {e.status} {e.reason}") from e
