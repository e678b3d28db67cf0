"""The renderer on the testbed's fake nodes: each node's own files (daemon.json, /etc/docker/certs.d,
the docker-ce config.toml, the kubelet's config) are read, the rendered files installed, containerd
restarted through the node's systemctl, and then CRI must be `ok` and pull from the testbed's TLS
registry through what was translated from Docker's configuration."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.nodes import Cluster, Node
from testbed.nodes.fixtures import ALL_PROFILES, node_with_profile
from testbed.nodes.profiles import RegistryUse
from testbed.nodes.seeding import seed_registry

from shimshift.model import parse_nodemigration
from shimshift.model.facts import DockerCertFiles, KubeletFacts, NodeFacts, Setting
from shimshift.rendering import render_node_config
from shimshift.resources import load_crd

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cluster(testbed_root: Path) -> Iterator[Cluster]:
    with Cluster.up(f"pytest-{os.getpid()}-render", ALL_PROFILES, root=testbed_root, images=False) as c:
        seed_registry(c)
        yield c


def run(node: Node, *argv: str) -> str:
    result = node.exec(list(argv), timeout=60)
    assert result.exit_status == 0, f"{argv}: {result.stderr}"
    return result.stdout


def read_facts(node: Node) -> NodeFacts:
    """A read-only look at the node's own files, standing in for the facts step."""
    certs = []
    certs_dir = node.view("/etc/docker/certs.d")
    for host_dir in sorted(certs_dir.iterdir()) if certs_dir.is_dir() else ():
        base = f"/etc/docker/certs.d/{host_dir.name}"
        certs.append(
            DockerCertFiles(
                host_dir.name, ca_certs={f"{base}/{f.name}": f.read_text() for f in host_dir.glob("*.crt")}
            )
        )
    kubelet_config = (
        "/etc/kubernetes/kubelet-config.yaml"
        if node.profile.layout == "kubespray"
        else "/var/lib/kubelet/config.yaml"
    )
    driver = yaml.safe_load(node.read(kubelet_config))["cgroupDriver"]
    return NodeFacts(
        node=node.name,
        containerd_version=run(node, "containerd", "--version").split()[2],
        containerd_config=node.read("/etc/containerd/config.toml"),
        daemon_json=json.loads(node.read("/etc/docker/daemon.json")),
        docker_certs=tuple(certs),
        kubelet=KubeletFacts(
            version=f"v{node.profile.kubelet_version}",
            cgroup_driver=Setting(driver, kubelet_config, "cgroupDriver"),
        ),
    )


def cri_pull(node: Node, image: str) -> str:
    with node.cri_channel() as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        return str(
            stub.PullImage(
                api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=60
            ).image_ref
        )


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_rendered_files_turn_a_docker_ce_node_into_one_whose_cri_serves_and_pulls(
    cluster: Cluster, profile: str
) -> None:
    node = node_with_profile(cluster, profile)
    with node.cri_channel() as channel, pytest.raises(grpc.RpcError) as before:
        api_pb2_grpc.RuntimeServiceStub(channel).Version(api_pb2.VersionRequest(), timeout=10)
    assert (
        before.value.code() is grpc.StatusCode.UNIMPLEMENTED
    )  # docker-ce's disabled CRI, as kubelet sees it

    spec = parse_nodemigration(yaml.safe_load((REPO / "examples/plan.yaml").read_text()), load_crd()).spec
    rendered = render_node_config(spec, read_facts(node))
    # the schema the node's own containerd reads: Debian's 1.6 -> 2, a built 2.2 -> 3, 2.3 -> 4
    schema = {None: 2, "2.2.9": 3, "2.3.7": 4}[node.profile.containerd]
    assert rendered.report.config_version == schema
    for f in rendered.files:
        target = node.view(f.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.content)
        target.chmod(f.mode)
    run(node, "containerd", "--config", "/etc/containerd/config.toml", "config", "dump")
    log_start = len(node.read("/var/log/containerd.log"))
    run(node, "systemctl", "restart", "containerd")
    cri = [
        line.split()
        for line in run(node, "ctr", "plugins", "ls").splitlines()
        if line.split()[1:2] == ["cri"]
    ]
    assert cri and cri[0][-1] == "ok"
    if node.profile.containerd:  # a built containerd 2.x: its version is the node's, its log is clean
        assert run(node, "containerd", "--version").split()[2] == f"v{node.profile.containerd}"
        log = node.read("/var/log/containerd.log")[log_start:]  # this start's lines only
        assert "loading plugin" in log
        assert "Configuration migrated" not in log and "Ignoring unknown key" not in log

    if node.profile.registry is RegistryUse.AIR_GAPPED:
        return
    # /etc/docker/certs.d/<registry>/ca.crt (or insecure-registries) carried over: a direct pull works,
    assert cri_pull(node, "registry.shimshift.test/team/app:2.0").startswith("sha256:")
    if node.profile.registry is RegistryUse.MIRROR_WITH_CA:
        # and Docker Hub names go through the translated registry-mirrors entry with the same CA.
        assert cri_pull(node, "docker.io/library/busybox:1.36").startswith("sha256:")
