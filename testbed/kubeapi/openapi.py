"""Just enough OpenAPI v3 for kubectl to use server-side field validation.

kubectl (``--validate=strict``, the default) asks ``/openapi/v3`` whether the server supports the
``fieldValidation`` query parameter for a kind (k8s.io/cli-runtime queryparam verifier): it looks
for a PATCH operation tagged with the kind's ``x-kubernetes-group-version-kind`` that lists the
parameter. For group-versions not listed (CRDs), it uses core/v1 Namespace as the proxy. With
support confirmed, kubectl sends ``fieldValidation=Strict`` and never needs a client-side schema.
Schemas themselves are not served; kubectl then falls back to its compiled-in types for
strategic-merge patches, as it does against any server whose OpenAPI lacks a type.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .registry import Registry

_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for n in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _builtin_gvs(registry: Registry) -> list[tuple[str, str]]:
    return sorted({(rt.group, rt.version) for rt in registry.types.values() if rt.crd_name is None})


def root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, version in _builtin_gvs(registry):
        path = _gv_path(group, version)
        digest = hashlib.sha256(
            repr(
                sorted(
                    rt.plural for rt in registry.types.values() if rt.group == group and rt.version == version
                )
            ).encode()
        ).hexdigest()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def group_version(registry: Registry, path: str) -> dict[str, Any] | None:
    wanted = path.strip("/")
    for group, version in _builtin_gvs(registry):
        if _gv_path(group, version) != wanted:
            continue
        paths: dict[str, Any] = {}
        for rt in registry.types.values():
            if rt.group != group or rt.version != version or rt.crd_name is not None:
                continue
            prefix = f"/{wanted}/namespaces/{{namespace}}" if rt.namespaced else f"/{wanted}"
            gvk = {"group": group, "version": version, "kind": rt.kind}
            op = {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS,
                "responses": {"200": {"description": "OK"}},
            }
            paths[f"{prefix}/{rt.plural}/{{name}}"] = {"patch": op, "put": op}
            paths[f"{prefix}/{rt.plural}"] = {"post": op}
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": {}},
        }
    return None
