"""How the fake kubelet reads its flags and config file, the way kubelet does (pure, no I/O).

kubelet gets its flags from systemd's ExecStart (kubeadm: ``$KUBELET_KUBEADM_ARGS`` from
kubeadm-flags.env; Kubespray: ``$KUBELET_ARGS`` from kubelet.env), then reads the
KubeletConfiguration named by ``--config``. Flags removed in a version make that version's
kubelet refuse to start, with kubelet's own message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DOCKERSHIM_DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
# kubelet >= 1.24 defaults to containerd's socket when no endpoint is configured
REMOTE_DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"

# dockershim-only flags that kubelet 1.24 removed, and the runtime flag that 1.27 removed
REMOVED_IN_1_24 = (
    "--network-plugin",
    "--cni-conf-dir",
    "--cni-bin-dir",
    "--docker-endpoint",
    "--image-pull-progress-deadline",
    "--network-plugin-mtu",
    "--non-masquerade-cidr",
)
REMOVED_IN_1_27 = ("--container-runtime",)


class KubeletFlagError(Exception):
    """kubelet would exit at start-up; the message is kubelet's."""


def minor(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


def parse_flags(argv: list[str], version: str) -> dict[str, str]:
    """``--flag=value`` / ``--flag value`` / ``--bool-flag`` -> dict, with kubelet's version checks."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            i += 1
            continue
        name, sep, value = arg.partition("=")
        if not sep:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        removed: tuple[str, ...] = REMOVED_IN_1_24 if minor(version) >= 24 else ()
        removed += REMOVED_IN_1_27 if minor(version) >= 27 else ()
        if name in removed:
            raise KubeletFlagError(f"Error: failed to parse kubelet flag: unknown flag: {name}")
        flags[name] = value
        i += 1
    return flags


@dataclass(frozen=True)
class RuntimeChoice:
    """What the kubelet talks to: ``kind`` is "docker" (dockershim, or cri-dockerd's socket) or "cri"."""

    kind: str
    endpoint: str
    via: str  # "dockershim", "cri-dockerd" or "cri"

    @property
    def socket_path(self) -> str:
        return self.endpoint.removeprefix("unix://")


def choose_runtime(flags: dict[str, str], config: dict[str, Any], version: str) -> RuntimeChoice:
    endpoint = flags.get("--container-runtime-endpoint") or config.get("containerRuntimeEndpoint") or ""
    runtime = flags.get("--container-runtime", "docker" if minor(version) < 24 else "remote")
    if minor(version) < 24 and runtime == "docker":
        endpoint = flags.get("--docker-endpoint", DOCKERSHIM_DEFAULT_ENDPOINT)
        return RuntimeChoice("docker", endpoint, "dockershim")
    if runtime not in ("remote", "docker"):
        raise KubeletFlagError(f'failed to run Kubelet: unsupported container runtime "{runtime}"')
    if minor(version) >= 24 and runtime == "docker":
        raise KubeletFlagError(
            'failed to run Kubelet: unsupported container runtime "docker" '
            "(dockershim was removed in 1.24; use cri-dockerd or containerd)"
        )
    endpoint = endpoint or REMOTE_DEFAULT_ENDPOINT
    if not endpoint.startswith("unix://"):
        endpoint = "unix://" + endpoint
    if endpoint.endswith("/cri-dockerd.sock"):
        return RuntimeChoice("docker", endpoint, "cri-dockerd")
    return RuntimeChoice("cri", endpoint, "cri")


def sandbox_image_from_flags(flags: dict[str, str], version: str) -> str:
    default = "k8s.gcr.io/pause:3.6" if minor(version) < 25 else "registry.k8s.io/pause:3.9"
    return flags.get("--pod-infra-container-image", default)
