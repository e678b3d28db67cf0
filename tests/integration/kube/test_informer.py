"""The watch-fed caches (shimshift.kube.informer) against the API emulator: one LIST, then events; a
watch the server cuts is resumed without listing again; a write the operator made is read back at once
and never replaced by an older event; a wait on one object is woken by its watch event."""

from __future__ import annotations

import threading

import pytest
from testbed.kubeapi import KubeApi
from testbed.waiting import wait_until

from shimshift.kube.api import MERGE_PATCH, Kube
from shimshift.kube.informer import Informer, NotSynced
from shimshift.kube.nodes import NODES
from shimshift.planning.cluster import Node, parse_node

from .conftest import node

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def node_cache(kube: Kube) -> Informer[Node]:
    return Informer(
        lambda: kube.request("GET", NODES),
        lambda rv, seconds: kube.watch(NODES, resource_version=rv, timeout=seconds),
        parse_node,
        name="nodes",
    ).start()


def _label(kube: Kube, name: str, value: str) -> dict[str, object]:
    return kube.request(
        "PATCH", f"{NODES}/{name}", body={"metadata": {"labels": {"v": value}}}, content_type=MERGE_PATCH
    )


def test_the_cache_lists_once_and_follows_changes_and_cut_watches(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed([node("n1"), node("n2")])
    cache = node_cache(kube)
    try:
        cache.wait_synced(10)
        assert sorted(n.name for n in cache.values()) == ["n1", "n2"]
        wait_until(lambda: kubeapi.open_watches("nodes") >= 1, 10, what="the cache's watch")

        _label(kube, "n1", "a")
        wait_until(lambda: (cache.get("n1") or parse_node(node("x"))).labels.get("v") == "a", 10, what="a")
        kubeapi.cut_watches("nodes")
        kubeapi.seed([node("n3")])
        kubeapi.delete("nodes", "n2")
        wait_until(
            lambda: sorted(n.name for n in cache.values()) == ["n1", "n3"], 10, what="the resumed watch"
        )
        assert cache.lists == 1  # resumed from its resourceVersion, not listed again
        assert not [r for r in kubeapi.requests if r.verb == "list" and r.resource == "nodes"][1:]
    finally:
        cache.stop()


def test_a_write_is_read_back_at_once_and_an_older_event_does_not_replace_it(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed([node("n1")])
    cache = node_cache(kube)
    try:
        cache.wait_synced(10)
        older = _label(kube, "n1", "old")
        newer = _label(kube, "n1", "new")
        cache.store(newer)
        assert (cache.get("n1") or parse_node(node("x"))).labels["v"] == "new"
        cache.store(older)  # what a late watch event carries
        assert (cache.get("n1") or parse_node(node("x"))).labels["v"] == "new"
    finally:
        cache.stop()


def test_a_wait_on_one_object_is_woken_by_its_event_and_bounded(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed([node("n1")])
    cache = node_cache(kube)
    try:
        cache.wait_synced(10)
        assert not cache.wait_for("n1", lambda n: n is not None and n.labels.get("v") == "x", 0.3)
        timer = threading.Timer(0.3, lambda: _label(kube, "n1", "x"))
        timer.start()
        try:
            assert cache.wait_for("n1", lambda n: n is not None and n.labels.get("v") == "x", 10)
        finally:
            timer.join()
    finally:
        cache.stop()


def test_a_resource_the_server_does_not_serve_fails_the_sync_with_what_to_do(kube: Kube) -> None:
    missing = "/apis/shimshift.io/v1alpha1/nosuchthings"
    cache: Informer[dict[str, object]] = Informer(
        lambda: kube.request("GET", missing),
        lambda rv, seconds: kube.watch(missing, resource_version=rv, timeout=seconds),
        lambda o: o,
        name="things",
        if_missing="install the CRD",
    ).start()
    try:
        with pytest.raises(NotSynced) as raised:
            cache.wait_synced(2)
        assert "HTTP 404" in str(raised.value)
        assert "(install the CRD)" in str(raised.value)
    finally:
        cache.stop()
