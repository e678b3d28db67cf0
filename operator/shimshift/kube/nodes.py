"""Nodes: read them, cordon and uncordon them without ever undoing an admin's cordon, label them.

A cordon shimshift makes is marked with the `shimshift.io/cordoned-by` annotation in the same patch, so
after any crash the node itself says whose cordon it is; an admin's cordon never carries it and is never
undone (kured and system-upgrade-controller keep the same rule). Writes carry the resourceVersion they
were decided on, so a concurrent change makes them fail with a Conflict instead of overwriting it.

A read-decide-write may take its read from the operator's Node cache (`NodeReads`) instead of a GET:
a decision to write is sent with the cached resourceVersion, so a cache that is behind costs one
Conflict and a fresh read, never a write over a change it did not see; a decision not to write, made on
a cached copy, is confirmed on a fresh read (it could rest on a change since undone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shimshift.kube.api import MERGE_PATCH, Conflict, Kube, NotFound, Object
from shimshift.kube.paths import segment
from shimshift.model import keys
from shimshift.planning.cluster import Node, parse_node

log = logging.getLogger(__name__)

NODES = "/api/v1/nodes"
T = TypeVar("T")


def node_path(name: str) -> str:
    return f"{NODES}/{segment(name, 'node name')}"


def get_node(kube: Kube, name: str) -> Object:
    return kube.request("GET", node_path(name))


def list_nodes(kube: Kube) -> tuple[list[Object], str]:
    """Every node, and the list's resourceVersion (to watch from)."""
    answer = kube.request("GET", NODES)
    return list(answer.get("items") or ()), str((answer.get("metadata") or {}).get("resourceVersion", ""))


def read_nodes(kube: Kube) -> tuple[Node, ...]:
    return tuple(parse_node(n) for n in list_nodes(kube)[0])


def annotations_of(obj: Object) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _patch(kube: Kube, name: str, node: Object, body: dict[str, Any]) -> Object:
    meta = body.setdefault("metadata", {})
    meta["resourceVersion"] = (node.get("metadata") or {}).get("resourceVersion")
    return kube.request("PATCH", node_path(name), body=body, content_type=MERGE_PATCH)


@dataclass(frozen=True)
class NodeReads:
    """Where the read-decide-writes below read a Node first and put what they wrote: the operator's
    Node cache. `cached(name)` is the cached copy (metadata.resourceVersion, annotations and
    spec.unschedulable at least) or None; `store(answer)` takes the API's answer to a write."""

    cached: Callable[[str], Object | None]
    store: Callable[[Object], None]


#: (the result, the API's answer to the write the decision made, or None when it wrote nothing)
Decided = tuple[T, Object | None]


def read_decide_write(
    kube: Kube,
    name: str,
    once: Callable[[Object], Decided[T]],
    reads: NodeReads | None = None,
    unconfirmed: tuple[type[Exception], ...] = (),
) -> T:
    """`once(node)` on the cached copy of `name` when `reads` has one, else (and when that copy was
    behind: a Conflict, a decision not to write, or one of `unconfirmed` raised on it) on a GET,
    retrying lost races. A write's answer goes to `reads.store`."""
    cached = reads.cached(name) if reads is not None else None
    decided: Decided[T] | None = None
    behind: tuple[type[Exception], ...] = (Conflict, *unconfirmed)
    if cached is not None:
        try:
            result, wrote = once(cached)
        except behind:
            pass
        else:
            if wrote is not None:
                decided = result, wrote
    if decided is None:
        decided = retry_on_conflict(lambda: once(get_node(kube, name)))
    if reads is not None and decided[1] is not None:
        reads.store(decided[1])
    return decided[0]


def retry_on_conflict(action: Callable[[], T], attempts: int = 4) -> T:
    """Run a read-decide-write `action` again when its write lost a race (409), as client-go's
    RetryOnConflict does: the kubelet's heartbeats change a Node's resourceVersion every few seconds."""
    for attempt in range(attempts):
        try:
            return action()
        except Conflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def cordon_node(kube: Kube, name: str, owner: str, reads: NodeReads | None = None) -> bool:
    """Cordon `name` for `owner` (see `_cordon_once`), retrying lost races."""
    return read_decide_write(kube, name, lambda node: _cordon_once(kube, name, owner, node), reads)


def uncordon_node(kube: Kube, name: str, owner: str, reads: NodeReads | None = None) -> bool:
    """Undo `owner`'s cordon (see `_uncordon_once`), retrying lost races."""
    return read_decide_write(kube, name, lambda node: _uncordon_once(kube, name, owner, node), reads)


def _cordon_once(kube: Kube, name: str, owner: str, node: Object) -> Decided[bool]:
    """Cordon `name` (read as `node`) for `owner`; True when it was already unschedulable by someone
    else's hand.

    Idempotent: a node already cordoned by `owner` (a resumed step) reports False, as the first call did.
    """
    if annotations_of(node).get(keys.CORDONED_BY_ANNOTATION) == owner:
        return False, None
    if (node.get("spec") or {}).get("unschedulable"):
        log.info("node %s was already cordoned (not by shimshift); it will stay cordoned", name)
        return True, None
    body = {
        "metadata": {"annotations": {keys.CORDONED_BY_ANNOTATION: owner}},
        "spec": {"unschedulable": True},
    }
    return False, _patch(kube, name, node, body)


