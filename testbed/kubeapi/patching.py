"""The three PATCH flavours the API server accepts: JSON merge, JSON patch and strategic merge.

Strategic merge follows k8s.io/apimachinery/pkg/util/strategicpatch for the list fields that
clients actually patch (merge keys taken from the Go struct tags of the core types: conditions by
``type``, containers by ``name``, finalizers as a merged primitive list, ownerReferences by ``uid``);
every other list is replaced, as it is for fields without a patch strategy (e.g. ``spec.taints``).
Directives ``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList/`` and ``$setElementOrder/``
are honoured (the last only by being ignored, since order does not change the stored object here).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .errors import ApiError

JSONValue = Any

_POD_SPEC: dict[tuple[str, ...], str] = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    ("containers", "env"): "name",
    ("initContainers", "env"): "name",
    ("containers", "ports"): "containerPort",
    ("initContainers", "ports"): "containerPort",
    ("containers", "volumeMounts"): "mountPath",
    ("initContainers", "volumeMounts"): "mountPath",
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
}
_CONDITIONS: dict[tuple[str, ...], str] = {("status", "conditions"): "type"}
_METADATA: dict[tuple[str, ...], str] = {
    ("metadata", "finalizers"): "",
    ("metadata", "ownerReferences"): "uid",
}


def _prefixed(prefix: tuple[str, ...], table: dict[tuple[str, ...], str]) -> dict[tuple[str, ...], str]:
    return {prefix + path: key for path, key in table.items()}


_TEMPLATE = {**_prefixed(("spec", "template", "spec"), _POD_SPEC), **_CONDITIONS}
MERGE_KEYS: dict[str, dict[tuple[str, ...], str]] = {
    "Pod": {
        **_prefixed(("spec",), _POD_SPEC),
        **_CONDITIONS,
        ("status", "containerStatuses"): "",
        ("status", "podIPs"): "ip",
    },
    "Node": {**_CONDITIONS, ("status", "addresses"): "type", ("spec", "podCIDRs"): ""},
    "Deployment": _TEMPLATE,
    "ReplicaSet": _TEMPLATE,
    "StatefulSet": _TEMPLATE,
    "DaemonSet": _TEMPLATE,
    "ReplicationController": _TEMPLATE,
    "PodDisruptionBudget": dict(_CONDITIONS),
    "Namespace": dict(_CONDITIONS),
    "Service": {("spec", "ports"): "port"},
    "CustomResourceDefinition": {**_CONDITIONS},
}
# containerStatuses have no patch strategy in Go (replace); the "" above would merge them as
# primitives, so drop it again to stay faithful.
del MERGE_KEYS["Pod"][("status", "containerStatuses")]


def merge_patch(target: JSONValue, patch: JSONValue) -> JSONValue:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JSONValue, ops: JSONValue) -> JSONValue:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, ops, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (KeyError, IndexError, TypeError) as e:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e


_DELETE = object()


def strategic_merge_patch(target: JSONValue, patch: JSONValue, kind: str) -> JSONValue:
    keys = MERGE_KEYS.get(kind, {})
    keys = {**_METADATA, **keys}
    result = _smp(target, patch, (), keys)
    return {} if result is _DELETE else result


def _smp(
    target: JSONValue, patch: JSONValue, path: tuple[str, ...], keys: dict[tuple[str, ...], str]
) -> JSONValue:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return _DELETE
    result = dict(target) if isinstance(target, dict) else {}
    deferred_deletes: list[tuple[str, list[Any]]] = []
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deferred_deletes.append((key.split("/", 1)[1], value or []))
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub = (*path, key)
        if isinstance(value, dict):
            merged = _smp(result.get(key), value, sub, keys)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and sub in keys:
            result[key] = _merge_list(result.get(key) or [], value, sub, keys)
        else:
            result[key] = copy.deepcopy(value)
    for field_name, removed in deferred_deletes:
        if isinstance(result.get(field_name), list):
            result[field_name] = [v for v in result[field_name] if v not in removed]
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(
    current: list[Any], patch: list[Any], path: tuple[str, ...], keys: dict[tuple[str, ...], str]
) -> list[Any]:
    merge_key = keys[path]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if merge_key == "":
        merged = list(current)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return merged
    merged = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            merged.append(copy.deepcopy(item))
            continue
        idx = next(
            (
                n
                for n, old in enumerate(merged)
                if isinstance(old, dict) and old.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                merged.pop(idx)
            continue
        if idx is None:
            merged.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            merged[idx] = _smp(merged[idx], item, path, keys)
    return merged
