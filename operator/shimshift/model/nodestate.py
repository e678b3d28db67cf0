"""A node's durable record as its own object: the NodeMigrationNode that one NodeMigration keeps per
node it started, named, labelled and owned so that `kubectl get nmn -l shimshift.io/migration=NAME`
lists a rollout and deleting the NodeMigration collects them all.

Why objects and not the NodeMigration's status: a node's record (ten step records with timestamps,
images, DaemonSets) is about 2 KB serialised, so a status holding every node's passes etcd's 1.5 MiB
limit near 800 nodes, and every step would rewrite all of them. Each record lives in the status
subresource of its own object instead; the NodeMigration keeps only counts and the nodes in flight
(`MigrationStatus.for_storage`).

Pure: values in, values out; `shimshift.kube.children` does the I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shimshift.model import keys
from shimshift.model.status import NodePhase, NodeRecord

#: The longest object name the API server accepts (a DNS subdomain, RFC 1123).
MAX_NAME = 253
#: The longest label value.
MAX_LABEL_VALUE = 63

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def child_name(migration: str, node: str) -> str:
    """`<migration>.<node>` when that is a valid object name (at most 253 characters, a lowercase DNS
    subdomain); else `nmn-<hash of both>`: the labels and the spec still name both in full."""
    name = f"{migration}.{node}"
    if len(name) <= MAX_NAME and _SUBDOMAIN.fullmatch(name):
        return name
    return f"{keys.NODE_SHORT_NAME}-{_digest(migration, node)}"


def label_value(name: str) -> str:
    """`name` as a label value: itself when valid, else `hash-<sha256 prefix>` (label values hold 63
    characters; object names 253)."""
    if len(name) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(name):
        return name
    return f"hash-{_digest(name)}"


def migration_selector(migration: str) -> str:
    """The label selector of every NodeMigrationNode of `migration`."""
    return f"{keys.MIGRATION_LABEL}={label_value(migration)}"


def child_manifest(migration: str, uid: str, node: str, started_at: str = "") -> dict[str, Any]:
    """The NodeMigrationNode of `node` in `migration` (uid: the NodeMigration's, for the owner
    reference that lets the garbage collector delete it with its NodeMigration), without status;
    `started_at` (the node's start, the operator's clock) goes in an annotation (`record_of`)."""
    meta: dict[str, Any] = {
        "name": child_name(migration, node),
        "labels": {keys.MIGRATION_LABEL: label_value(migration), keys.NODE_LABEL: label_value(node)},
    }
    if started_at:
        meta["annotations"] = {keys.STARTED_AT_ANNOTATION: started_at}
    if uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": keys.API_VERSION,
                "kind": keys.KIND,
                "name": migration,
                "uid": uid,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.NODE_KIND,
        "metadata": meta,
        "spec": {"migration": migration, "node": node},
    }


def child_status(record: NodeRecord) -> dict[str, Any]:
    """What the child's status subresource holds: the node's record, as `status.nodes[]` held it."""
    return record.for_storage()


def record_of(obj: Mapping[str, Any]) -> NodeRecord:
    """The node's record a NodeMigrationNode holds. A child created but whose status has not landed
    (a node just started, or a crash between the two writes) is a node that started and has no step
    recorded yet: started when its annotation says (the operator's clock, as its status writes are),
    else (a child created without it) at its creation."""
    spec = obj.get("spec") or {}
    status = dict(obj.get("status") or {})
    node = str(spec.get("node") or status.get("name") or "")
    if not status.get("phase"):
        meta = obj.get("metadata") or {}
        started = (meta.get("annotations") or {}).get(keys.STARTED_AT_ANNOTATION)
        created = str(started or meta.get("creationTimestamp") or "")
        return NodeRecord(name=node, phase=NodePhase.IN_PROGRESS, started_at=created)
    return replace(NodeRecord.from_storage({**status, "name": node}), name=node)


def migration_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(name, uid) of the NodeMigration a child belongs to; the uid from its owner reference, so a
    child left by a deleted NodeMigration of the same name (not yet collected) is told apart."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or ()
    uid = next((str(o.get("uid") or "") for o in owners if o.get("kind") == keys.KIND), "")
    return str((obj.get("spec") or {}).get("migration") or ""), uid


def belongs_to(owner: tuple[str, str], name: str, uid: str) -> bool:
    """Whether a child owned by `owner` (`migration_of`) is a record of NodeMigration `name`/`uid`."""
    return owner[0] == name and (not uid or not owner[1] or owner[1] == uid)
