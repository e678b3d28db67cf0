"""The sandbox (pause) image: the spec's, else the one the node's kubelet already uses
(`--pod-infra-container-image`, present in Docker's store and migrated), else the one kubeadm pairs
with the node's kubelet version.

kubeadm's pairing (cmd/kubeadm/app/constants: PauseVersion) by kubelet minor version. On an air-gapped
node the default name points at registry.k8s.io, which cannot be reached; when the configured
registries give that registry (or `_default`) a mirror, the name is rewritten to the first mirror so
the pinned image exists under a name the node can pull.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shimshift.model.facts import NodeFacts
from shimshift.rendering.docker import RegistryIntent

K8S_REGISTRY = "registry.k8s.io"

#: kubelet minor -> pause version kubeadm uses (kubernetes/cmd/kubeadm/app/constants/constants.go).
PAUSE_BY_MINOR: dict[int, str] = {
    18: "3.2",
    19: "3.2",
    20: "3.2",
    21: "3.4.1",
    22: "3.5",
    23: "3.6",
    24: "3.7",
    25: "3.8",
    26: "3.9",
    27: "3.9",
    28: "3.9",
    29: "3.9",
    30: "3.9",
    31: "3.10",
    32: "3.10",
    33: "3.10",
    34: "3.10.1",
    35: "3.10.1",
}
_OLDEST, _NEWEST = min(PAUSE_BY_MINOR), max(PAUSE_BY_MINOR)


@dataclass(frozen=True)
class SandboxChoice:
    image: str
    reason: str


def image_registry(ref: str) -> tuple[str, str]:
    """(registry host, remainder) of an image reference, with Docker's defaulting rules."""
    head, sep, rest = ref.partition("/")
    if sep and ("." in head or ":" in head or head == "localhost"):
        return head, rest
    return "docker.io", ref if sep else f"library/{ref}"


def choose_sandbox_image(
    spec_image: str | None, facts: NodeFacts, intents: Sequence[RegistryIntent]
) -> SandboxChoice:
    if spec_image:
        return SandboxChoice(spec_image, "spec.containerd.sandboxImage")
    infra = facts.kubelet.pod_infra_image
    if infra is not None and infra.value:
        # The image the node's pods run with today: it is in Docker's store and is migrated with the
        # other images, so it needs no pull (an air-gapped node cannot pull registry.k8s.io).
        return SandboxChoice(
            infra.value,
            f"the kubelet's {infra.key} ({infra.file}): already on the node, migrated with its images",
        )
    minor = facts.kubelet_minor
    if minor is None:
        version, why = PAUSE_BY_MINOR[_NEWEST], "kubelet version unknown; newest pairing"
    else:
        clamped = min(max(minor, _OLDEST), _NEWEST)
        version = PAUSE_BY_MINOR[clamped]
        why = f"kubeadm pairs pause:{version} with kubelet {facts.kubelet.version}"
    image = f"{K8S_REGISTRY}/pause:{version}"
    mirror = _first_mirror(K8S_REGISTRY, intents)
    if mirror is not None:
        parts = urlsplit(mirror)
        prefix = parts.netloc + parts.path.rstrip("/")
        rewritten = f"{prefix}/pause:{version}"
        return SandboxChoice(rewritten, f"{why}; rewritten from {image} through the mirror {mirror}")
    return SandboxChoice(image, why)


def _first_mirror(registry: str, intents: Sequence[RegistryIntent]) -> str | None:
    by_host = {i.host: i for i in intents}
    for host in (registry, "_default"):
        intent = by_host.get(host)
        if intent is not None and intent.mirrors:
            return intent.mirrors[0]
    return None
