"""NodeMigrationNode objects: each node's durable step record, one object per (NodeMigration, node).

A child is created when its node starts (POST, with labels and an owner reference to its
NodeMigration, so the garbage collector deletes it with its parent), and every step record is a
JSON merge patch of its status subresource: one small write per step whatever the fleet's size. The
patch names every field of the record, absent ones as null, so the stored status is exactly the
record (a merge patch would otherwise keep a field the record no longer has, such as a cleared error).
"""

from __future__ import annotations

from typing import Any

from shimshift.kube.api import MERGE_PATCH, Conflict, Kube, Object
from shimshift.kube.paths import segment
from shimshift.model import keys
from shimshift.model.errors import KubeError
from shimshift.model.nodestate import child_manifest, child_name, child_status
from shimshift.model.status import NodeRecord

CHILDREN = f"/apis/{keys.GROUP}/{keys.VERSION}/{keys.NODE_PLURAL}"

#: Every top-level field of a stored node record (`NodeRecord.for_storage`).
RECORD_FIELDS = (
    "name",
    "phase",
    "attempts",
    "step",
    "stepState",
    "skipReason",
    "startedAt",
    "finishedAt",
    "backupDir",
    "hostKeyFingerprint",
    "wasUnschedulable",
    "lastError",
    "images",
    "daemonSets",
    "steps",
    "undoRequest",
)
LAST_ERROR_FIELDS = ("step", "message", "command", "exitCode", "stderrTail")


class ChildOfAnother(KubeError):
    """The node's child still belongs to a deleted NodeMigration of the same name, which the garbage
    collector has not removed yet; the step is tried again once it is gone."""

    transient = True


def child_path(name: str) -> str:
    return f"{CHILDREN}/{segment(name, 'NodeMigrationNode name')}"


def status_patch(record: NodeRecord) -> dict[str, Any]:
    """The merge patch that makes a child's status exactly `record`."""
    status: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    status.update(child_status(record))
    if status["lastError"] is not None:
        status["lastError"] = {**dict.fromkeys(LAST_ERROR_FIELDS), **status["lastError"]}
    return {"status": status}


def create_child(kube: Kube, migration: str, uid: str, node: str, started_at: str = "") -> Object | None:
    """Create the child of `node` in `migration`, started at `started_at`; None when it exists already
    (a resumed start)."""
    try:
        return kube.request("POST", CHILDREN, body=child_manifest(migration, uid, node, started_at))
    except Conflict:
        return None


def patch_child_status(kube: Kube, migration: str, record: NodeRecord) -> Object:
    """Write `record` into its child's status; the API's answer (the object as stored)."""
    return kube.request(
        "PATCH",
        child_path(child_name(migration, record.name)) + "/status",
        body=status_patch(record),
        content_type=MERGE_PATCH,
    )
