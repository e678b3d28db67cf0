"""The questions people ask before a Docker-to-containerd move, answered once, in every report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


FAQ: tuple[FaqEntry, ...] = (
    FaqEntry(
        "Is Docker being removed from Kubernetes?",
        "No: dockershim, the kubelet's built-in adapter for Docker Engine, was removed in Kubernetes 1.24. "
        "Images built with Docker are ordinary OCI images and run unchanged on containerd. With "
        "spec.docker: Keep, Docker Engine even stays installed on the node; the kubelet just stops using it.",
    ),
    FaqEntry(
        "I use `docker ps` / `docker logs` / `docker exec` on nodes. What now?",
        "Use crictl, which talks to any CRI runtime and knows pods: `crictl ps`, `crictl pods`, "
        "`crictl logs <id>`, `crictl exec -it <id> sh`, `crictl images` (configure it once with "
        "`runtime-endpoint: unix:///run/containerd/containerd.sock` in /etc/crictl.yaml). nerdctl gives "
        "Docker's command line on containerd: `nerdctl --namespace k8s.io ps`. `ctr -n k8s.io ...` is the "
        "low-level containerd client. Best of all, `kubectl logs` and `kubectl exec` work as before.",
    ),
    FaqEntry(
        "How do we build images without Docker on the nodes?",
        "Build off the node or inside a pod without the host's socket: BuildKit (buildkitd, rootless "
        "mode, or `docker buildx` on a workstation), kaniko (builds from a Dockerfile in an unprivileged "
        "pod) or buildah. CI jobs that mounted /var/run/docker.sock must move to one of these; the report "
        "lists the workloads that mount it.",
    ),
    FaqEntry(
        "Can we use podman instead?",
        "Not as the kubelet's runtime: podman is not a CRI implementation (CRI-O is the Red Hat CRI "
        "runtime). podman remains a fine tool for building and running images by hand.",
    ),
    FaqEntry(
        "What is the difference between dockershim, cri-dockerd and containerd?",
        "dockershim was the kubelet's in-tree adapter to Docker Engine; cri-dockerd is the same adapter "
        "maintained outside Kubernetes, which keeps Docker as the runtime (and its extra hop). containerd "
        "is the runtime Docker itself runs on, with a built-in CRI plugin: shimshift switches the kubelet "
        "to it directly and enables that plugin.",
    ),
    FaqEntry(
        "Do our images, logs and metrics change?",
        "Images are migrated into containerd's k8s.io namespace (same image IDs). Container logs move "
        "from Docker's JSON files under /var/lib/docker/containers to CRI-format files under /var/log/pods, "
        "so log shippers need the CRI parser. Container metrics lose Docker's container_label_* labels; "
        "use the kubelet's namespace/pod/container labels.",
    ),
)
