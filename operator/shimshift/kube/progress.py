"""Read a NodeMigration and its per-node records for `shimshift status`. Read-only.

The per-node records are read through `node_records` alone: today they are `status.nodes[]`; where
per-node child objects (`NodeMigrationNode`, labelled `shimshift.io/migration=<name>`) exist, their
records are read instead, so a change in where the records live changes this one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.kube.api import Kube, NotFound, Object
from shimshift.kube.migrations import get_migration
from shimshift.kube.paths import segment
from shimshift.model import keys
from shimshift.model.nodestate import migration_selector

#: The per-node child objects (labelled by `migration_selector`: a long name's label is its hash).
NODE_PLURAL = "nodemigrationnodes"
PAGE = 500


@dataclass(frozen=True)
class MigrationProgress:
    migration: Object
    nodes: list[dict[str, Any]]
    #: where the node records came from: "status.nodes" or "NodeMigrationNode"
    source: str


def _child_record(child: Mapping[str, Any]) -> dict[str, Any]:
    """A child object's node record: its status, named after the node (spec.nodeName, else its name)."""
    record = dict(child.get("status") or {})
    spec = child.get("spec") or {}
    record.setdefault("name", spec.get("nodeName") or (child.get("metadata") or {}).get("name", "?"))
    return record


def _children(kube: Kube, name: str, namespace: str | None) -> list[dict[str, Any]] | None:
    """The records of `name`'s NodeMigrationNode objects, or None where the API serves no such kind."""
    base = f"/apis/{keys.GROUP}/{keys.VERSION}"
    path = (
        f"{base}/namespaces/{segment(namespace, 'namespace')}/{NODE_PLURAL}"
        if namespace
        else f"{base}/{NODE_PLURAL}"
    )
    records: list[dict[str, Any]] = []
    token = ""
    while True:
        query = [("labelSelector", migration_selector(name)), ("limit", str(PAGE))]
        if token:
            query.append(("continue", token))
        try:
            page = kube.request("GET", path, query=query)
        except NotFound:
            return None
        records += [_child_record(item) for item in page.get("items") or ()]
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return records


def node_records(
    kube: Kube, migration: Mapping[str, Any], namespace: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The NodeMigration's per-node records, sorted by node name, and where they were read."""
    name = str((migration.get("metadata") or {}).get("name", ""))
    children = _children(kube, name, namespace)
    if children:
        return sorted(children, key=lambda r: str(r.get("name", ""))), "NodeMigrationNode"
    nodes = [dict(n) for n in (migration.get("status") or {}).get("nodes") or () if isinstance(n, Mapping)]
    return nodes, "status.nodes"


def read_progress(kube: Kube, name: str, namespace: str | None = None) -> MigrationProgress | None:
    """The NodeMigration `name` with its node records; None when it does not exist."""
    migration = get_migration(kube, name)
    if migration is None:
        return None
    nodes, source = node_records(kube, migration, namespace)
    return MigrationProgress(migration, nodes, source)
