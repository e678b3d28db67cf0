"""The testbed's stand-in for a cloud controller manager's node controller.

A real kubelet refuses a loopback node IP, and the host reaches a node only on its loopback
(127.0.0.1x), so real kubelets run with ``--cloud-provider=external``, as on a cloud: the kubelet
registers its Node with the taint ``node.cloudprovider.kubernetes.io/uninitialized`` and leaves the
Node's addresses alone, and this initializer does what the cloud's node controller does once per
Node: set its addresses (InternalIP = the node's SSH address, Hostname) and remove the taint. It also
puts on the annotations kubeadm puts on a Node when it joins, and the ones that tell the control plane's
pod-lifecycle stand-in that a kubelet owns the Node's pods and that it is a real one (it finishes its
pods' deletions itself). Runs on the host with an admin
kubeconfig.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.waiting import wait_until

UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
#: The control plane's pod-lifecycle stand-in (``testbed.controlplane.podlife``) leaves the pods of a
#: Node with this annotation to its kubelet.
EXTERNAL_KUBELET = "testbed.shimshift.io/external-kubelet"
#: ... and that the kubelet is real: it finishes its pods' graceful deletions once their containers stop.
REAL_KUBELET = "testbed.shimshift.io/real-kubelet"


@dataclass(frozen=True)
class NodeAddress:
    name: str
    internal_ip: str
    annotations: dict[str, str]


def _get(api: KubeHttp, name: str) -> dict[str, Any] | None:
    try:
        node: dict[str, Any] = api.request("GET", f"/api/v1/nodes/{name}")
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return node


def initialize(api: KubeHttp, node: NodeAddress, timeout: float = 90.0) -> None:
    """Wait for ``node`` to register, then give it its addresses and lift the uninitialized taint."""
    wait_until(lambda: _get(api, node.name) is not None, timeout, what=f"Node {node.name} to register")
    current = _get(api, node.name) or {}
    taints = [
        t for t in (current.get("spec") or {}).get("taints") or () if t.get("key") != UNINITIALIZED_TAINT
    ]
    api.merge_patch(
        f"/api/v1/nodes/{node.name}",
        {
            "metadata": {"annotations": {**node.annotations, EXTERNAL_KUBELET: "true", REAL_KUBELET: "true"}},
            "spec": {"taints": taints or None},
        },
    )
    addresses = [
        {"type": "InternalIP", "address": node.internal_ip},
        {"type": "Hostname", "address": node.name},
    ]
    api.merge_patch(f"/api/v1/nodes/{node.name}/status", {"status": {"addresses": addresses}})


def initialize_all(api: KubeHttp, nodes: Iterable[NodeAddress], timeout: float = 90.0) -> None:
    for node in nodes:
        initialize(api, node, timeout)
