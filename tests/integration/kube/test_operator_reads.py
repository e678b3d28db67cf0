"""What the cluster port reads for the GPU operator and the operator's own pods, against the API
emulator: the Deployments that run NVIDIA's GPU operator (by image or command, with their replicas),
and the operator's pods in its own namespace only (by the chart's label)."""

from __future__ import annotations

from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube
from shimshift.kube.cluster import KubeCluster
from shimshift.model.gpuoperator import GpuOperator
from shimshift.planning.operatorpod import OPERATOR_NAME, OPERATOR_NAME_LABEL

from .conftest import pod

pytestmark = pytest.mark.integration


def deployment(name: str, image: str, replicas: int, namespace: str = "gpu-operator") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_the_gpu_operators_deployments_are_read_with_their_replicas(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(
        [
            deployment("gpu-operator", "nvcr.io/nvidia/gpu-operator:v23.9.1", 0),
            deployment("web", "nginx:1.25", 3, namespace="default"),
        ]
    )
    port = KubeCluster(kube, namespace="shimshift-system")
    assert port.gpu_operators() == (GpuOperator("gpu-operator", "gpu-operator", 0),)
    kube.request(
        "PATCH",
        "/apis/apps/v1/namespaces/gpu-operator/deployments/gpu-operator",
        body={"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    assert port.gpu_operators() == (GpuOperator("gpu-operator", "gpu-operator", 1),)  # read anew each time


def test_the_operators_own_pods_are_read_in_its_namespace_by_the_charts_label(
    kubeapi: KubeApi, kube: Kube
) -> None:
    ours = pod("shimshift-7d9-abc", "n1", labels={OPERATOR_NAME_LABEL: OPERATOR_NAME})
    ours["metadata"]["namespace"] = "shimshift-system"
    ours["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "n1"}
    elsewhere = pod("shimshift-other", "n2", labels={OPERATOR_NAME_LABEL: OPERATOR_NAME})  # another install
    kubeapi.seed([ours, elsewhere, pod("web-1", "n1")])
    (found,) = KubeCluster(kube, namespace="shimshift-system").read_operator_pods()
    assert (found.namespace, found.name, found.node) == ("shimshift-system", "shimshift-7d9-abc", "n1")
    assert found.node_selector == {"kubernetes.io/hostname": "n1"}
