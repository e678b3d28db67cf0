"""A real kubelet 1.23.17 (built from its Go module, in-tree dockershim) on a kubeadm cgroupfs node,
registered with a real control plane 1.24.17, started by the node's service manager from the node's
own kubeadm-flags.env and KubeletConfiguration. Its pods really run: in Docker through dockershim
first, then, after the switch of its flags to containerd's CRI (by hand here, as shimshift's switch
does it), as containerd containers recreated by the same kubelet.

Needs the built kubelet and control plane (``scripts/build-components``); without them the module
skips, except under CI, where it fails naming what to build.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import ControlPlane
from testbed.controlplane.fixtures import real_kubelet_stack
from testbed.nodes import Cluster
from testbed.nodes.realkubelet import (
    docker_containers,
    docker_image_id,
    pod_containers_in_containerd,
)
from testbed.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(300)]

PROFILE = "kubeadm-cgroupfs"
APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in the node's Docker (testbed seeding)
SANDBOX_IMAGE = "k8s.gcr.io/pause:3.6"
STATIC_POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: probe
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: probe
    image: {APP_IMAGE}
    command: ["/bin/sleep", "3600"]
"""
# containerd 1.6's CRI as a migration configures it for a cgroupfs node (schema 2)
CONTAINERD_CRI = f"""\
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
"""
REMOTE_FLAGS = (
    'KUBELET_KUBEADM_ARGS="--container-runtime=remote '
    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock "
    f'--pod-infra-container-image={SANDBOX_IMAGE}"\n'
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, real_kubelet_host: None
) -> Iterator[tuple[ControlPlane, Cluster, RealKubeApi]]:
    began = time.monotonic()
    with real_kubelet_stack(tmp_path_factory, "realkubelet", [PROFILE]) as (plane, cluster):
        print(f"control plane and real kubelet up in {time.monotonic() - began:.1f}s")
        yield plane, cluster, RealKubeApi(plane.admin_kubeconfig)


def ready_runtime(api: RealKubeApi, name: str) -> str | None:
    """The Node's containerRuntimeVersion while it is Ready, else None."""
    node = api.get("nodes", name) or {}
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    return (status.get("nodeInfo") or {}).get("containerRuntimeVersion") if ready else None


def running(api: RealKubeApi, name: str, namespace: str) -> dict[str, Any] | None:
    pod = api.get("pods", name, namespace) or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return pod if statuses and all("running" in (s.get("state") or {}) for s in statuses) else None


def pinned_deployment(node: str) -> dict[str, Any]:
    labels = {"app": "pinned"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pinned", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [
                        {
                            "name": "web",
                            "image": APP_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sleep", "3600"],
                        }
                    ],
                },
            },
        },
    }


def deployment_pod(api: RealKubeApi) -> dict[str, Any] | None:
    """The Deployment's pod as read when it was Running (the listed copy may be older than that read)."""
    for pod in api.list("pods", "default"):
        if (pod["metadata"].get("labels") or {}).get("app") == "pinned":
            found = running(api, pod["metadata"]["name"], "default")
            if found:
                return found
    return None


def test_the_real_kubelet_registers_on_dockershim_and_runs_a_static_and_a_deployment_pod_in_docker(
    stack: tuple[ControlPlane, Cluster, RealKubeApi],
) -> None:
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    runtime = wait_until(lambda: ready_runtime(api, node.name), 60, what=f"{node.name} Ready")
    assert runtime.startswith("docker://20.10")
    info = api.must_get("nodes", node.name)["status"]
    assert info["nodeInfo"]["kubeletVersion"] == "v1.23.17"
    assert {a["type"]: a["address"] for a in info["addresses"]}["InternalIP"] == node.ssh_host
    node.dir.in_node("/etc/kubernetes/manifests/probe.yaml").write_text(STATIC_POD)
    api.seed([pinned_deployment(node.name)])
    mirror = wait_until(lambda: running(api, f"probe-{node.name}", "kube-system"), 90, what="the static pod")
    pod = wait_until(lambda: deployment_pod(api), 90, what="the Deployment's pod")
    assert mirror["status"]["containerStatuses"][0]["containerID"].startswith("docker://")
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("docker://")
    in_docker, app_id = docker_containers(node), docker_image_id(node, APP_IMAGE)
    static_uid = mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"]  # the mirror's uid differs
    assert in_docker[f"k8s_probe_probe-{node.name}_kube-system_{static_uid}_0"] == app_id
    web = pod["metadata"]
    assert in_docker[f"k8s_web_{web['name']}_default_{web['uid']}_0"] == app_id


def test_switched_to_containerd_the_same_kubelet_reports_containerd_and_its_pods_run_in_containerd(
    stack: tuple[ControlPlane, Cluster, RealKubeApi],
) -> None:
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    wait_until(lambda: running(api, f"probe-{node.name}", "kube-system"), 90, what="the static pod on Docker")
    web = wait_until(lambda: deployment_pod(api), 90, what="the Deployment's pod on Docker")
    # the switch, by hand: CRI on, the images moved, the flags pointed at containerd, Docker stopped
    node.dir.in_node("/etc/containerd/config.toml").write_text(CONTAINERD_CRI)
    saved = node.exec(["docker", "save", "-o", "/tmp/images.tar", SANDBOX_IMAGE, APP_IMAGE], timeout=120)
    assert saved.exit_status == 0, saved.stderr
    assert node.exec(["systemctl", "restart", "containerd"]).exit_status == 0
    imported = node.exec(["ctr", "-n", "k8s.io", "images", "import", "/tmp/images.tar"], timeout=120)
    assert imported.exit_status == 0, imported.stderr
    node.dir.in_node("/var/lib/kubelet/kubeadm-flags.env").write_text(REMOTE_FLAGS)
    assert node.exec(["systemctl", "stop", "docker"]).exit_status == 0
    began = time.monotonic()
    restarted = node.exec(["systemctl", "restart", "kubelet"], timeout=120)
    assert restarted.exit_status == 0, restarted.stderr
    print(f"kubelet restarted on containerd in {time.monotonic() - began:.1f}s")
    runtime = wait_until(
        lambda: (r := ready_runtime(api, node.name)) and r.startswith("containerd://") and r,
        90,
        what=f"{node.name} Ready on containerd",
    )
    assert runtime == "containerd://1.6.20"

    def on_containerd(name: str, namespace: str) -> dict[str, Any] | None:
        pod = running(api, name, namespace)
        ids = [s.get("containerID", "") for s in (pod or {}).get("status", {}).get("containerStatuses", [])]
        return pod if ids and all(i.startswith("containerd://") for i in ids) else None

    wait_until(
        lambda: on_containerd(f"probe-{node.name}", "kube-system"), 90, what="the static pod on containerd"
    )
    wait_until(
        lambda: on_containerd(web["metadata"]["name"], "default"), 90, what="the web pod on containerd"
    )
    in_containerd = pod_containers_in_containerd(node)
    assert in_containerd[f"kube-system/probe-{node.name}/probe"] == APP_IMAGE
    assert in_containerd[f"default/{web['metadata']['name']}/web"] == APP_IMAGE
    assert docker_containers(node) == {}  # Docker is stopped: nothing runs there any more
