"""The testbed's TLS registry: reached by name from nodes, through each profile's Docker config."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest
from testbed.nodes import Cluster, Node
from testbed.nodes.docker_api import DockerClient, DockerError
from testbed.nodes.fixtures import node_with_profile
from testbed.nodes.profiles import ProfileName

SCRATCH_PROFILES = [ProfileName.KUBEADM_SYSTEMD, ProfileName.KUBEADM_CGROUPFS, ProfileName.KUBESPRAY]
pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]


def test_registry_serves_tls_signed_by_the_throwaway_ca(testbed_cluster: Cluster) -> None:
    registry = testbed_cluster.registry
    assert registry is not None and registry.is_up()
    result = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--cert-dir",
            str(registry.cert_dir),
            f"docker://{registry.address}/team/app:2.0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    untrusted = subprocess.run(
        ["skopeo", "inspect", f"docker://{registry.address}/team/app:2.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert untrusted.returncode != 0
    assert "x509" in untrusted.stderr or "certificate" in untrusted.stderr
    with (
        socket.create_connection(("127.0.0.1", registry.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname=registry.host)


@pytest.mark.parametrize(
    "profile", [ProfileName.KUBEADM_SYSTEMD, ProfileName.KUBEADM_CGROUPFS, ProfileName.CRI_DOCKERD]
)
def test_an_image_pushed_from_a_node_has_a_repo_digest(
    testbed_cluster: Cluster, profile: ProfileName
) -> None:
    node = node_with_profile(testbed_cluster, profile)
    image = DockerClient(node.docker_socket).inspect_image("registry.shimshift.test/team/app:1.0")
    assert image is not None
    assert image["RepoDigests"][0].startswith("registry.shimshift.test/team/app@sha256:")


def test_the_mirror_profile_pulls_docker_hub_images_through_the_mirror_with_its_ca(
    scratch_cluster: Cluster,
) -> None:
    node = node_with_profile(scratch_cluster, ProfileName.KUBEADM_SYSTEMD)
    registry = scratch_cluster.registry
    assert registry is not None, "the scratch cluster runs the testbed registry"
    assert node.read(f"/etc/docker/certs.d/{registry.host}/ca.crt").startswith("-----BEGIN CERTIFICATE-----")
    DockerClient(node.docker_socket).pull("busybox:1.36")
    assert DockerClient(node.docker_socket).inspect_image("busybox:1.36") is not None


def test_the_insecure_profile_pulls_from_the_registry_without_a_ca(scratch_cluster: Cluster) -> None:
    node = node_with_profile(scratch_cluster, ProfileName.KUBEADM_CGROUPFS)
    assert not node.view("/etc/docker/certs.d").exists()
    docker = DockerClient(node.docker_socket)
    assert docker.info()["RegistryConfig"]["IndexConfigs"]["registry.shimshift.test"]["Secure"] is False
    docker.pull("registry.shimshift.test/team/app:2.0")
    assert docker.inspect_image("registry.shimshift.test/team/app:2.0") is not None


def test_the_air_gapped_profile_cannot_reach_any_registry(scratch_cluster: Cluster) -> None:
    node: Node = node_with_profile(scratch_cluster, ProfileName.KUBESPRAY)
    with pytest.raises(DockerError):
        DockerClient(node.docker_socket, timeout=30).pull("registry.shimshift.test/team/app:2.0")
    links = node.exec(["ip", "-o", "link"]).stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0], "a node has only its loopback link"
