"""Object semantics through the official sync client: create, read, replace, patch, delete."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi import KubeApi

from .conftest import http, node, pod, wait_until

pytestmark = pytest.mark.integration


def status_of(err: ApiException) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(err.body)
    return status


def test_create_answers_201_with_server_filled_metadata_and_the_url_namespace(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert cm.metadata.namespace == "default"
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    assert cm.metadata.generation == 1
    create = kubeapi.requests.filter(verb="create", resource="configmaps")
    assert [r.status for r in create] == [201]


def test_generate_name_gives_each_object_a_fresh_name(core: kubernetes.client.CoreV1Api) -> None:
    body = {
        "metadata": {"generateName": "kopf-event-"},
        "involvedObject": {"kind": "Node", "name": "n1"},
        "reason": "Test",
        "message": "hello",
    }
    first = core.create_namespaced_event("default", body)
    second = core.create_namespaced_event("default", body)
    assert (
        first.metadata.name.startswith("kopf-event-") and len(first.metadata.name) == len("kopf-event-") + 5
    )
    assert first.metadata.name != second.metadata.name


def test_creating_an_existing_name_is_409_already_exists(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    body = status_of(err.value)
    assert (err.value.status, body["reason"], body["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "dup" already exists',
    )


def test_missing_objects_and_namespaces_are_404_not_found(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", "default")
    assert (err.value.status, status_of(err.value)["message"]) == (404, 'pods "nope" not found')
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert status_of(err.value)["message"] == 'namespaces "missing-ns" not found'


def test_replace_with_a_stale_resource_version_is_409_conflict(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("c", "default", cm)
    assert int(updated.metadata.resource_version) > int(stale)
    cm.data = {"a": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", "default", cm)
    assert (err.value.status, status_of(err.value)["reason"]) == (409, "Conflict")


def test_a_patch_carrying_a_stale_resource_version_is_409_conflict(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"x": "1"}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "c",
            "default",
            {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"x": "2"}},
        )
    assert err.value.status == 409


def test_a_no_op_patch_keeps_the_resource_version(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"x": "1"}})
    again = core.patch_namespaced_config_map("c", "default", {"data": {"x": "1"}})
    assert again.metadata.resource_version == cm.metadata.resource_version


def test_json_patch_applies_and_a_failing_test_op_is_422(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"x": "1"}})
    patched = core.patch_namespaced_config_map(
        "c",
        "default",
        [{"op": "test", "path": "/data/x", "value": "1"}, {"op": "replace", "path": "/data/x", "value": "2"}],
    )
    assert patched.data == {"x": "2"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "c",
            "default",
            [{"op": "test", "path": "/data/x", "value": "nope"}, {"op": "remove", "path": "/data/x"}],
        )
    assert err.value.status == 422
    assert core.read_namespaced_config_map("c", "default").data == {"x": "2"}


def test_kopfs_finalizer_json_patch_with_a_resource_version_test_passes(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    rv = cm.metadata.resource_version
    patched = core.patch_namespaced_config_map(
        "c",
        "default",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": ["kopf.zalando.org/KopfFinalizerMarker"]},
        ],
    )
    assert patched.metadata.finalizers == ["kopf.zalando.org/KopfFinalizerMarker"]


def test_strategic_merge_merges_conditions_by_type_and_finalizers_as_a_set(
    kubeapi: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    n = node("n1")
    n["status"]["conditions"].append({"type": "DiskPressure", "status": "False"})
    n["metadata"]["finalizers"] = ["a"]
    kubeapi.seed(n)
    smp = "application/strategic-merge-patch+json"
    body = {
        "metadata": {"finalizers": ["b"], "labels": {"x": "y"}},
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
    }
    assert http(kubeapi, "PATCH", "/api/v1/nodes/n1", body, smp)[0] == 200
    body = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}]}}
    assert http(kubeapi, "PATCH", "/api/v1/nodes/n1/status", body, smp)[0] == 200
    stored = kubeapi.must_get("nodes", "n1")
    assert stored["metadata"]["finalizers"] == ["a", "b"]
    assert stored["metadata"]["labels"] == {"x": "y"}
    assert {c["type"]: c["status"] for c in stored["status"]["conditions"]} == {
        "Ready": "False",
        "DiskPressure": "False",
    }
    assert stored["spec"]["taints"] == [{"key": "k", "effect": "NoSchedule"}]


def test_the_typed_client_patches_nodes_with_strategic_merge(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(node("n1", labels={"keep": "me"}))
    core.patch_node("n1", {"spec": {"unschedulable": True}, "metadata": {"labels": {"new": "1"}}})
    assert kubeapi.requests.filter(verb="patch", resource="nodes")[0].content_type.startswith(
        "application/strategic-merge-patch+json"
    )
    stored = kubeapi.must_get("nodes", "n1")
    assert stored["spec"]["unschedulable"] is True
    assert stored["metadata"]["labels"] == {"keep": "me", "new": "1"}


def test_generation_bumps_on_spec_changes_only(kubeapi: KubeApi, apps: kubernetes.client.AppsV1Api) -> None:
    kubeapi.call(setattr, kubeapi.emulator.controllers, "pod_startup_seconds", 1.0)
    dep = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment("default", dep)
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment("d", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("d", "default", {"spec": {"replicas": 1}})
    assert scaled.metadata.generation == 2


def test_status_subresource_writes_only_status_and_the_main_resource_ignores_status(
    kubeapi: KubeApi, widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    created = custom.create_namespaced_custom_object(
        "example.io",
        "v1",
        "default",
        "widgets",
        {
            "apiVersion": "example.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"mode": "Plan"},
            "status": {"phase": "Ignored"},
        },
    )
    assert isinstance(created, dict) and "status" not in created  # declared `object`: parsed JSON
    after_main = custom.patch_namespaced_custom_object(
        "example.io", "v1", "default", "widgets", "w", {"spec": {"size": 4}, "status": {"phase": "Nope"}}
    )
    assert isinstance(after_main, dict) and after_main["spec"]["size"] == 4 and "status" not in after_main
    after_status = custom.patch_namespaced_custom_object_status(
        "example.io", "v1", "default", "widgets", "w", {"spec": {"size": 9}, "status": {"phase": "Done"}}
    )
    assert isinstance(after_status, dict) and after_status["status"] == {"phase": "Done"}
    assert after_status["spec"]["size"] == 4
    assert after_status["metadata"]["generation"] == 2


def test_finalizers_hold_a_deleted_object_until_they_are_removed(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "f", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("f", "default")
    held = core.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": ["x/y", "new/one"]}})
    assert err.value.status == 422
    core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("f", "default")
    assert err.value.status == 404


def test_deleting_a_replicaset_collects_its_pods(kubeapi: KubeApi, apps: kubernetes.client.AppsV1Api) -> None:
    kubeapi.seed([node("n1"), node("n2")])
    apps.create_namespaced_replica_set(
        "default",
        {
            "metadata": {"name": "rs"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"a": "rs"}},
                "template": {
                    "metadata": {"labels": {"a": "rs"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    wait_until(lambda: len(kubeapi.list("pods", "default", label_selector="a=rs")) == 2, what="2 pods")
    apps.delete_namespaced_replica_set("rs", "default")
    wait_until(
        lambda: not kubeapi.list("pods", "default", label_selector="a=rs"), timeout=10, what="pods collected"
    )


def test_a_pod_without_containers_is_422_with_a_field_cause(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]


def test_list_honours_limit_and_continue(core: kubernetes.client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"]
    assert rest.metadata._continue is None


def test_delete_collection_removes_what_the_selector_matches(core: kubernetes.client.CoreV1Api) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map("default").items
        if (c.metadata.name or "") in ("a", "b", "c")
    ] == ["c"]


def test_pods_deserialise_into_typed_objects_with_defaults(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), pod("p", "n1")])
    typed = core.read_namespaced_pod("p", "default")
    assert typed.spec.termination_grace_period_seconds == 30
    assert typed.status.phase == "Running"


def test_metadata_only_clients_get_partial_object_metadata(kubeapi: KubeApi) -> None:
    kubeapi.seed([node("n1"), pod("p", "n1")])
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    code, body = http(kubeapi, "GET", "/api/v1/namespaces/default/pods", accept=accept)
    assert (code, body["kind"]) == (200, "PartialObjectMetadataList")
    assert body["items"] == [
        {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": kubeapi.must_get("pods", "p", "default")["metadata"],
        }
    ]
    code, one = http(
        kubeapi,
        "GET",
        "/api/v1/nodes/n1",
        accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    assert set(one) == {"kind", "apiVersion", "metadata"}
