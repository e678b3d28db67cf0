"""The fake kubelet registers and heartbeats its Node and reports its pods, from the real runtime."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import CoreV1Api
from testbed.nodes import Cluster
from testbed.nodes.fixtures import node_with_profile, wait_until
from testbed.nodes.profiles import ProfileName
from testbed.nodes.seeding import daemonset_pod_manifests

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]


def ready_condition(kube_core: CoreV1Api, name: str) -> Any:
    """The Node and its Ready condition, None until the kubelet has written one (a kubelet creates the
    Node first and writes its status after, so a read in between finds no status at all)."""
    node = kube_core.read_node(name)
    conditions = {c.type: c for c in ((node.status and node.status.conditions) or [])}
    return node, conditions.get("Ready")


@pytest.mark.parametrize("profile", [p.value for p in ProfileName])
def test_fake_kubelet_reports_the_docker_runtime_and_ready(
    kubelet_cluster: Cluster, kube_core: CoreV1Api, profile: str
) -> None:
    node = node_with_profile(kubelet_cluster, profile)
    api_node, ready = wait_until(
        lambda: (found := ready_condition(kube_core, node.name))[1] is not None and found,
        what=f"node {node.name} with a Ready condition",
    )
    info = api_node.status.node_info
    assert info.container_runtime_version.startswith("docker://20.10")
    assert info.kubelet_version == f"v{node.profile.kubelet_version}"
    assert ready.status == "True" and ready.reason == "KubeletReady"
    addresses = {a.type: a.address for a in api_node.status.addresses}
    assert addresses["InternalIP"] == node.ssh_host
    if profile != ProfileName.KUBESPRAY:
        assert "kubeadm.alpha.kubernetes.io/cri-socket" in api_node.metadata.annotations


def test_fake_kubelet_heartbeats_its_node(kubelet_cluster: Cluster, kube_core: CoreV1Api) -> None:
    node = kubelet_cluster.nodes[0]
    first = wait_until(lambda: ready_condition(kube_core, node.name)[1], what="a Ready condition")
    wait_until(
        lambda: ready_condition(kube_core, node.name)[1].last_heartbeat_time > first.last_heartbeat_time,
        timeout=10,
        what="a newer heartbeat",
    )


@pytest.mark.parametrize("profile", [p.value for p in ProfileName])
def test_fake_kubelet_reports_the_daemonset_pod_running_on_docker(
    kubelet_cluster: Cluster, kube_core: CoreV1Api, profile: str
) -> None:
    node = node_with_profile(kubelet_cluster, profile)
    for manifest in daemonset_pod_manifests(node):
        kube_core.create_namespaced_pod("kube-system", manifest)
        name = manifest["metadata"]["name"]

        def running(name: str = name) -> Any:
            pod = kube_core.read_namespaced_pod(name, "kube-system")
            return pod.status and pod.status.phase == "Running" and pod

        pod = wait_until(running, what=f"pod {name} Running")
        status = pod.status.container_statuses[0]
        assert status.ready and status.container_id.startswith("docker://")


def test_a_pod_whose_image_is_only_in_the_registry_runs_after_a_pull_through_docker(
    kubelet_cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(kubelet_cluster, ProfileName.KUBEADM_CGROUPFS)
    kube_core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "app-2"},
            "spec": {
                "nodeName": node.name,
                "containers": [{"name": "app", "image": "registry.shimshift.test/team/app:2.0"}],
            },
        },
    )
    wait_until(
        lambda: kube_core.read_namespaced_pod("app-2", "default").status.phase == "Running",
        what="pod app-2 Running",
    )


def test_a_pod_whose_image_cannot_be_pulled_is_in_image_pull_back_off(
    kubelet_cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(kubelet_cluster, ProfileName.KUBESPRAY)
    kube_core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "unreachable"},
            "spec": {
                "nodeName": node.name,
                "containers": [{"name": "app", "image": "registry.shimshift.test/team/app:2.0"}],
            },
        },
    )

    def waiting() -> Any:
        statuses = kube_core.read_namespaced_pod("unreachable", "default").status.container_statuses or []
        return statuses and statuses[0].state.waiting

    state = wait_until(waiting, what="a waiting container")
    assert state.reason == "ImagePullBackOff"
    assert 'Back-off pulling image "registry.shimshift.test/team/app:2.0"' in state.message


def test_the_node_goes_not_ready_while_its_runtime_endpoint_is_missing(
    kubelet_cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(kubelet_cluster, ProfileName.CRI_DOCKERD)
    assert node.exec(["systemctl", "stop", "cri-docker"]).exit_status == 0
    try:
        ready = wait_until(
            lambda: (c := ready_condition(kube_core, node.name)[1]).status == "False" and c,
            what="the node NotReady",
        )
        assert ready.reason == "KubeletNotReady"
        assert 'endpoint "unix:///run/cri-dockerd.sock"' in ready.message
        assert "no such file or directory" in ready.message.lower()
    finally:
        assert node.exec(["systemctl", "start", "cri-docker"]).exit_status == 0
    wait_until(lambda: ready_condition(kube_core, node.name)[1].status == "True", what="the node Ready again")
