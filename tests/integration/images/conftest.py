"""Testbed nodes for the image step: CRI switched on (as the configure step leaves containerd), a
hosts.toml for the testbed registry, facts read from the node's Docker, and a Runner over the node."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.nodes import Cluster, Node
from testbed.nodes.docker_api import DockerClient
from testbed.nodes.layout import REGISTRY_HOST

from shimshift.model.facts import DockerImage, NodeFacts

CRI_CONFIG = """\
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"""


@dataclass(frozen=True)
class Output:
    exit_status: int
    stdout: bytes
    stderr: bytes


class NodeRunner:
    """The Runner port over a testbed node: the same argv the SSH runner sends, run inside the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None) -> Output:
        self.calls.append(list(argv))
        text = None if stdin is None else stdin.decode()
        result = self.node.exec(list(argv), timeout=timeout or 60, input=text)
        return Output(result.exit_status, result.stdout.encode(), result.stderr.encode())


def enable_cri(node: Node) -> None:
    """What the configure step leaves behind, minimally: CRI on, registry hosts from certs.d."""
    result = node.exec(["sh", "-c", "cat > /etc/containerd/config.toml"], input=CRI_CONFIG)
    assert result.exit_status == 0, result.stderr
    result = node.exec(["systemctl", "restart", "containerd"], timeout=60)
    assert result.exit_status == 0, result.stderr
    result = node.exec(["ctr", "plugins", "ls"])
    assert any(
        line.split()[1:2] == ["cri"] and line.split()[-1] == "ok" for line in result.stdout.splitlines()
    )


def write_hosts_toml(node: Node, ca_pem: str) -> None:
    """certs.d/<registry>/hosts.toml with the registry's CA, as the rendered registry config does."""
    d = f"/etc/containerd/certs.d/{REGISTRY_HOST}"
    hosts = (
        f'server = "https://{REGISTRY_HOST}"\n[host."https://{REGISTRY_HOST}"]\n'
        f'  capabilities = ["pull", "resolve"]\n  ca = "{d}/ca.crt"\n'
    )
    for path, text in ((f"{d}/ca.crt", ca_pem), (f"{d}/hosts.toml", hosts)):
        result = node.exec(["sh", "-c", 'mkdir -p "${1%/*}" && cat > "$1"', "sh", path], input=text)
        assert result.exit_status == 0, result.stderr


def docker_facts(node: Node, free: int | None = 1 << 40) -> NodeFacts:
    """NodeFacts with the image inventory as the facts probe reads it (Docker's own API)."""
    docker = DockerClient(node.docker_socket)
    used = {c["ImageID"] for c in docker.containers() if any(n.startswith("/k8s_") for n in c["Names"])}
    images = []
    for raw in docker.images(all_images=False):
        tags = tuple(t for t in raw.get("RepoTags") or () if t != "<none>:<none>")
        digests = tuple(d for d in raw.get("RepoDigests") or () if not d.startswith("<none>@"))
        images.append(DockerImage(raw["Id"], tags, digests, raw["Size"], raw["Id"] in used))
    return NodeFacts(node=node.name, images=tuple(images), containerd_root_free_bytes=free)


def cri_images(node: Node) -> dict[str, Any]:
    """CRI ListImages on the node's containerd socket, as kubelet sees it: image ID -> Image."""
    with node.cri_channel() as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        return {i.id: i for i in stub.ListImages(api_pb2.ListImagesRequest(), timeout=10).images}


def cri_image_status(node: Node, ref: str) -> Any:
    """CRI ImageStatus: what kubelet asks before it starts a container of image `ref`."""
    with node.cri_channel() as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        try:
            response = stub.ImageStatus(
                api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10
            )
        except grpc.RpcError as e:  # pragma: no cover - shown in the assertion
            raise AssertionError(f"ImageStatus({ref}) failed: {e}") from e
        return response.image if response.HasField("image") else None


@pytest.fixture(scope="module")
def images_cluster(testbed_root: Path) -> Iterator[Cluster]:
    """Two fresh nodes: one with the TLS registry (mirror + CA) and one air-gapped, CRI switched on."""
    with Cluster.up(f"pytest-{os.getpid()}-images", ["kubeadm-systemd", "kubespray"], root=testbed_root) as c:
        assert c.registry is not None
        for node in c.nodes:
            enable_cri(node)
        write_hosts_toml(c.nodes[0], c.registry.ca_cert.read_text())
        yield c