def _uncordon_once(kube: Kube, name: str, owner: str, node: Object) -> Decided[bool]:
    """Undo `owner`'s cordon of `name` (read as `node`); True if the node was changed. A cordon that is
    not ours stays."""
    if annotations_of(node).get(keys.CORDONED_BY_ANNOTATION) != owner:
        return False, None
    body = {"metadata": {"annotations": {keys.CORDONED_BY_ANNOTATION: None}}, "spec": {"unschedulable": None}}
    return True, _patch(kube, name, node, body)


def label_node_migrated(kube: Kube, name: str) -> Object:
    """Set the completion label, so a restart or a later NodeMigration skips the node; the Node as
    written. The record of the cri-socket annotation's old value stays: an undo on request puts it
    back until the commit (`forget_cri_socket_annotation`)."""
    return kube.request(
        "PATCH",
        node_path(name),
        body={"metadata": {"labels": {keys.RUNTIME_LABEL: keys.RUNTIME_LABEL_VALUE}}},
        content_type=MERGE_PATCH,
    )


def forget_cri_socket_annotation(kube: Kube, name: str) -> None:
    """Drop the record of the cri-socket annotation's old value: the node's rollback window is
    committed, nothing will put it back. A merge patch of a key that is not there changes nothing;
    a Node that no longer exists has nothing to drop."""
    try:
        kube.request(
            "PATCH",
            node_path(name),
            body={"metadata": {"annotations": {keys.CRI_SOCKET_BEFORE_ANNOTATION: None}}},
            content_type=MERGE_PATCH,
        )
    except NotFound:
        log.info("node %s: gone; no saved cri-socket value to drop", name)


def unlabel_node_migrated(kube: Kube, name: str) -> None:
    """Remove the completion label: the node was rolled back to Docker on request."""
    kube.request(
        "PATCH",
        node_path(name),
        body={"metadata": {"labels": {keys.RUNTIME_LABEL: None}}},
        content_type=MERGE_PATCH,
    )


def clear_undo_request(kube: Kube, name: str, value: str) -> bool:
    """`_clear_undo_request_once`, retrying lost races."""
    return retry_on_conflict(lambda: _clear_undo_request_once(kube, name, value))


def _clear_undo_request_once(kube: Kube, name: str, value: str) -> bool:
    """Remove the node's undo annotation if it still holds `value` (the request shimshift acted on);
    True if removed. A value someone set since is a new request and stays."""
    node = get_node(kube, name)
    if annotations_of(node).get(keys.UNDO_ANNOTATION) != value:
        return False
    _patch(kube, name, node, {"metadata": {"annotations": {keys.UNDO_ANNOTATION: None}}})
    return True


def update_cri_socket_annotation(
    kube: Kube, name: str, endpoint: str, reads: NodeReads | None = None
) -> bool:
    """`_update_cri_socket_once`, retrying lost races."""
    return read_decide_write(
        kube, name, lambda node: _update_cri_socket_once(kube, name, endpoint, node), reads
    )


def _update_cri_socket_once(kube: Kube, name: str, endpoint: str, node: Object) -> Decided[bool]:
    """Point kubeadm's `cri-socket` annotation at `endpoint` where the node (read as `node`) has one;
    True if changed.

    kubeadm upgrade reads it; nodes not built by kubeadm have none and get none. The old value is
    kept in CRI_SOCKET_BEFORE_ANNOTATION by the same write, for a rollback or an undo on request to
    put back until the commit.
    """
    current = annotations_of(node).get(keys.CRI_SOCKET_ANNOTATION)
    if current is None or current == endpoint:
        return False, None
    body = {"annotations": {keys.CRI_SOCKET_ANNOTATION: endpoint, keys.CRI_SOCKET_BEFORE_ANNOTATION: current}}
    return True, _patch(kube, name, node, {"metadata": body})


def restore_cri_socket_annotation(kube: Kube, name: str) -> bool:
    """`_restore_cri_socket_once`, retrying lost races."""
    return retry_on_conflict(lambda: _restore_cri_socket_once(kube, name))


def _restore_cri_socket_once(kube: Kube, name: str) -> bool:
    """Put back the cri-socket annotation's value from before the finish step (a rollback, or an undo
    of a Succeeded node before its commit); True if it did."""
    node = get_node(kube, name)
    before = annotations_of(node).get(keys.CRI_SOCKET_BEFORE_ANNOTATION)
    if before is None:
        return False
    body = {"annotations": {keys.CRI_SOCKET_ANNOTATION: before, keys.CRI_SOCKET_BEFORE_ANNOTATION: None}}
    _patch(kube, name, node, {"metadata": body})
    return True


def pin_host_key(kube: Kube, name: str, pin: str) -> str:
    """`_pin_host_key_once`, retrying lost races."""
    return retry_on_conflict(lambda: _pin_host_key_once(kube, name, pin))


def _pin_host_key_once(kube: Kube, name: str, pin: str) -> str:
    """Record `pin` in the host-key annotation unless the Node has one; return the annotation in force.

    The write carries the resourceVersion it was decided on, so two first connections cannot both
    pin: the loser re-reads, finds the winner's pin and compares against that.
    """
    node = get_node(kube, name)
    current = annotations_of(node).get(keys.HOST_KEY_ANNOTATION)
    if current:
        return current
    _patch(kube, name, node, {"metadata": {"annotations": {keys.HOST_KEY_ANNOTATION: pin}}})
    log.info(
        "node %s: SSH host key %s pinned on first use (annotation %s)", name, pin, keys.HOST_KEY_ANNOTATION
    )
    return pin
