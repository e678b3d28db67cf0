"""The API semantics over the store: create, get, list, replace, patch, delete, status subresource.

This is what a real API server's registry layer does for each request, minus HTTP: metadata
bookkeeping (uid, creationTimestamp, generation, resourceVersion), optimistic concurrency,
status-subresource rules, finalizers and deletionTimestamp, graceful pod deletion, garbage
collection of dependents, CRD registration, and schema validation of custom resources.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import crds, limits, schema
from .errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    unsupported_media_type,
)
from .objects import DNS1123_SUBDOMAIN, deep, iso, new_uid, random_suffix, utcnow
from .patching import json_patch, merge_patch, strategic_merge_patch
from .registry import Registry, ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import GK, Store, Stored

# Node registration carries its status; every other type with a status subresource starts empty.
KEEP_STATUS_ON_CREATE = ("Node", "Namespace")
CORE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


@dataclass
class Cluster:
    registry: Registry = field(default_factory=Registry.with_builtins)
    store: Store = field(default_factory=Store)
    time_factor: float = 1.0
    # called with (pod key, seconds of real time) when a pod starts terminating gracefully
    on_graceful_delete: Callable[[str, str, float], None] | None = None
    warnings: list[str] = field(default_factory=list)
    #: (namespace, pod) -> its log, for the pods the kubelet stand-in runs to completion (`echo`)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)

    def bootstrap(self, kopf_peering: bool = True) -> None:
        for ns in CORE_NAMESPACES:
            self.create(self.rt("", "v1", "namespaces"), None, {"metadata": {"name": ns}})
        if kopf_peering:
            crd_rt = self.rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            for crd in crds.KOPF_PEERING_CRDS:
                self.create(crd_rt, None, deep(crd))

    def rt(self, group: str, version: str, plural: str) -> ResourceType:
        found = self.registry.get(group, version, plural)
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return found

    # --- reads ---------------------------------------------------------------------------------

    def view(self, rt: ResourceType, stored: Stored) -> dict[str, Any]:
        """The object as a client of ``rt``'s version sees it (only apiVersion differs across versions)."""
        if stored.obj.get("apiVersion") == rt.api_version:
            return stored.obj
        return {**stored.obj, "apiVersion": rt.api_version}

    def get_stored(self, rt: ResourceType, namespace: str | None, name: str) -> Stored:
        stored = self.store.get(rt.gk, namespace or "" if rt.namespaced else "", name)
        if stored is None:
            raise not_found(rt.plural, rt.group, name)
        return stored

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        return self.view(rt, self.get_stored(rt, namespace, name))

    def list(
        self, rt: ResourceType, namespace: str | None, labels: str | None = None, fields: str | None = None
    ) -> list[Stored]:
        found = self.store.list(
            rt.gk,
            namespace if rt.namespaced else None,
            LabelSelector.parse(labels),
            FieldSelector.parse(fields),
        )
        return [s for _, s in found]

    # --- writes --------------------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, namespace: str | None) -> str:
        if not rt.namespaced:
            return ""
        if not namespace:
            raise bad_request("the server could not find the requested resource (namespace is required)")
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        return namespace

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: dict[str, Any],
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        obj = deep(body)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        if rt.namespaced:
            url_ns = namespace or meta.get("namespace") or ""
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = self._check_namespace(rt, url_ns)
        else:
            meta.pop("namespace", None)
        self._check_kind(rt, obj)
        if not meta.get("name"):
            if meta.get("generateName"):
                for _ in range(20):
                    candidate = meta["generateName"] + random_suffix()
                    if self.store.get(rt.gk, meta.get("namespace", ""), candidate) is None:
                        break
                meta["name"] = candidate
            else:
                raise invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        FieldError(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
        if self.store.get(rt.gk, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(rt.plural, rt.group, meta["name"])
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = iso(utcnow())
        meta["generation"] = 1
        if rt.has_status and rt.kind not in KEEP_STATUS_ON_CREATE:
            obj.pop("status", None)  # as the registries' PrepareForCreate do; seeding restores it
        self._default_builtin(rt, obj)
        self._admit(rt, obj, None, field_validation)
        if dry_run:
            return self.view(rt, Stored(obj))
        limits.check_stored(obj)
        stored = self.store.put(rt.gk, obj)
        self._after_write(rt, stored, None)
        return self.view(rt, stored)

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        old = self.get_stored(rt, namespace, name)
        new = deep(body)
        new_meta = new.get("metadata") or {}
        if new_meta.get("name") and new_meta["name"] != name:
            raise bad_request(
                f"the name of the object ({new_meta['name']}) does not match the name on the URL ({name})"
            )
        rv = new_meta.get("resourceVersion")
        if rv:
            if rv != old.meta["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
        elif rt.crd_name is not None or rt.gk == ("coordination.k8s.io", "leases"):
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    FieldError(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._update(rt, old, new, subresource, field_validation, dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        subresource: str | None = None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        old = self.get_stored(rt, namespace, name)
        current = self.view(rt, old)
        ctype = content_type.split(";")[0].strip()
        if ctype == MERGE:
            patched = merge_patch(current, body)
        elif ctype == JSON_PATCH:
            patched = json_patch(current, body)
        elif ctype == STRATEGIC:
            if not rt.strategic:
                raise unsupported_media_type(ctype)
            patched = strategic_merge_patch(current, body, rt.kind)
        elif ctype == APPLY:
            patched = merge_patch(current, body)
        else:
            raise unsupported_media_type(ctype)
        if not isinstance(patched, dict):
            raise bad_request("the patch produced something that is not an object")
        patched_meta = patched.get("metadata") or {}
        rv = patched_meta.get("resourceVersion")
        if rv is not None and str(rv) != old.meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        if patched_meta.get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        return self._update(rt, old, patched, subresource, field_validation, dry_run)

    def _update(
        self,
        rt: ResourceType,
        old: Stored,
        new: dict[str, Any],
        subresource: str | None,
        field_validation: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        old_obj = old.obj
        if subresource == "status":
            merged = {**deep(old_obj), "status": new.get("status")}
            if merged["status"] is None:
                merged.pop("status")
            new = merged
        elif subresource not in (None, ""):
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({subresource})"
            )
        else:
            if rt.has_status:
                if "status" in old_obj:
                    new["status"] = deep(old_obj["status"])
                else:
                    new.pop("status", None)
        meta = new.setdefault("metadata", {}) or {}
        new["metadata"] = meta
        old_meta = old.meta
        for key in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new["apiVersion"] = old_obj.get("apiVersion")
        new["kind"] = old_obj.get("kind")
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise invalid(
                    rt.kind,
                    rt.group,
                    old_meta["name"],
                    [
                        FieldError(
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(added)!r}",
                        )
                    ],
                )
        if _strip(new, rt) != _strip(old_obj, rt):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        self._admit(rt, new, old_obj, field_validation)
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if new == old_obj:
            return self.view(rt, old)  # a no-op write: no new resourceVersion, no watch event
        if dry_run:
            return self.view(rt, Stored(new))
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            stored = self._remove(rt, meta.get("namespace", ""), meta["name"])
            return self.view(rt, stored)
        limits.check_stored(new)
        stored = self.store.put(rt.gk, new)
        self._after_write(rt, stored, old)
        return self.view(rt, stored)

    def delete(
        self, rt: ResourceType, namespace: str | None, name: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        options = options or {}
        stored = self.get_stored(rt, namespace, name)
        meta = stored.meta
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.plural} "{name}": Precondition failed: '
                f"UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        grace = options.get("gracePeriodSeconds")
        if rt.gk == ("", "pods"):
            spec = stored.obj.get("spec") or {}
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
            phase = (stored.obj.get("status") or {}).get("phase")
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            grace = max(0, int(grace))
            if grace > 0:
                return self._start_graceful_delete(rt, stored, grace)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return self.view(rt, stored)
            obj = {
                **stored.obj,
                "metadata": {**meta, "deletionTimestamp": iso(utcnow()), "deletionGracePeriodSeconds": 0},
            }
            return self.view(rt, self.store.put(rt.gk, obj))
        removed = self._remove(
            rt, meta.get("namespace", ""), name, orphan=options.get("propagationPolicy") == "Orphan"
        )
        return self.view(rt, removed)

    def _start_graceful_delete(self, rt: ResourceType, stored: Stored, grace: int) -> dict[str, Any]:
        meta = stored.meta
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current is not None and current <= grace:
            return self.view(rt, stored)
        deadline = utcnow() + dt.timedelta(seconds=grace)
        obj = {
            **stored.obj,
            "metadata": {**meta, "deletionTimestamp": iso(deadline), "deletionGracePeriodSeconds": grace},
        }
        new = self.store.put(rt.gk, obj)
        if self.on_graceful_delete is not None:
            self.on_graceful_delete(meta["namespace"], meta["name"], grace * self.time_factor)
        return self.view(rt, new)

    def finish_graceful_delete(self, namespace: str, name: str) -> None:
        """What the kubelet does once a terminating pod's containers are gone."""
        rt = self.rt("", "v1", "pods")
        stored = self.store.get(rt.gk, namespace, name)
        if stored is None or not stored.meta.get("deletionTimestamp"):
            return
        if stored.meta.get("finalizers"):
            obj = {**stored.obj, "metadata": {**stored.meta, "deletionGracePeriodSeconds": 0}}
            self.store.put(rt.gk, obj)
            return
        self._remove(rt, namespace, name)

    def _remove(self, rt: ResourceType, namespace: str, name: str, orphan: bool = False) -> Stored:
        removed = self.store.remove(rt.gk, namespace, name)
        if removed is None:
            raise not_found(rt.plural, rt.group, name)
        if rt.gk == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._unregister_crd(removed.obj)
        if rt.gk == ("", "namespaces"):
            self._purge_namespace(name)
        if not orphan:
            self._collect_garbage(removed.meta.get("uid", ""))
        return removed

    def _collect_garbage(self, uid: str) -> None:
        for gk, (ns, name) in self.store.dependents(uid):
            stored = self.store.get(gk, ns, name)
            if stored is None:
                continue
            refs = stored.meta.get("ownerReferences") or []
            if any(r.get("uid") != uid and self._owner_exists(r, ns) for r in refs):
                continue
            rt = self.registry.storage_type(*gk)
            if rt is not None:
                with contextlib.suppress(ApiError):
                    self.delete(rt, ns or None, name, {"propagationPolicy": "Background"})

    def _owner_exists(self, ref: dict[str, Any], namespace: str) -> bool:
        rt = self.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return False
        found = self.store.get(rt.gk, namespace if rt.namespaced else "", ref.get("name", ""))
        return found is not None and found.meta.get("uid") == ref.get("uid")

    def _purge_namespace(self, namespace: str) -> None:
        for gk, bucket in list(self.store.buckets.items()):
            for ns, name in [k for k in bucket.items if k[0] == namespace]:
                rt = self.registry.storage_type(*gk)
                if rt is not None and rt.namespaced:
                    self.store.remove(gk, ns, name)

    # --- admission -----------------------------------------------------------------------------

    def _check_kind(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if api_version != rt.api_version
                else f"kind {kind} does not match the expected kind {rt.kind}"
            )
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version

    def _default_builtin(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        spec = (
            obj.setdefault("spec", {})
            if rt.kind in ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
            else None
        )
        if rt.gk == ("", "pods") and spec is not None:
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif spec is not None and rt.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            spec.setdefault("replicas", 1)
        if spec is not None and rt.kind == "Deployment":
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            )
        elif spec is not None and rt.kind in ("DaemonSet", "StatefulSet"):
            spec.setdefault(
                "updateStrategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1} if rt.kind == "DaemonSet" else {"partition": 0},
                },
            )
            if rt.kind == "StatefulSet":
                spec.setdefault("podManagementPolicy", "OrderedReady")
        if rt.gk == ("", "namespaces"):
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def _admit(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, field_validation: str | None
    ) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
        errors: list[FieldError] = []
        if (old is None and rt.kind not in ("Event",) and not DNS1123_SUBDOMAIN.match(name)) or len(
            name
        ) > 253:
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                    "character "
                    "(e.g. 'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                )
            )
        if rt.gk == ("", "pods"):
            containers = (obj.get("spec") or {}).get("containers")
            if not containers:
                errors.append(FieldError("FieldValueRequired", "spec.containers", "Required value"))
            else:
                for i, c in enumerate(containers):
                    if not c.get("name"):
                        errors.append(
                            FieldError("FieldValueRequired", f"spec.containers[{i}].name", "Required value")
                        )
                    if not c.get("image"):
                        errors.append(
                            FieldError("FieldValueRequired", f"spec.containers[{i}].image", "Required value")
                        )
        errors.extend(limits.field_errors(rt.gk, obj))
        if rt.gk == ("", "events"):
            # core/v1 Event validation: a reference without a namespace only in "default" (or none)
            involved = str((obj.get("involvedObject") or {}).get("namespace") or "")
            namespace = str(meta.get("namespace") or "")
            if (not involved and namespace not in ("", "default")) or (involved and involved != namespace):
                errors.append(
                    FieldError(
                        "FieldValueInvalid",
                        "involvedObject.namespace",
                        f'Invalid value: "{involved}": does not match event.namespace',
                    )
                )
        if rt.gk == ("apiextensions.k8s.io", "customresourcedefinitions"):
            errors.extend(crds.validate_crd(obj))
        if rt.schema is not None:
            unknown = schema.prune(obj, rt.schema)
            if unknown and field_validation == "Strict":
                detail = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: {detail}"
                )
            if unknown and field_validation == "Warn":
                self.warnings.extend(f'unknown field "{u}"' for u in unknown)
            schema.apply_defaults(obj, rt.schema)
            errors.extend(schema.validate(obj, rt.schema))
        if errors:
            raise invalid(rt.kind, rt.group, name, errors)

    def _after_write(self, rt: ResourceType, stored: Stored, old: Stored | None) -> None:
        if rt.gk == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._register_crd(rt, stored)

    def _register_crd(self, rt: ResourceType, stored: Stored) -> None:
        crd = stored.obj
        self.registry.remove_crd(crd["metadata"]["name"])
        for new_rt in crds.types_from_crd(crd):
            self.registry.add(new_rt)
        status = crds.established_status(crd)
        old_status = crd.get("status") or {}
        if old_status.get("acceptedNames") != status["acceptedNames"] or not old_status.get("conditions"):
            self.store.put(rt.gk, {**crd, "metadata": dict(crd["metadata"]), "status": status})

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        gone = self.registry.remove_crd(crd["metadata"]["name"])
        gks: set[GK] = {g.gk for g in gone}
        for gk in gks:
            for stored in list(self.store.all(gk)):
                self.store.remove(gk, stored.meta.get("namespace", ""), stored.meta["name"])


def _strip(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """What counts as 'spec' for metadata.generation: everything but metadata (and status, if separate)."""
    skip = ("metadata", "status") if rt.has_status else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip}


def parse_body_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict) and value.get("kind", "").endswith("List") and "items" in value:
        return [v for v in value["items"] if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def selector_args(query: dict[str, str]) -> tuple[str | None, str | None]:
    return query.get("labelSelector"), query.get("fieldSelector")
