"""Cordon, uncordon, the node lock and labels, through the real client against the API emulator."""

from __future__ import annotations

from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord

import shimshift
from shimshift.kube.api import Kube
from shimshift.kube.lock import NodeLocked, acquire_node_lock, release_node_lock
from shimshift.kube.nodes import (
    NodeReads,
    clear_undo_request,
    cordon_node,
    forget_cri_socket_annotation,
    label_node_migrated,
    restore_cri_socket_annotation,
    uncordon_node,
    unlabel_node_migrated,
    update_cri_socket_annotation,
)
from shimshift.model import keys
from tests.integration.kube.conftest import node

pytestmark = pytest.mark.integration


def _node(kubeapi: KubeApi, name: str) -> dict[str, Any]:
    obj = kubeapi.get("nodes", name)
    assert obj is not None
    return obj


def test_cordon_marks_the_node_as_ours_and_uncordon_undoes_exactly_that(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(node("n1"))

    assert cordon_node(kube, "n1", "m") is False
    assert cordon_node(kube, "n1", "m") is False  # resumed: same answer, no second change
    cordoned = _node(kubeapi, "n1")
    assert cordoned["spec"]["unschedulable"] is True
    assert cordoned["metadata"]["annotations"][keys.CORDONED_BY_ANNOTATION] == "m"

    assert uncordon_node(kube, "n1", "m") is True
    after = _node(kubeapi, "n1")
    assert not after["spec"].get("unschedulable")
    assert keys.CORDONED_BY_ANNOTATION not in (after["metadata"].get("annotations") or {})


def test_an_admin_cordon_is_reported_and_never_undone(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(node("n1", unschedulable=True))

    assert cordon_node(kube, "n1", "m") is True
    assert uncordon_node(kube, "n1", "m") is False

    assert _node(kubeapi, "n1")["spec"]["unschedulable"] is True


def test_the_lock_is_held_against_a_live_owner_and_taken_over_from_a_gone_one(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    live = {"a"}

    acquire_node_lock(kube, "n1", "a", live.__contains__)
    acquire_node_lock(kube, "n1", "a", live.__contains__)  # idempotent
    with pytest.raises(NodeLocked, match="locked by NodeMigration a"):
        acquire_node_lock(kube, "n1", "b", live.__contains__)
    assert release_node_lock(kube, "n1", "b") is False

    live.clear()
    acquire_node_lock(kube, "n1", "b", live.__contains__)
    assert _node(kubeapi, "n1")["metadata"]["annotations"][keys.LOCK_ANNOTATION] == "b"
    assert release_node_lock(kube, "n1", "b") is True
    assert keys.LOCK_ANNOTATION not in (_node(kubeapi, "n1")["metadata"].get("annotations") or {})


def _race_the_first_read(kubeapi: KubeApi, name: str, change: dict[str, Any]) -> None:
    """The node changes (once) between the lock's read and its write: the API server stores ``change``
    right after it has answered the first GET of the node, before that answer reaches the client."""

    def change_it(_rec: RequestRecord) -> None:
        kubeapi.patch("nodes", name, change)

    kubeapi.faults.add_trigger(
        lambda rec: rec.verb == "get" and rec.resource == "nodes" and rec.name == name, change_it
    )


def test_a_lock_race_lost_to_another_taker_ends_locked_instead_of_overwriting(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    _race_the_first_read(kubeapi, "n1", {"metadata": {"annotations": {keys.LOCK_ANNOTATION: "other"}}})

    with pytest.raises(NodeLocked, match="locked by NodeMigration other"):
        acquire_node_lock(kube, "n1", "mine", lambda owner: True)
    assert _node(kubeapi, "n1")["metadata"]["annotations"][keys.LOCK_ANNOTATION] == "other"


def test_a_lock_race_lost_to_an_unrelated_change_is_retried_and_wins(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(node("n1"))
    _race_the_first_read(kubeapi, "n1", {"metadata": {"labels": {"heartbeat": "1"}}})

    acquire_node_lock(kube, "n1", "mine", lambda owner: True)

    assert _node(kubeapi, "n1")["metadata"]["annotations"][keys.LOCK_ANNOTATION] == "mine"
    conflicts = [
        r for r in kubeapi.requests if r.method == "PATCH" and r.resource == "nodes" and r.status == 409
    ]
    assert len(conflicts) == 1


class FakeCache:
    """A Node cache for the read-decide-writes: copies taken by hand (`take`), writes stored."""

    def __init__(self, kubeapi: KubeApi) -> None:
        self.kubeapi = kubeapi
        self.copies: dict[str, dict[str, Any]] = {}
        self.stored: list[dict[str, Any]] = []

    def take(self, name: str) -> None:
        self.copies[name] = _node(self.kubeapi, name)

    def store(self, obj: dict[str, Any]) -> None:
        self.stored.append(obj)
        self.copies[obj["metadata"]["name"]] = obj

    def reads(self) -> NodeReads:
        return NodeReads(self.copies.get, self.store)


def _node_requests(kubeapi: KubeApi, since: int) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in list(kubeapi.requests)[since:] if r.resource == "nodes"]


def test_a_current_cached_copy_saves_the_read_of_every_lock_and_cordon_change(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    kubeapi.patch(
        "nodes", "n1", {"metadata": {"annotations": {keys.CRI_SOCKET_ANNOTATION: "/var/run/dockershim.sock"}}}
    )
    cache = FakeCache(kubeapi)
    cache.take("n1")
    since = len(kubeapi.requests)

    acquire_node_lock(kube, "n1", "m", lambda owner: True, cache.reads())
    assert cordon_node(kube, "n1", "m", cache.reads()) is False
    assert update_cri_socket_annotation(kube, "n1", "unix:///run/containerd/containerd.sock", cache.reads())
    assert uncordon_node(kube, "n1", "m", cache.reads()) is True
    assert release_node_lock(kube, "n1", "m", cache.reads()) is True

    # one PATCH each, every one decided on the copy the previous write left in the cache: no GET
    assert _node_requests(kubeapi, since) == [("PATCH", 200)] * 5
    assert len(cache.stored) == 5
    final = _node(kubeapi, "n1")
    annotations = final["metadata"].get("annotations") or {}
    assert keys.LOCK_ANNOTATION not in annotations and keys.CORDONED_BY_ANNOTATION not in annotations
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == "unix:///run/containerd/containerd.sock"
    assert not final["spec"].get("unschedulable")


def test_a_cached_copy_that_is_behind_costs_a_conflict_and_a_read_never_a_lost_change(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    cache = FakeCache(kubeapi)
    cache.take("n1")
    # another migration locks the node after the cache's copy was taken
    kubeapi.patch("nodes", "n1", {"metadata": {"annotations": {keys.LOCK_ANNOTATION: "other"}}})
    since = len(kubeapi.requests)

    with pytest.raises(NodeLocked, match="locked by NodeMigration other"):
        acquire_node_lock(kube, "n1", "mine", lambda owner: True, cache.reads())

    assert _node_requests(kubeapi, since)[:2] == [("PATCH", 409), ("GET", 200)]
    assert _node(kubeapi, "n1")["metadata"]["annotations"][keys.LOCK_ANNOTATION] == "other"


def test_a_decision_not_to_write_made_on_a_cached_copy_is_confirmed_on_a_fresh_read(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    cache = FakeCache(kubeapi)
    live = {"other"}
    # the cache still shows a lock another migration has since released, and a cordon of ours an admin
    # has since undone
    kubeapi.patch(
        "nodes",
        "n1",
        {
            "metadata": {"annotations": {keys.LOCK_ANNOTATION: "other", keys.CORDONED_BY_ANNOTATION: "mine"}},
            "spec": {"unschedulable": True},
        },
    )
    cache.take("n1")
    kubeapi.patch(
        "nodes",
        "n1",
        {
            "metadata": {"annotations": {keys.LOCK_ANNOTATION: None, keys.CORDONED_BY_ANNOTATION: None}},
            "spec": {"unschedulable": None},
        },
    )

    acquire_node_lock(kube, "n1", "mine", live.__contains__, cache.reads())
    # the lock's write is cached now; its copy is made to say, wrongly, that our cordon is still there
    stale = cache.copies["n1"]
    cache.copies["n1"] = {
        **stale,
        "metadata": {**stale["metadata"], "annotations": {keys.CORDONED_BY_ANNOTATION: "mine"}},
    }
    assert cordon_node(kube, "n1", "mine", cache.reads()) is False

    after = _node(kubeapi, "n1")
    assert after["metadata"]["annotations"][keys.LOCK_ANNOTATION] == "mine"
    assert after["metadata"]["annotations"][keys.CORDONED_BY_ANNOTATION] == "mine"
    assert after["spec"]["unschedulable"] is True


def test_the_completion_label_and_cri_socket_annotation_are_set_only_where_they_belong(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeadm = node("n1")
    kubeadm["metadata"]["annotations"] = {keys.CRI_SOCKET_ANNOTATION: "/var/run/dockershim.sock"}
    kubeapi.seed([kubeadm, node("n2")])
    endpoint = "unix:///run/containerd/containerd.sock"

    assert update_cri_socket_annotation(kube, "n1", endpoint) is True
    assert update_cri_socket_annotation(kube, "n2", endpoint) is False
    label_node_migrated(kube, "n1")

    n1, n2 = _node(kubeapi, "n1"), _node(kubeapi, "n2")
    assert n1["metadata"]["annotations"][keys.CRI_SOCKET_ANNOTATION] == endpoint
    assert keys.CRI_SOCKET_ANNOTATION not in (n2["metadata"].get("annotations") or {})
    assert n1["metadata"]["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE


def test_the_undo_request_is_removed_only_while_it_holds_the_value_acted_on(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(node("n1"))
    label_node_migrated(kube, "n1")
    kubeapi.patch("nodes", "n1", {"metadata": {"annotations": {keys.UNDO_ANNOTATION: "second"}}})

    assert clear_undo_request(kube, "n1", "first") is False  # a request made since: it stays
    assert _node(kubeapi, "n1")["metadata"]["annotations"][keys.UNDO_ANNOTATION] == "second"
    assert clear_undo_request(kube, "n1", "second") is True
    assert clear_undo_request(kube, "n1", "second") is False
    unlabel_node_migrated(kube, "n1")

    after = _node(kubeapi, "n1")
    assert keys.UNDO_ANNOTATION not in (after["metadata"].get("annotations") or {})
    assert keys.RUNTIME_LABEL not in after["metadata"]["labels"]


def test_the_cri_socket_annotation_is_put_back_by_a_rollback_and_its_record_dropped_by_the_commit(
    kubeapi: KubeApi, kube: Kube
) -> None:
    nodes = [node("n1"), node("n2")]
    for n in nodes:
        n["metadata"]["annotations"] = {keys.CRI_SOCKET_ANNOTATION: "/var/run/dockershim.sock"}
    kubeapi.seed(nodes)
    endpoint = "unix:///run/containerd/containerd.sock"

    for name in ("n1", "n2"):
        assert update_cri_socket_annotation(kube, name, endpoint) is True
        before = _node(kubeapi, name)["metadata"]["annotations"][keys.CRI_SOCKET_BEFORE_ANNOTATION]
        assert before == "/var/run/dockershim.sock"
    # n1 rolls back: the old value again, the record gone; a second restore changes nothing
    assert restore_cri_socket_annotation(kube, "n1") is True
    assert restore_cri_socket_annotation(kube, "n1") is False
    n1 = _node(kubeapi, "n1")["metadata"]["annotations"]
    assert n1[keys.CRI_SOCKET_ANNOTATION] == "/var/run/dockershim.sock"
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in n1
    # n2 finishes: the record stays for an undo until the commit drops it; nothing is put back after
    label_node_migrated(kube, "n2")
    n2 = _node(kubeapi, "n2")["metadata"]["annotations"]
    assert n2[keys.CRI_SOCKET_ANNOTATION] == endpoint
    assert n2[keys.CRI_SOCKET_BEFORE_ANNOTATION] == "/var/run/dockershim.sock"
    forget_cri_socket_annotation(kube, "n2")
    forget_cri_socket_annotation(kube, "n2")  # again: nothing to drop, no error
    forget_cri_socket_annotation(kube, "gone")  # no such Node: nothing to drop either
    n2 = _node(kubeapi, "n2")["metadata"]["annotations"]
    assert n2[keys.CRI_SOCKET_ANNOTATION] == endpoint and keys.CRI_SOCKET_BEFORE_ANNOTATION not in n2
    assert restore_cri_socket_annotation(kube, "n2") is False


def test_every_request_says_it_comes_from_shimshift_so_audit_logs_can_tell(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed([node("n1")])
    kubeapi.requests.clear()

    kube.request("GET", "/api/v1/nodes/n1")

    (rec,) = kubeapi.requests.filter(verb="get", resource="nodes")
    assert rec.user_agent == f"shimshift/{shimshift.__version__}"
