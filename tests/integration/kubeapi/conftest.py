"""Clients bound to the in-process API emulator (the ``kubeapi`` fixture from testbed.kubeapi.fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypeVar

import kubernetes
import kubernetes_asyncio
import pytest
from testbed import waiting
from testbed.kubeapi import KubeApi

T = TypeVar("T")

pytestmark = pytest.mark.integration

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.io"},
    "spec": {
        "group": "example.io",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["mode"],
                                "properties": {
                                    "mode": {"type": "string", "enum": ["Plan", "Migrate"]},
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                    "budget": {"x-kubernetes-int-or-string": True},
                                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "note": {"type": "string", "nullable": True},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """``testbed.waiting.wait_until`` with the API emulator tests' defaults (10 s, polled every 0.05 s)."""
    return waiting.wait_until(predicate, timeout, what=what or repr(predicate), interval=interval)


def node(
    name: str, ready: bool = True, unschedulable: bool = False, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(
    name: str,
    node_name: str | None = "n1",
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    ready: bool = True,
    phase: str = "Running",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.fixture
def api_client(kubeapi: KubeApi) -> Iterator[kubernetes.client.ApiClient]:
    config = kubernetes.client.Configuration()
    config.host = kubeapi.url
    with kubernetes.client.ApiClient(config) as client:
        yield client


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)


@pytest.fixture
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture
def widgets(kubeapi: KubeApi) -> dict[str, Any]:
    """The Widget CRD installed (namespaced, status subresource, a schema with every rule we check)."""
    return kubeapi.seed(WIDGET_CRD)[0]


@pytest.fixture
async def async_client(kubeapi: KubeApi) -> AsyncIterator[kubernetes_asyncio.client.ApiClient]:
    config = kubernetes_asyncio.client.Configuration()
    config.host = kubeapi.url
    async with kubernetes_asyncio.client.ApiClient(config) as client:
        yield client


def http(
    kubeapi: KubeApi,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    accept: str = "application/json",
) -> tuple[int, Any]:
    """One raw request; returns (status, parsed JSON body) for successes and API errors alike."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        kubeapi.url + path,
        data=data,
        method=method,
        headers={"Content-Type": content_type, "Accept": accept},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
