"""The migration judged by a real kubelet 1.34.4 whose runtime endpoint is in its KubeletConfiguration
(the layout of kubelet 1.27+), on Docker through the real cri-dockerd 0.4.3, registered with the real
1.34.4 control plane: shimshift rewrites `containerRuntimeEndpoint` to containerd's socket, the kubelet
restarts from that file and reports containerd://, and recreates its pods as containerd containers.

Needs the built kubelet 1.34.4, cri-dockerd and control plane 1.34.4 with etcd 3.6
(`scripts/build-components`); without them the module skips, except under CI, where it fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import ControlPlane
from testbed.controlplane.fixtures import real_kubelet_stack
from testbed.nodes import Cluster
from testbed.nodes.realkubelet import (
    ENDPOINT_IN_CONFIG,
    NEW_CONTROL_PLANE,
    docker_containers,
    pod_containers_in_containerd,
)

from shimshift.resources import load_crd, load_node_crd
from tests.e2e.conftest import Operator, eventually, secret
from tests.e2e.test_real_kubelet import (
    APP_IMAGE,
    STATIC_POD,
    pods_running_on,
    ready_runtime,
    ssh_migration,
    workloads,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, real_kubelet_host: None
) -> Iterator[tuple[ControlPlane, Cluster, RealKubeApi]]:
    with real_kubelet_stack(tmp_path_factory, "e2eendpoint", [ENDPOINT_IN_CONFIG], NEW_CONTROL_PLANE) as (
        plane,
        cluster,
    ):
        yield plane, cluster, RealKubeApi(plane.admin_kubeconfig)


def test_shimshift_moves_a_real_kubelet_1_34_from_cri_dockerd_to_containerd_through_its_kubelet_configuration(
    stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    plane, cluster, api = stack
    node = cluster.nodes[0]
    eventually(
        lambda: ready_runtime(api, node.name).startswith("docker://"), 60, "the kubelet Ready on Docker"
    )
    assert "unix:///run/cri-dockerd.sock" in node.read("/var/lib/kubelet/config.yaml")
    node.dir.in_node("/etc/kubernetes/manifests/probe.yaml").write_text(STATIC_POD)
    api.seed(workloads(node.name))
    eventually(
        lambda: pods_running_on(api, "docker://"), 120, "the three pods Running on Docker (cri-dockerd)"
    )
    assert len(docker_containers(node)) >= 6

    api.seed([load_crd(), load_node_crd()])
    api.seed(
        [
            secret("ssh", "ssh-privatekey", cluster.private_key.read_text()),
            secret("known-hosts", "known_hosts", cluster.known_hosts.read_text()),
        ]
    )
    operator = Operator(plane.admin_kubeconfig, tmp_path, {}, ssh=True)
    operator.start()
    began = time.monotonic()
    try:
        api.seed([ssh_migration(cluster, "endpoint", [node.name])])

        def settled() -> str | None:
            obj = api.get("nodemigrations.shimshift.io", "endpoint", "default") or {}
            phase = (obj.get("status") or {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 300, "the migration to settle", 0.5)
    finally:
        operator.stop()
    status = (api.get("nodemigrations.shimshift.io", "endpoint", "default") or {}).get("status") or {}
    assert phase == "Succeeded", (status, operator.logs()[-4000:])
    print(f"migrated {node.name} (kubelet 1.34.4, cri-dockerd) in {time.monotonic() - began:.1f}s")

    assert ready_runtime(api, node.name) == "containerd://1.6.20"
    config = node.read("/var/lib/kubelet/config.yaml")
    assert "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock" in config, config
    assert "--container-runtime" not in node.read("/var/lib/kubelet/kubeadm-flags.env")  # 1.27 removed it
    after = eventually(
        lambda: pods_running_on(api, "containerd://"), 120, "the three pods Running on containerd"
    )
    in_containerd = pod_containers_in_containerd(node)
    assert in_containerd[f"kube-system/probe-{node.name}/probe"] == APP_IMAGE
    assert in_containerd[f"kube-system/{after['proxy']['metadata']['name']}/proxy"] == APP_IMAGE
    assert in_containerd[f"default/{after['web']['metadata']['name']}/web"] == APP_IMAGE
    print(f"pods recreated in containerd: {sorted(in_containerd)}")
