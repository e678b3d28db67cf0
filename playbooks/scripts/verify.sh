# The node side of verify, within SECONDS: the kubelet runs, and containerd serves CRI. A node with
# crictl (kubeadm nodes have it: cri-tools is a kubeadm dependency) is asked what the kubelet asks:
# `crictl info` must report the RuntimeReady and NetworkReady conditions true and `crictl images` must
# answer; without crictl, containerd's CRI plugin must report ok in `ctr plugins ls`.
# (Node Ready and containerRuntimeVersion are checked through the Kubernetes API by the operator.)
# Usage: verify SECONDS
CRI=unix:///run/containerd/containerd.sock

crictl_() { timeout 15 crictl --runtime-endpoint "$CRI" --image-endpoint "$CRI" --timeout 10s "$@"; }

# "RuntimeReady=true NetworkReady=false ..." from crictl info's status conditions (its warnings,
# such as a missing /etc/crictl.yaml, go to stderr)
crictl_conditions() {
    crictl_ info -o go-template --template '{{range .status.conditions}}{{.type}}={{.status}} {{end}}'
}

# each of those two conditions that is false, as the kubelet words it: "NetworkReady=false
# reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
crictl_false() {
    crictl_ info -o go-template --template '{{range .status.conditions}}{{if and (not .status) (or (eq .type "RuntimeReady") (eq .type "NetworkReady"))}}{{.type}}=false reason:{{.reason}} message:{{.message}}
{{end}}{{end}}'
}

crictl_ready() {
    _c=" $(crictl_conditions 2>/dev/null) "
    case $_c in *" RuntimeReady=true "*) ;; *) return 1 ;; esac
    case $_c in *" NetworkReady=true "*) ;; *) return 1 ;; esac
}

if command -v crictl >/dev/null 2>&1; then
    if ! wait_for "$1" crictl_ready; then
        # the false conditions' reasons (or, when crictl info fails, what it says), lines cut to 300
        _why=$(crictl_false 2>/dev/null | grep -v '^ *$' | cut -c 1-300 | tail -n 3)
        echo "crictl info: the CRI runtime is not ready: ${_why:-$(crictl_conditions 2>&1 | tail -n 3)}" >&2
        exit 1
    fi
    if ! images=$(crictl_ images -q 2>/dev/null); then
        echo "crictl images failed: $(crictl_ images -q 2>&1 | tail -n 3)" >&2
        exit 3
    fi
    checked="crictl: RuntimeReady NetworkReady, $(printf '%s\n' "$images" | grep -c .) images"
else
    wait_for "$1" cri_ok || { echo "containerd's CRI plugin is not ok" >&2; exit 1; }
    checked="ctr: CRI plugin ok"
fi
wait_for "$1" is_active kubelet || { echo "the kubelet is not running" >&2; exit 2; }
echo "ok ($checked)"
