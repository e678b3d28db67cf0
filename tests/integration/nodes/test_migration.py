"""A hand-written, test-only migration of testbed nodes (not the product) and what kubelet reports.

It does the node-side steps the product automates: import Docker's images into containerd's
k8s.io namespace, write a containerd config with CRI on, restart containerd, point kubelet at
containerd's socket, restart kubelet. The fake kubelet must then report what a real one would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from kubernetes.client import CoreV1Api, V1Pod
from testbed.nodes import Cluster, Node
from testbed.nodes.docker_api import DockerClient
from testbed.nodes.fixtures import ALL_PROFILES, ApiEndpoint, node_with_profile, wait_until
from testbed.nodes.profiles import ProfileName, RegistryUse
from testbed.nodes.seeding import daemonset_pod_manifests

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(180)]

CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"


@pytest.fixture(scope="module")
def cluster(testbed_root: Path, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    import os

    with Cluster.up(f"pytest-{os.getpid()}-migration", ALL_PROFILES, root=testbed_root) as cluster:
        cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
        yield cluster


def run(node: Node, *argv: str) -> str:
    result = node.exec(list(argv), timeout=60)
    assert result.exit_status == 0, f"{argv}: {result.stderr}"
    return result.stdout


def containerd_config(node: Node, systemd_cgroup: bool) -> str:
    return f"""version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{node.profile.sandbox_image}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = {str(systemd_cgroup).lower()}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"""


def configure_containerd(node: Node, systemd_cgroup: bool) -> None:
    node.dir.in_node("/etc/containerd/config.toml").write_text(containerd_config(node, systemd_cgroup))
    if node.profile.uses_registry:
        host = "registry.shimshift.test"
        trust = (
            "skip_verify = true"
            if node.profile.registry is RegistryUse.INSECURE
            else f'ca = "/etc/docker/certs.d/{host}/ca.crt"'
        )
        hosts = node.dir.in_node(f"/etc/containerd/certs.d/{host}/hosts.toml")
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(
            f'server = "https://{host}"\n[host."https://{host}"]\n  capabilities = ["pull", "resolve"]\n'
            f"  {trust}\n"
        )
    run(node, "containerd", "--config", "/etc/containerd/config.toml", "config", "dump")
    run(node, "systemctl", "restart", "containerd")
    assert any(
        line.split()[1:2] == ["cri"] and line.split()[-1] == "ok"
        for line in run(node, "ctr", "plugins", "ls").splitlines()[1:]
    )


def import_docker_images(node: Node) -> None:
    tags = [
        t
        for image in DockerClient(node.docker_socket).images()
        for t in image.get("RepoTags") or []
        if t != "<none>:<none>"
    ]
    run(node, "docker", "save", "-o", "/tmp/images.tar", *tags)
    run(node, "ctr", "-n", "k8s.io", "images", "import", "/tmp/images.tar")
    run(node, "rm", "/tmp/images.tar")


def switch_kubelet(node: Node) -> None:
    if node.profile.layout == "kubespray":
        env = node.dir.in_node("/etc/kubernetes/kubelet.env")
        env.write_text(
            env.read_text() + f'DOCKER_SOCKET="--container-runtime=remote '
            f'--container-runtime-endpoint={CONTAINERD_SOCKET}"\n'
        )
    else:
        flags = (
            f'KUBELET_KUBEADM_ARGS="--container-runtime=remote --container-runtime-endpoint={CONTAINERD_SOCKET} '
            f'--pod-infra-container-image={node.profile.sandbox_image}"\n'
        )
        node.dir.in_node("/var/lib/kubelet/kubeadm-flags.env").write_text(flags)
    run(node, "systemctl", "restart", "kubelet")


def create_pods_and_wait_running(node: Node, kube_core: CoreV1Api) -> list[str]:
    names = []
    for manifest in daemonset_pod_manifests(node):
        kube_core.create_namespaced_pod("kube-system", manifest)
        names.append(manifest["metadata"]["name"])
    for name in names:

        def running(name: str = name) -> bool:
            return kube_core.read_namespaced_pod(name, "kube-system").status.phase == "Running"

        wait_until(running, what=f"{name} Running on Docker")
    return names


def node_report(kube_core: CoreV1Api, node: Node) -> tuple[str, Any]:
    status = kube_core.read_node(node.name).status  # None until the kubelet has posted one
    ready = next((c for c in (status and status.conditions) or [] if c.type == "Ready"), None)
    return (status.node_info.container_runtime_version if status and status.node_info else ""), ready


def test_a_hand_written_migration_flips_a_node_to_containerd_with_its_pods_running(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(cluster, ProfileName.KUBEADM_CGROUPFS)
    pods = create_pods_and_wait_running(node, kube_core)
    import_docker_images(node)
    configure_containerd(node, systemd_cgroup=False)
    switch_kubelet(node)
    runtime, ready = wait_until(
        lambda: (r := node_report(kube_core, node))[0].startswith("containerd://") and r,
        what="containerd:// in nodeInfo",
    )
    assert runtime == "containerd://1.6.20~ds1"
    assert ready.status == "True"
    for name in pods:

        def on_containerd(name: str = name) -> V1Pod | None:
            pod = kube_core.read_namespaced_pod(name, "kube-system")
            return pod if pod.status.container_statuses[0].container_id.startswith("containerd://") else None

        pod = wait_until(on_containerd, what=f"{name} on containerd")
        assert pod.status.phase == "Running"
    with node.cri_channel() as channel:
        version = api_pb2_grpc.RuntimeServiceStub(channel).Version(
            api_pb2.VersionRequest(version="v1"), timeout=5
        )
    assert version.runtime_name == "containerd"
    assert any(c["argv"] == ["restart", "kubelet"] for c in node.systemctl_calls())


def test_an_air_gapped_node_switched_without_its_sandbox_image_has_pods_stuck_creating(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(cluster, ProfileName.KUBESPRAY)
    pods = create_pods_and_wait_running(node, kube_core)
    configure_containerd(node, systemd_cgroup=True)  # no image import: the pause image stays in Docker
    switch_kubelet(node)
    wait_until(
        lambda: node_report(kube_core, node)[0].startswith("containerd://"), what="containerd:// in nodeInfo"
    )

    def waiting() -> Any:
        status = kube_core.read_namespaced_pod(pods[0], "kube-system").status
        state = status.container_statuses[0].state
        return state.waiting and "sandbox image" in (state.waiting.message or "") and status

    status = wait_until(waiting, what="a pod stuck on the sandbox image")
    assert status.phase == "Pending"
    waiting_state = status.container_statuses[0].state.waiting
    assert waiting_state.reason == "ContainerCreating"
    assert f'failed to get sandbox image "{node.profile.sandbox_image}"' in waiting_state.message
    assert node_report(kube_core, node)[1].status == "True", (
        "the node itself stays Ready, as with a real kubelet"
    )


def test_switching_kubelet_to_containerd_without_enabling_cri_makes_the_node_not_ready(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(cluster, ProfileName.CRI_DOCKERD)
    config = node.dir.in_node("/var/lib/kubelet/config.yaml")
    config.write_text(config.read_text().replace("unix:///run/cri-dockerd.sock", CONTAINERD_SOCKET))
    run(node, "systemctl", "restart", "kubelet")
    _, ready = wait_until(
        lambda: (r := node_report(kube_core, node))[1] is not None and r[1].status == "False" and r,
        what="the node NotReady",
    )
    assert ready.reason == "KubeletNotReady"
    assert "CRI v1 runtime API is not implemented" in ready.message
    assert "unknown service runtime.v1.RuntimeService" in ready.message


def test_kubelet_1_27_refuses_the_removed_container_runtime_flag(cluster: Cluster) -> None:
    node = node_with_profile(cluster, ProfileName.CRI_DOCKERD)
    flags = node.dir.in_node("/var/lib/kubelet/kubeadm-flags.env")
    original = flags.read_text()
    flags.write_text(original.replace('="', '="--container-runtime=remote '))
    try:
        result = node.exec(["systemctl", "restart", "kubelet"])
        assert result.exit_status == 1
        assert "Job for kubelet.service failed" in result.stderr
        assert "unknown flag: --container-runtime" in node.read("/var/log/kubelet.log")
    finally:
        flags.write_text(original)
    run(node, "systemctl", "start", "kubelet")


def test_a_cgroup_driver_mismatch_keeps_pods_in_container_creating(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_with_profile(cluster, ProfileName.KUBEADM_SYSTEMD)
    pods = create_pods_and_wait_running(node, kube_core)
    import_docker_images(node)
    configure_containerd(node, systemd_cgroup=False)  # kubelet's cgroupDriver is systemd
    switch_kubelet(node)

    def waiting() -> Any:
        state = kube_core.read_namespaced_pod(pods[0], "kube-system").status.container_statuses[0].state
        return state.waiting and "cgroup" in (state.waiting.message or "") and state.waiting

    waiting_state = wait_until(waiting, what="a pod stuck on the cgroup driver")
    assert waiting_state.reason == "ContainerCreating"
    assert "invalid cgroups path" in waiting_state.message


def test_containerd_cri_is_unimplemented_until_the_config_enables_it(cluster: Cluster) -> None:
    node = node_with_profile(cluster, ProfileName.KUBESPRAY)  # migrated above: CRI on
    with node.cri_channel() as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        assert stub.Version(api_pb2.VersionRequest(version="v1"), timeout=5).runtime_name == "containerd"
    other = node_with_profile(cluster, ProfileName.CRI_DOCKERD)  # never migrated
    with other.cri_channel() as channel, pytest.raises(grpc.RpcError) as caught:
        api_pb2_grpc.RuntimeServiceStub(channel).Version(api_pb2.VersionRequest(version="v1"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
