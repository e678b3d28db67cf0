"""shimshift.kube against the in-process API emulator (the `kubeapi` fixture of testbed.kubeapi)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube, load_api_client
from shimshift.resources import load_crd

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(kubeapi: KubeApi) -> Iterator[Kube]:
    client = Kube(load_api_client(str(kubeapi.kubeconfig)), request_timeout=10)
    yield client
    client.close()


@pytest.fixture
def crd(kubeapi: KubeApi) -> dict[str, Any]:
    return kubeapi.seed(load_crd())[0]


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
    runtime: str = "docker://20.10.24",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels if labels is not None else {"pool": "workers"}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"containerRuntimeVersion": runtime, "kubeletVersion": "v1.23.17"},
        },
    }


def pod(
    name: str,
    node_name: str,
    *,
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "rs"),
    annotations: dict[str, str] | None = None,
    empty_dir: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
            }
        ]
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pdb(name: str, match: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": match}, **spec},
    }


def migration(name: str = "m", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": name},
        "spec": {
            "mode": "Migrate",
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
            **spec,
        },
    }


def daemonset(name: str) -> dict[str, Any]:
    """A DaemonSet object whose own controller places no pod (no node matches): only seeded pods exist."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": {"no": "node"}, "containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
