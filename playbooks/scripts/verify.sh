# The node side of verify: containerd's CRI plugin is ok and the kubelet runs, within SECONDS.
# (Node Ready and containerRuntimeVersion are checked through the Kubernetes API by the operator.)
# Usage: verify SECONDS
wait_for "$1" cri_ok || { echo "containerd's CRI plugin is not ok" >&2; exit 1; }
wait_for "$1" is_active kubelet || { echo "the kubelet is not running" >&2; exit 2; }
echo ok
