"""The fake nodes' model kubelets against the real control plane: each registers and reports its Node
with its own node certificate (``system:node:<name>`` in ``system:nodes``), which the Node authorizer
and NodeRestriction admit for that node only, and reports the pods bound to it from its real runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.nodes import Cluster
from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.nodes.profiles import ProfileName
from testbed.nodes.seeding import daemonset_pod_manifests
from testbed.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

SCRATCH_PROFILES = [ProfileName.KUBEADM_SYSTEMD.value, ProfileName.CRI_DOCKERD.value]


@pytest.fixture(scope="module")
def attached(scratch_cluster: Cluster, controlplane: ControlPlane) -> Iterator[Cluster]:
    scratch_cluster.attach_api(
        controlplane.url, controlplane.admin_kubeconfig, node_kubeconfig=controlplane.node_kubeconfig
    )
    yield scratch_cluster


def _ready(api: RealKubeApi, name: str) -> dict[str, Any] | None:
    node = api.get("nodes", name)
    conditions = {c["type"]: c for c in ((node or {}).get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready") or {}
    return node if ready.get("status") == "True" and ready.get("reason") == "KubeletReady" else None


def test_model_kubelets_register_and_report_with_node_certificates(
    attached: Cluster, controlplane: ControlPlane, realkube_session: RealKubeApi
) -> None:
    api = realkube_session
    for node in attached.nodes:
        registered = wait_until(lambda n=node.name: _ready(api, n), 60, what=f"node {node.name} Ready")  # type: ignore[misc]
        info = registered["status"]["nodeInfo"]
        assert info["kubeletVersion"] == f"v{node.profile.kubelet_version}"
        assert info["containerRuntimeVersion"].startswith("docker://20.10")
        assert registered["metadata"]["annotations"]["testbed.shimshift.io/external-kubelet"] == "true"
        # a new heartbeat goes through the Node authorizer with the node's own certificate
        first = _heartbeat(registered)

        def newer(name: str = node.name, since: str = first) -> bool:
            return _heartbeat(api.must_get("nodes", name)) > since

        wait_until(newer, 30, what=f"a newer heartbeat of {node.name}")


def _heartbeat(node: dict[str, Any]) -> str:
    return str(next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["lastHeartbeatTime"])


def test_a_node_certificate_writes_only_its_own_node(
    attached: Cluster, controlplane: ControlPlane, tmp_path: Path
) -> None:
    first, second = attached.nodes[0], attached.nodes[1]
    path = tmp_path / "kubelet.conf"
    path.write_text(controlplane.node_kubeconfig(first.name))
    kubelet = KubeHttp(path)
    own = kubelet.merge_patch(f"/api/v1/nodes/{first.name}", {"metadata": {"labels": {"team": "a"}}})
    assert own["metadata"]["labels"]["team"] == "a"
    with pytest.raises(ApiError) as refused:
        kubelet.merge_patch(f"/api/v1/nodes/{second.name}/status", {"status": {"conditions": []}})
    assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        kubelet.request("GET", "/api/v1/namespaces/default/secrets")
    assert refused.value.status == 403


def test_the_model_kubelet_reports_its_pod_running_and_its_deletion_finishes(
    attached: Cluster, realkube: RealKubeApi
) -> None:
    node = attached.nodes[0]
    manifest = daemonset_pod_manifests(node)[0]
    manifest["metadata"] = {"name": manifest["metadata"]["name"], "namespace": "default"}
    realkube.seed(manifest)
    name = manifest["metadata"]["name"]

    def running() -> dict[str, Any] | None:
        pod = realkube.must_get("pods", name, "default")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    pod = wait_until(running, 60, what=f"pod {name} Running")
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("docker://")
    realkube.delete("pods", name, "default")
    wait_until(lambda: realkube.get("pods", name, "default") is None, 30, what=f"pod {name} deleted")
