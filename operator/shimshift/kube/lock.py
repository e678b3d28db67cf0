"""The node lock: an annotation naming the NodeMigration that owns a node right now.

Two NodeMigrations (or two operator replicas that both believe they lead) must never act on one node.
The lock is taken with the node's resourceVersion as a precondition, so of two concurrent takers exactly
one wins and the other gets a Conflict. A lock is taken over only when the NodeMigration it names no
longer exists (deleted while its node was in flight): a live owner's lock is never broken. The same
patch keeps the cluster autoscaler off the node while it is locked (`shimshift.model.nodelock`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shimshift.kube.api import MERGE_PATCH, Kube, Object
from shimshift.kube.nodes import Decided, NodeReads, annotations_of, node_path, read_decide_write
from shimshift.model import keys
from shimshift.model.errors import KubeError
from shimshift.model.nodelock import AnnotationPatch, lock_patch, unlock_patch

log = logging.getLogger(__name__)


class NodeLocked(KubeError):
    """Another live NodeMigration holds the node; it is free again when that one finishes the node."""

    transient = True

    def __init__(self, node: str, holder: str) -> None:
        self.node = node
        self.holder = holder
        super().__init__(
            f"node {node} is locked by NodeMigration {holder} ({keys.LOCK_ANNOTATION}); "
            f"it is retried when {holder} finishes the node or is deleted"
        )


def acquire_node_lock(
    kube: Kube, name: str, owner: str, owner_exists: Callable[[str], bool], reads: NodeReads | None = None
) -> None:
    """Make `owner` the holder of `name`'s lock, or raise NodeLocked. Idempotent. A race lost to an
    unrelated change (a kubelet heartbeat) is retried; a race lost to another taker ends in NodeLocked.
    A holder seen on a cached copy is confirmed on a fresh read before NodeLocked is raised."""
    read_decide_write(
        kube, name, lambda node: _acquire_once(kube, name, owner, owner_exists, node), reads, (NodeLocked,)
    )


def release_node_lock(kube: Kube, name: str, owner: str, reads: NodeReads | None = None) -> bool:
    """Drop `owner`'s lock on `name`; True if it was held. Someone else's lock is left alone."""
    return read_decide_write(kube, name, lambda node: _release_once(kube, name, owner, node), reads)


def _write_lock(kube: Kube, name: str, node: Object, annotations: AnnotationPatch) -> Object:
    """Write the lock's annotations (None removes one), on the condition that the node is unchanged
    since `node` was read: of two writers, one gets a conflict. The API's answer."""
    return kube.request(
        "PATCH",
        node_path(name),
        body={
            "metadata": {
                "resourceVersion": (node.get("metadata") or {}).get("resourceVersion"),
                "annotations": annotations,
            }
        },
        content_type=MERGE_PATCH,
    )


def _acquire_once(
    kube: Kube, name: str, owner: str, owner_exists: Callable[[str], bool], node: Object
) -> Decided[None]:
    current = annotations_of(node)
    holder = current.get(keys.LOCK_ANNOTATION)
    if holder and holder != owner and owner_exists(holder):
        raise NodeLocked(name, holder)
    if holder and holder != owner:
        log.warning("node %s: taking over the lock of NodeMigration %s, which no longer exists", name, holder)
    patch = lock_patch(current, owner)
    return None, (_write_lock(kube, name, node, patch) if patch else None)


def _release_once(kube: Kube, name: str, owner: str, node: Object) -> Decided[bool]:
    patch = unlock_patch(annotations_of(node), owner)
    if not patch:
        return False, None
    return True, _write_lock(kube, name, node, patch)
