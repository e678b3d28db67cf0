"""``RealKubeApi``: the test-facing handle on a real control plane, with the methods of
``testbed.kubeapi.KubeApi`` that make sense on a real server.

``seed`` (create, or replace what exists: apply), ``get``/``must_get``, ``list``, ``patch`` (merge
patch), ``delete``, ``reset`` (remove what tests created since the session began), ``kubeconfig``,
``env()``, ``url``, ``resource_version``. Resources are named as for the emulator: ``"pods"``,
``"Pod"``, ``"deployments.apps"``, ``"apps/v1/deployments"``, ``"widgets.example.io"``, resolved through
the server's discovery. What only an emulator can do (its request log, injected faults, cut watches,
a time factor) is not here: the server is real.
"""

from __future__ import annotations

import builtins
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.kubeapi.runner import load_documents
from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.waiting import wait_until

#: Namespaces of the control plane's own components: never cleaned by ``reset``.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: Objects the control plane itself keeps in every namespace (recreated if deleted).
SYSTEM_OBJECTS = frozenset(
    {
        ("serviceaccounts", "default"),
        ("configmaps", "kube-root-ca.crt"),
        ("services", "kubernetes"),
        ("endpoints", "kubernetes"),
        ("endpointslices", "kubernetes"),
    }
)
#: Kinds reset never deletes one by one (they go with their namespace or are the server's own records).
SKIPPED = frozenset({"events", "bindings", "componentstatuses", "tokenreviews", "localsubjectaccessreviews"})
RESET_TIMEOUT = 60.0


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str]
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}"

    def path(self, name: str, namespace: str | None, subresource: str | None = None) -> str:
        tail = f"/{subresource}" if subresource else ""
        return f"{self.collection(namespace or 'default')}/{name}{tail}"


class Discovery:
    """The server's resources (preferred version of each group), reloaded when a name is unknown."""

    def __init__(self, api: KubeHttp) -> None:
        self.api = api
        self.resources: list[Resource] = []
        self.all_versions: list[Resource] = []

    def load(self) -> None:
        preferred: list[Resource] = []
        every: list[Resource] = []
        groups: list[tuple[str, str, bool]] = [("", "v1", True)]
        for group in self.api.request("GET", "/apis").get("groups") or []:
            best = group["preferredVersion"]["version"]
            groups += [(group["name"], v["version"], v["version"] == best) for v in group["versions"]]
        for group_name, version, is_preferred in groups:
            path = f"/apis/{group_name}/{version}" if group_name else "/api/v1"
            try:
                listed = self.api.request("GET", path).get("resources") or []
            except ApiError:
                continue  # a group being removed (its CRD deleted) or not yet served
            for r in listed:
                if "/" in r["name"]:
                    continue
                resource = Resource(
                    group=group_name,
                    version=version,
                    plural=r["name"],
                    kind=r["kind"],
                    namespaced=bool(r["namespaced"]),
                    verbs=frozenset(r.get("verbs") or ()),
                    short_names=tuple(r.get("shortNames") or ()),
                )
                every.append(resource)
                if is_preferred:
                    preferred.append(resource)
        self.resources, self.all_versions = preferred, every

    def _find(self, name: str) -> Resource | None:
        if "/" in name:
            *gv, plural = name.split("/")
            group, version = (gv[0], gv[1]) if len(gv) == 2 else ("", gv[0])
            return next(
                (r for r in self.all_versions if (r.group, r.version, r.plural) == (group, version, plural)),
                None,
            )
        plural, _, group = name.partition(".")
        candidates = [
            r
            for r in self.resources
            if (r.plural == plural and (r.group == group or not group))
            or r.kind == name
            or name in r.short_names
        ]
        return min(candidates, key=lambda r: (r.group != "", r.group)) if candidates else None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        return next(
            (r for r in self.all_versions if (r.group, r.version, r.kind) == (group, version, kind)), None
        )

    def _reload_and(self, find: Callable[[], Resource | None]) -> Resource | None:
        self.load()
        return find()

    def resolve(self, name: str, timeout: float = 10.0) -> Resource:
        """The resource ``name`` names; discovery is reloaded (bounded) for one just added (a CRD)."""
        found = self._find(name)
        if found is None:
            found = wait_until(
                lambda: self._reload_and(lambda: self._find(name)),
                timeout,
                what=f"the server to serve resource {name!r}",
                interval=0.2,
                error=KeyError,
            )
        return found

    def resolve_kind(self, api_version: str, kind: str, timeout: float = 10.0) -> Resource:
        found = self.by_kind(api_version, kind)
        if found is None:
            found = wait_until(
                lambda: self._reload_and(lambda: self.by_kind(api_version, kind)),
                timeout,
                what=f"the server to serve {api_version} {kind}",
                interval=0.2,
                error=KeyError,
            )
        return found


