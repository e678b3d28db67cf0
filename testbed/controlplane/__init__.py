"""A real Kubernetes control plane for the testbed: etcd, kube-apiserver, controller manager, scheduler.

``ControlPlane.up()`` starts one on the host's loopback (``cluster.py``); ``RealKubeApi`` is the
test-facing handle (``api.py``, the methods of ``testbed.kubeapi.KubeApi`` that make sense on a real
server); ``fixtures`` registers the pytest fixtures; ``podlife`` stands in for the kubelet of Nodes
that have none. ``python -m testbed controlplane up|down|status`` drives it from a shell.
"""

from testbed.controlplane.cluster import ControlPlane, ControlPlaneError

__all__ = ["ControlPlane", "ControlPlaneError"]
