"""Discovery: what clients read first, including CRDs registered at runtime."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import kubernetes
import pytest
from testbed.kubeapi import KubeApi

from .conftest import WIDGET_CRD

pytestmark = pytest.mark.integration


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
        return json.loads(response.read())


@pytest.mark.parametrize(
    "path",
    [
        "/version",
        "/version/",
        "/api",
        "/api/",
        "/api/v1",
        "/api/v1/",
        "/apis",
        "/apis/apps/v1",
        "/apis/apps/v1/",
        "/apis/policy",
        "/apis/kopf.dev/v1",
    ],
)
def test_every_discovery_path_answers_with_and_without_trailing_slash(kubeapi: KubeApi, path: str) -> None:
    assert fetch(kubeapi.url + path)


def test_core_discovery_lists_eviction_as_a_policy_subresource(kubeapi: KubeApi) -> None:
    resources = {r["name"]: r for r in fetch(kubeapi.url + "/api/v1")["resources"]}
    assert resources["pods/eviction"]["group"] == "policy"
    assert resources["pods/eviction"]["kind"] == "Eviction"
    assert resources["nodes"]["namespaced"] is False
    assert "watch" in resources["pods"]["verbs"]


def test_version_and_resources_work_through_the_official_client(
    api_client: kubernetes.client.ApiClient,
) -> None:
    assert kubernetes.client.VersionApi(api_client).get_code().major == "1"
    names = {r.name for r in kubernetes.client.CoreV1Api(api_client).get_api_resources().resources}
    assert {"pods", "nodes", "namespaces", "events", "pods/status"} <= names
    groups = {g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "policy", "coordination.k8s.io", "apiextensions.k8s.io", "kopf.dev"} <= groups


def test_a_crd_created_through_the_api_appears_in_discovery_and_goes_when_deleted(
    kubeapi: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    crd = ext.create_custom_resource_definition(WIDGET_CRD)
    assert crd.metadata.uid
    groups = {g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}
    assert "example.io" in groups
    resources = {r["name"] for r in fetch(kubeapi.url + "/apis/example.io/v1")["resources"]}
    assert resources == {"widgets", "widgets/status"}
    established = ext.read_custom_resource_definition("widgets.example.io").status.conditions
    assert {c.type: c.status for c in established}["Established"] == "True"
    ext.delete_custom_resource_definition("widgets.example.io")
    groups = {g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}
    assert "example.io" not in groups


def test_unknown_resources_answer_404_as_a_status(kubeapi: KubeApi) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(kubeapi.url + "/apis/nope.io/v1/things")
    body = json.loads(err.value.read())
    assert (err.value.code, body["kind"], body["reason"]) == (404, "Status", "NotFound")
