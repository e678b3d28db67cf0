"""The NodeMigration objects themselves: read them, patch their status subresource, emit Events.

Status is written only through the `/status` subresource with a JSON merge patch of the fields that
changed, so it never races the user's spec edits. Events go to the NodeMigration and to the Node; both
are cluster-scoped, so their Events live in the operator's own namespace, as kopf puts its own (kubectl
describe finds Events of a cluster-scoped object in any namespace). Event messages are
built by callers from names and reasons only: never from command output that might carry a secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from shimshift.kube.api import MERGE_PATCH, Kube, NotFound, Object
from shimshift.kube.paths import segment
from shimshift.model import keys
from shimshift.model.status import EventReason

MIGRATIONS = f"/apis/{keys.GROUP}/{keys.VERSION}/{keys.PLURAL}"
COMPONENT = "shimshift"


def migration_path(name: str) -> str:
    return f"{MIGRATIONS}/{segment(name, 'NodeMigration name')}"


def get_migration(kube: Kube, name: str) -> Object | None:
    try:
        return kube.request("GET", migration_path(name))
    except NotFound:
        return None


def migration_exists(kube: Kube, name: str) -> bool:
    """True while a NodeMigration named `name` exists (even while it is being deleted)."""
    return get_migration(kube, name) is not None


def patch_migration_status(kube: Kube, name: str, status: Mapping[str, Any]) -> Object:
    """Merge `status` into the NodeMigration's status (lists such as `nodes` are replaced whole)."""
    return kube.request(
        "PATCH", migration_path(name) + "/status", body={"status": dict(status)}, content_type=MERGE_PATCH
    )


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_event(
    kube: Kube,
    namespace: str,
    *,
    kind: str,
    name: str,
    uid: str = "",
    api_version: str = "v1",
    type_: EventType,
    reason: EventReason,
    message: str,
) -> None:
    """One core/v1 Event about a cluster-scoped object (a Node or a NodeMigration), in `namespace`.

    The API server accepts an Event whose involvedObject has no namespace only in `default`; posted in
    the operator's own namespace, the reference carries that namespace, as kopf's Events do (a real
    server answers 422 "involvedObject.namespace: does not match event.namespace" otherwise)."""
    now = _now()
    involved: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "namespace": namespace,
    }
    if uid:
        involved["uid"] = uid
    kube.request(
        "POST",
        f"/api/v1/namespaces/{segment(namespace, 'namespace')}/events",
        body={
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": str(type_),
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        },
    )
