"""LIST and WATCH: selectors, resumption from a resourceVersion, timeouts, 410 Gone, bookmarks."""

from __future__ import annotations

import copy
import json
import threading
import urllib.request
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest
from testbed.kubeapi import KubeApi

from .conftest import node, pod, wait_until

pytestmark = pytest.mark.integration


def stream_lines(kubeapi: KubeApi, path: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    with urllib.request.urlopen(kubeapi.url + path, timeout=timeout) as response:  # noqa: S310 - loopback http only
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def test_list_pods_by_node_name_and_phase(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    kubeapi.seed([node("n1"), node("n2"), pod("a", "n1"), pod("b", "n1", phase="Succeeded"), pod("c", "n2")])
    names = [
        p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items
    ]
    assert names == ["a", "b"]
    running = core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=n1,status.phase!=Succeeded"
    ).items
    assert [p.metadata.name for p in running] == ["a"]


def test_field_selectors_cover_names_namespaces_and_unschedulable_nodes(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(
        [node("n1"), node("n2", unschedulable=True), pod("a", "n1"), pod("a", "n1", namespace="other")]
    )
    assert [n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=true").items] == ["n2"]
    assert [n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=false").items] == [
        "n1"
    ]
    in_other = core.list_pod_for_all_namespaces(
        field_selector="metadata.namespace=other,metadata.name=a"
    ).items
    assert [(p.metadata.namespace, p.metadata.name) for p in in_other] == [("other", "a")]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["w1", "w2"]),
        ("app==web,tier!=db", ["w1"]),
        ("app in (web, api)", ["a1", "w1", "w2"]),
        ("app notin (web)", ["a1", "x1"]),
        ("tier", ["w2"]),
        ("!tier", ["a1", "w1", "x1"]),
        ("rank>2", ["a1"]),
        ("rank<2", ["w1"]),
    ],
)
def test_label_selectors_support_every_operator(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    kubeapi.seed(
        [
            pod("w1", labels={"app": "web", "rank": "1"}),
            pod("w2", labels={"app": "web", "tier": "db"}),
            pod("a1", labels={"app": "api", "rank": "3"}),
            pod("x1", labels={}),
        ]
    )
    found = sorted(
        str(p.metadata.name) for p in core.list_namespaced_pod("default", label_selector=selector).items
    )
    assert found == expected


def test_a_watch_resumes_from_a_resource_version_without_losing_events(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    listed = core.list_namespaced_config_map("default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "after-list"}})
    core.patch_namespaced_config_map("after-list", "default", {"data": {"a": "1"}})
    core.delete_namespaced_config_map("after-list", "default")
    events = kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "after-list"),
        ("MODIFIED", "after-list"),
        ("DELETED", "after-list"),
    ]


def test_a_watch_without_resource_version_starts_with_synthetic_added_events(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), node("n2")])
    events = list(kubernetes.watch.Watch().stream(core.list_node, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "n1"), ("ADDED", "n2")]


def test_timeout_seconds_ends_the_watch_cleanly(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    import time

    started = time.monotonic()
    events = list(
        kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=str(kubeapi.resource_version),
            timeout_seconds=1,
        )
    )
    assert events == []
    assert 0.9 < time.monotonic() - started < 3


def test_a_too_old_resource_version_is_answered_with_a_410_error_event(kubeapi: KubeApi) -> None:
    history = kubeapi.emulator.store.history_size
    kubeapi.call(setattr, kubeapi.emulator.store, "history_size", 3)
    try:
        old = kubeapi.resource_version
        kubeapi.seed(
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}} for i in range(6)]
        )
        lines = stream_lines(
            kubeapi, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old}"
        )
    finally:
        kubeapi.call(setattr, kubeapi.emulator.store, "history_size", history)
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    assert (lines[0]["object"]["code"], lines[0]["object"]["reason"]) == (410, "Expired")


