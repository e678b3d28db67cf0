"""The same semantics through kubernetes_asyncio, as an asyncio operator would use them."""

from __future__ import annotations

import json

import kubernetes_asyncio
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from testbed.kubeapi import KubeApi

from .conftest import node, pod

pytestmark = pytest.mark.integration


async def test_create_get_conflicts_and_errors(
    kubeapi: KubeApi, async_client: kubernetes_asyncio.client.ApiClient
) -> None:
    core = kubernetes_asyncio.client.CoreV1Api(async_client)
    created = await core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}})
    assert created.metadata.name.startswith("cm-") and created.metadata.uid
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_config_map("default", {"metadata": {"name": created.metadata.name}})
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        await core.read_namespaced_config_map("nope", "default")
    assert err.value.status == 404
    stale = created.metadata.resource_version
    await core.patch_namespaced_config_map(created.metadata.name, "default", {"data": {"a": "1"}})
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        await core.replace_namespaced_config_map(created.metadata.name, "default", created)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        await core.patch_namespaced_config_map(
            created.metadata.name, "default", [{"op": "test", "path": "/data/a", "value": "2"}]
        )
    assert err.value.status == 422


async def test_node_patches_field_selected_lists_and_evictions(
    kubeapi: KubeApi, async_client: kubernetes_asyncio.client.ApiClient
) -> None:
    core = kubernetes_asyncio.client.CoreV1Api(async_client)
    kubeapi.seed(
        [
            node("n1"),
            node("n2"),
            pod("a", "n1", labels={"app": "w"}),
            pod("b", "n2", labels={"app": "w"}),
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "w", "namespace": "default"},
                "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "w"}}},
            },
        ]
    )
    await core.patch_node("n1", {"spec": {"unschedulable": True}})
    assert kubeapi.must_get("nodes", "n1")["spec"]["unschedulable"] is True
    on_n1 = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in on_n1.items] == ["a"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a", "namespace": "default"}}
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_pod_eviction("a", "default", body)
    # maxUnavailable needs the controllers' scale; bare pods have none, so nothing may be disrupted
    assert err.value.status == 429
    await kubernetes_asyncio.client.PolicyV1Api(async_client).delete_namespaced_pod_disruption_budget(
        "w", "default"
    )
    await core.create_namespaced_pod_eviction("a", "default", body)
    assert kubeapi.must_get("pods", "a", "default")["metadata"]["deletionTimestamp"]


async def test_a_resumed_watch_with_a_too_old_version_raises_410(
    kubeapi: KubeApi, async_client: kubernetes_asyncio.client.ApiClient
) -> None:
    core = kubernetes_asyncio.client.CoreV1Api(async_client)
    kubeapi.call(setattr, kubeapi.emulator.store, "history_size", 2)
    try:
        old = kubeapi.resource_version
        kubeapi.seed(
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}} for i in range(4)]
        )
        watch = kubernetes_asyncio.watch.Watch()
        with pytest.raises(ApiException) as err:
            async with watch.stream(
                core.list_namespaced_config_map, "default", resource_version=str(old), timeout_seconds=1
            ) as stream:
                async for _ in stream:
                    pass
        assert err.value.status == 410
    finally:
        kubeapi.call(setattr, kubeapi.emulator.store, "history_size", 50_000)
