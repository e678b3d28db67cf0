"""The size limits of a real cluster, answered as a real one answers them (1.24 texts).

A NodeMigration's status that outgrew etcd's 1.5 MiB passed silently on an emulator that accepted any
size; these pin that it now answers each limit as kube-apiserver and etcd do."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi import KubeApi

from .conftest import http

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def failure(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as err:
        call()
    return err.value.status, json.loads(err.value.body or "{}")


def create_configmap(kubeapi: KubeApi, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    code, answer = http(kubeapi, "POST", CONFIGMAPS, body)
    assert isinstance(answer, dict)
    return code, answer


def test_configmap_data_over_1_mib_is_invalid_and_at_1_mib_is_stored(kubeapi: KubeApi) -> None:
    key = "k"
    fits = {"metadata": {"name": "fits"}, "data": {key: "x" * (MIB - len(key))}}
    assert create_configmap(kubeapi, fits)[0] == 201
    over = {"metadata": {"name": "over"}, "data": {key: "x" * (MIB - len(key) + 1)}}
    code, status = create_configmap(kubeapi, over)
    assert code == 422 and status["reason"] == "Invalid"
    assert status["message"] == 'ConfigMap "over" is invalid: []: Too long: must have at most 1048576 bytes'


def test_binary_data_counts_its_decoded_bytes(kubeapi: KubeApi) -> None:
    import base64

    blob = base64.b64encode(b"\0" * (MIB // 2)).decode()  # 0.5 MiB decoded, 0.67 MiB as base64
    both = {"metadata": {"name": "both"}, "binaryData": {"a": blob}, "data": {"b": "y" * (MIB // 2)}}
    code, status = create_configmap(kubeapi, both)
    assert code == 422, status
    one = {"metadata": {"name": "one"}, "binaryData": {"a": blob}}
    assert create_configmap(kubeapi, one)[0] == 201


def test_annotations_over_256_kib_are_invalid(kubeapi: KubeApi) -> None:
    body = {"metadata": {"name": "a", "annotations": {"big": "x" * (256 * 1024)}}}
    code, status = create_configmap(kubeapi, body)
    assert code == 422
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueTooLong",
            "message": "Too long: must have at most 262144 bytes",
            "field": "metadata.annotations",
        }
    ]


def test_a_request_body_over_3_mib_is_413_before_anything_is_decoded(kubeapi: KubeApi) -> None:
    body = {"metadata": {"name": "huge"}, "data": {"k": "x" * (3 * MIB)}}
    code, status = create_configmap(kubeapi, body)
    assert code == 413
    assert status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == "Request entity too large: limit is 3145728"
    assert kubeapi.get("configmaps", "huge", "default") is None


def test_a_custom_resource_status_outgrowing_etcd_is_refused_and_the_stored_object_stays(
    kubeapi: KubeApi, widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    body = {
        "apiVersion": "example.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"mode": "Plan"},
    }
    created = custom.create_namespaced_custom_object("example.io", "v1", "default", "widgets", body)
    assert isinstance(created, dict)
    # both patches are under the API server's 3 MiB body limit: 1.2 MiB of status fits etcd, 1.6 does not
    small = {"status": {"phase": "p" * (MIB + MIB // 5)}}
    custom.patch_namespaced_custom_object_status("example.io", "v1", "default", "widgets", "w", small)
    big = {"status": {"phase": "p" * (MIB + 6 * MIB // 10)}}
    code, status = failure(
        lambda: custom.patch_namespaced_custom_object_status(
            "example.io", "v1", "default", "widgets", "w", big
        )
    )
    assert code == 500
    assert status["message"] == "etcdserver: request is too large" and "reason" not in status
    stored = kubeapi.must_get("widgets.example.io", "w", "default")
    assert len(stored["status"]["phase"]) == MIB + MIB // 5


def test_an_event_about_a_cluster_scoped_object_outside_default_must_name_its_namespace(
    kubeapi: KubeApi,
) -> None:
    kubeapi.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}})

    def event(namespace: str, involved_namespace: str | None) -> tuple[int, Any]:
        involved = {"kind": "Node", "name": "n1", "apiVersion": "v1"}
        if involved_namespace is not None:
            involved["namespace"] = involved_namespace
        body = {"metadata": {"generateName": "n1."}, "involvedObject": involved, "reason": "R"}
        return http(kubeapi, "POST", f"/api/v1/namespaces/{namespace}/events", body)

    code, status = event("ops", None)
    assert code == 422
    assert status["details"]["causes"][0]["message"] == 'Invalid value: "": does not match event.namespace'
    assert event("default", None)[0] == 201
    assert event("ops", "ops")[0] == 201
    assert event("ops", "default")[0] == 422