@dataclass(frozen=True)
class Baseline:
    """What existed when the session's control plane was ready: reset removes everything else."""

    namespaces: frozenset[str]
    uids: frozenset[str]


class RealKubeApi:
    """A handle on a real API server, authenticated by ``kubeconfig`` (the admin's, for tests)."""

    def __init__(self, kubeconfig: Path, baseline: Baseline | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.http = KubeHttp(kubeconfig, timeout=30.0)
        self.discovery = Discovery(self.http)
        self.discovery.load()
        self.baseline = baseline if baseline is not None else self.snapshot()

    @property
    def url(self) -> str:
        return str(self.http.server)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def resolve(self, resource: str) -> Resource:
        return self.discovery.resolve(resource)

    # ---- reading ----------------------------------------------------------------------------
    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        rt = self.resolve(resource)
        try:
            found: dict[str, Any] = self.http.request("GET", rt.path(name, namespace))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return found

    def must_get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """``get`` for an object that must exist; an AssertionError naming it when it does not."""
        obj = self.get(resource, name, namespace)
        assert obj is not None, f"{resource} {namespace + '/' if namespace else ''}{name} does not exist"
        return obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        rt = self.resolve(resource)
        return self._list(rt, namespace, label_selector, field_selector)

    def _list(
        self,
        rt: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        params = {
            k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v
        }
        query = "?" + urllib.parse.urlencode(params) if params else ""
        answer = self.http.request("GET", rt.collection(namespace) + query)
        items: builtins.list[dict[str, Any]] = answer.get("items") or []
        for item in items:  # a list's items carry no kind; the emulator's do
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return items

    @property
    def resource_version(self) -> int:
        """The server's current resourceVersion (etcd's revision), as a number."""
        answer = self.http.request("GET", "/api/v1/namespaces?limit=1")
        return int(answer["metadata"]["resourceVersion"])

    # ---- writing ----------------------------------------------------------------------------
    def ensure_namespace(self, namespace: str) -> None:
        """Create ``namespace`` if missing and wait for its default ServiceAccount (until the controller
        manager has made it, the ServiceAccount admission plugin refuses pods there)."""
        try:
            self.http.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        except ApiError as e:
            if e.status != 409:
                raise

        def account() -> bool:
            try:
                self.http.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
            except ApiError:
                return False
            return True

        wait_until(account, 30, what=f"the default ServiceAccount of namespace {namespace}", interval=0.1)

    def seed(
        self, source: str | Path | dict[str, Any] | Iterable[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """Create objects from YAML text, a YAML file, or dicts (an existing one is replaced: apply);
        a ``status`` in a document is then written through the status subresource. Missing namespaces
        are created. Returns the objects as stored."""
        created = []
        for doc in load_documents(source):
            rt = self.discovery.resolve_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
            meta = doc.get("metadata") or {}
            namespace = (meta.get("namespace") or "default") if rt.namespaced else None
            if namespace:
                self.ensure_namespace(namespace)
            body = {k: v for k, v in doc.items() if k != "status"} if rt.kind != "Node" else dict(doc)
            try:
                obj: dict[str, Any] = self.http.request("POST", rt.collection(namespace), body)
            except ApiError as e:
                if e.status != 409 or not meta.get("name"):
                    raise
                current = self.http.request("GET", rt.path(meta["name"], namespace))
                body = {
                    **body,
                    "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]},
                }
                obj = self.http.request("PUT", rt.path(meta["name"], namespace), body)
            if "status" in doc and f"{rt.plural}/status" in self._subresources(rt):
                obj = self.http.merge_patch(
                    rt.path(obj["metadata"]["name"], namespace, "status"), {"status": doc["status"]}
                )
            created.append(obj)
        return created

    def _subresources(self, rt: Resource) -> set[str]:
        path = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        return {r["name"] for r in self.http.request("GET", path).get("resources") or []}

    def patch(
        self,
        resource: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        rt = self.resolve(resource)
        answer: dict[str, Any] = self.http.merge_patch(rt.path(name, namespace, subresource), patch)
        return answer

    def delete(
        self, resource: str, name: str, namespace: str | None = None, grace_period_seconds: int | None = None
    ) -> dict[str, Any]:
        rt = self.resolve(resource)
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        answer: dict[str, Any] = self.http.request("DELETE", rt.path(name, namespace), options)
        return answer

    # ---- cleanup ----------------------------------------------------------------------------
    def _cleanable(self) -> builtins.list[Resource]:
        return [
            r for r in self.discovery.resources if {"list", "delete"} <= r.verbs and r.plural not in SKIPPED
        ]

    def snapshot(self) -> Baseline:
        namespaces = frozenset(n["metadata"]["name"] for n in self._list(self.resolve("namespaces")))
        uids: set[str] = set()
        for rt in self._cleanable():
            try:
                uids.update(o["metadata"]["uid"] for o in self._list(rt))
            except ApiError:
                continue
        return Baseline(namespaces, frozenset(uids))

    def _leftovers(self) -> builtins.list[tuple[Resource, dict[str, Any]]]:
        found = []
        for rt in self._cleanable():
            if rt.plural == "namespaces":
                continue
            try:
                items = self._list(rt)
            except ApiError:
                continue
            for obj in items:
                meta = obj["metadata"]
                if meta["uid"] in self.baseline.uids:
                    continue
                namespace = meta.get("namespace")
                if namespace in SYSTEM_NAMESPACES or (rt.plural, meta["name"]) in SYSTEM_OBJECTS:
                    continue
                found.append((rt, obj))
        return found

    def reset(self) -> None:
        """Remove what was created since the baseline: objects in the default and the tests' own
        namespaces (finalizers stripped, pods with grace period 0), the tests' namespaces and
        cluster-scoped objects (Nodes, CRDs, cluster roles, ...); waits (bounded) until they are gone."""
        self.discovery.load()

        def clean() -> bool:
            leftovers = self._leftovers()
            namespaces = [
                n
                for n in self._list(self.resolve("namespaces"))
                if n["metadata"]["name"] not in self.baseline.namespaces
            ]
            for rt, obj in [*leftovers, *((self.resolve("namespaces"), n) for n in namespaces)]:
                meta = obj["metadata"]
                path = rt.path(meta["name"], meta.get("namespace"))
                options: dict[str, Any] = {"propagationPolicy": "Background"}
                if rt.plural == "pods":
                    options["gracePeriodSeconds"] = 0
                try:
                    if meta.get("finalizers") and rt.plural != "namespaces":
                        self.http.merge_patch(path, {"metadata": {"finalizers": None}})
                    if not meta.get("deletionTimestamp") or rt.plural == "pods":
                        self.http.request(
                            "DELETE", path, {"apiVersion": "v1", "kind": "DeleteOptions", **options}
                        )
                except ApiError as e:
                    if e.status not in (404, 409, 405):
                        raise
            if leftovers or namespaces:
                if any(rt.plural in ("customresourcedefinitions", "apiservices") for rt, _ in leftovers):
                    self.discovery.load()  # a deleted CRD's resources go away
                return False
            return True

        wait_until(clean, RESET_TIMEOUT, what="the objects the test created to be deleted", interval=0.2)
