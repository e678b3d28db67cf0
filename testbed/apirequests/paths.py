"""Kubernetes API paths: what a request addresses (group, version, resource, namespace, name,
subresource) and its verb, parsed from the path, the method and the query as the API server does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    kind: str  # version | api | apis | group | resources | object | health | openapi | unknown
    group: str = ""
    version: str = ""
    plural: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    watch_prefix: bool = False


def parse_path(path: str) -> Target:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Target("unknown")
    head = parts[0]
    if head == "version":
        return Target("version")
    if head in ("healthz", "readyz", "livez"):
        return Target("health")
    if head == "openapi":
        version = parts[1] if len(parts) > 1 else ""
        return Target({"v3": "openapi", "v2": "openapi-v2"}.get(version, "unknown"))
    if head == "api":
        if len(parts) == 1:
            return Target("api")
        group, version, rest = "", parts[1], parts[2:]
    elif head == "apis":
        if len(parts) == 1:
            return Target("apis")
        if len(parts) == 2:
            return Target("group", group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Target("unknown")
    if not rest:
        return Target("resources", group=group, version=version)
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if (
        rest
        and rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return Target("object", group, version, plural, namespace, name, sub, watch_prefix)


def request_verb(method: str, target: Target, query: dict[str, str]) -> str:
    if target.kind != "object":
        return ""
    watch = target.watch_prefix or query.get("watch", "").lower() in ("true", "1")
    if method == "GET":
        if not target.name:
            return "watch" if watch else "list"
        return "watch" if watch else "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return ""