def test_the_sync_client_surfaces_410_as_an_api_exception(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.call(setattr, kubeapi.emulator.store, "history_size", 2)
    try:
        old = kubeapi.resource_version
        kubeapi.seed(
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}} for i in range(4)]
        )
        with pytest.raises(kubernetes.client.exceptions.ApiException) as err:
            list(
                kubernetes.watch.Watch().stream(
                    core.list_namespaced_config_map, "default", resource_version=str(old), timeout_seconds=1
                )
            )
        assert err.value.status == 410
    finally:
        kubeapi.call(setattr, kubeapi.emulator.store, "history_size", 50_000)


def test_bookmarks_are_sent_when_asked_for(kubeapi: KubeApi) -> None:
    rv = kubeapi.resource_version
    lines = stream_lines(
        kubeapi, f"/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2"
    )
    assert lines and {line["type"] for line in lines} == {"BOOKMARK"}
    assert int(lines[-1]["object"]["metadata"]["resourceVersion"]) >= rv


def test_send_initial_events_ends_with_an_initial_events_end_bookmark(kubeapi: KubeApi) -> None:
    kubeapi.seed(node("n1"))
    lines = stream_lines(
        kubeapi,
        "/api/v1/nodes?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    assert lines[0]["type"] == "ADDED"
    assert lines[1]["type"] == "BOOKMARK"
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_objects_moving_out_of_a_watched_selector_are_seen_as_deleted(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(pod("p", labels={"app": "web"}))
    rv = str(kubeapi.resource_version)
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "other"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "web"}}})
    events = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="app=web", resource_version=rv, timeout_seconds=1
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


def test_a_live_watch_by_field_selector_sees_only_its_node(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), node("n2")])
    seen: list[str] = []
    watcher = kubernetes.watch.Watch()

    def consume() -> None:
        for event in watcher.stream(
            core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=n2",
            resource_version=str(kubeapi.resource_version),
            timeout_seconds=3,
        ):
            seen.append(event["object"].metadata.name)
            if len(seen) == 1:
                watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    wait_until(lambda: kubeapi.open_watches("pods") == 1, timeout=5, what="the pod watch to be registered")
    kubeapi.seed([pod("on-n1", "n1"), pod("on-n2", "n2")])
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen == ["on-n2"]


async def test_the_asyncio_client_watches_and_lists_with_selectors(
    kubeapi: KubeApi, async_client: kubernetes_asyncio.client.ApiClient
) -> None:
    core = kubernetes_asyncio.client.CoreV1Api(async_client)
    kubeapi.seed([node("n1"), node("n2"), pod("a", "n1"), pod("b", "n2")])
    listed = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n2")
    assert [p.metadata.name for p in listed.items] == ["b"]
    watch = kubernetes_asyncio.watch.Watch()
    events = []
    async with watch.stream(
        core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1", timeout_seconds=1
    ) as stream:
        async for event in stream:
            events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "a")]


def test_unsupported_field_labels_are_a_400_as_on_a_real_cluster(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    with pytest.raises(kubernetes.client.exceptions.ApiException) as err:
        core.list_node(field_selector="status.phase=Running")
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == "field label not supported: status.phase"
    with pytest.raises(kubernetes.client.exceptions.ApiException):
        list(
            kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, "default", field_selector="data.key=x", timeout_seconds=1
            )
        )


def test_a_crd_can_declare_selectable_fields(kubeapi: KubeApi, widgets: dict[str, Any]) -> None:
    crd = copy.deepcopy(widgets)
    crd["spec"]["versions"][0]["selectableFields"] = [{"jsonPath": ".spec.mode"}]
    kubeapi.patch("customresourcedefinitions", "widgets.example.io", {"spec": crd["spec"]})
    for name, mode in (("a", "Plan"), ("b", "Migrate")):
        kubeapi.seed(
            {
                "apiVersion": "example.io/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"mode": mode},
            }
        )
    lines = stream_lines(
        kubeapi,
        "/apis/example.io/v1/namespaces/default/widgets?watch=1&fieldSelector=spec.mode%3DMigrate"
        "&timeoutSeconds=1",
    )
    assert [line["object"]["metadata"]["name"] for line in lines] == ["b"]
