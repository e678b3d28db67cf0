"""Testbed nodes: real sshd, containerd and dockerd per node, isolated from each other."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import paramiko
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.nodes import Cluster, Node
from testbed.nodes.docker_api import DockerClient
from testbed.nodes.node import ssh_run

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]


def test_ssh_works_with_host_key_verification(
    testbed_cluster: Cluster,
    testbed_node: Node,
    ssh_client_for: Callable[[Cluster, Node], paramiko.SSHClient],
) -> None:
    client = ssh_client_for(testbed_cluster, testbed_node)
    result = ssh_run(client, ["hostname"])
    assert result.exit_status == 0
    assert result.stdout.strip() == testbed_node.name


def test_ssh_rejects_a_node_whose_host_key_is_not_the_known_one(
    testbed_cluster: Cluster, tmp_path: Path
) -> None:
    first, second = testbed_cluster.nodes[0], testbed_cluster.nodes[1]
    second_key = next(
        line
        for line in testbed_cluster.known_hosts.read_text().splitlines()
        if line.startswith(f"[{second.ssh_host}]")
    ).split(" ", 1)[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{first.ssh_host}]:{first.ssh_port} {second_key}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        first.ssh_client(testbed_cluster.private_key, wrong)
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        first.ssh_client(testbed_cluster.private_key, empty)


def test_each_node_sees_only_its_own_files(testbed_cluster: Cluster, testbed_node: Node) -> None:
    marker = testbed_node.exec(["cat", "/etc/testbed-node"])
    assert marker.stdout.split()[0] == testbed_node.name
    assert testbed_node.exec(["hostname"]).stdout.strip() == testbed_node.name
    # the cluster dir (other nodes' files, the client key) is hidden behind the node's own /tmp
    assert testbed_node.exec(["ls", str(testbed_cluster.dir)]).exit_status != 0
    # a write to a private path stays in the node
    probe = f"/etc/containerd/written-by-{testbed_node.name}"
    assert testbed_node.exec(["touch", probe]).exit_status == 0
    try:
        for other in testbed_cluster.nodes:
            seen = other.exec(["test", "-e", probe]).exit_status == 0
            assert seen == (other is testbed_node), other.name
        assert not (testbed_node.dir.path.parent.parent / probe.lstrip("/")).exists()
    finally:
        testbed_node.exec(["rm", "-f", probe])
    from pathlib import Path

    assert not Path(probe).exists(), "a node write leaked to the host"


def test_each_node_sees_only_its_own_processes(testbed_cluster: Cluster, testbed_node: Node) -> None:
    ps = testbed_node.exec(["ps", "-eo", "pid,comm"]).stdout.split("\n")[1:]
    table = {line.split()[1]: int(line.split()[0]) for line in ps if line.strip()}
    assert table["tini"] == 1
    assert {"sshd", "containerd", "dockerd"} <= table.keys()
    node_pids = [int(line.split()[0]) for line in ps if line.strip()]
    assert len(node_pids) < 40, "the node sees more than its own process tree"


def test_containerd_cri_answers_unimplemented_before_migration(testbed_node: Node) -> None:
    with testbed_node.cri_channel() as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Version(api_pb2.VersionRequest(version="v1"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "unknown service runtime.v1.RuntimeService" in caught.value.details()


def test_containerd_is_configured_as_docker_ce_ships_it(testbed_node: Node) -> None:
    config = testbed_node.read("/etc/containerd/config.toml")
    assert 'disabled_plugins = ["cri"]' in config
    assert not any(line.startswith("version") for line in config.splitlines())
    plugins = testbed_node.exec(["ctr", "plugins", "ls"]).stdout
    assert " cri " not in plugins


def inspected(docker: DockerClient, ref: str) -> dict[str, Any]:
    image = docker.inspect_image(ref)
    assert image is not None, f"{ref} is not in the node's Docker"
    return image


def test_docker_holds_images_made_without_any_registry(testbed_node: Node) -> None:
    docker = DockerClient(testbed_node.docker_socket)
    images = docker.images()
    tags = {t for image in images for t in image.get("RepoTags") or []}
    assert testbed_node.profile.sandbox_image in tags
    assert {"registry.shimshift.test/team/app:1.0", "registry.shimshift.test/team/app:1.1"} <= tags
    assert any(
        not (image.get("RepoTags") or []) or image["RepoTags"] == ["<none>:<none>"] for image in images
    )
    layers = {
        tag: set(inspected(docker, tag)["RootFS"]["Layers"])
        for tag in ("registry.shimshift.test/team/app:1.0", "registry.shimshift.test/team/app:1.1")
    }
    assert layers["registry.shimshift.test/team/app:1.0"] < layers["registry.shimshift.test/team/app:1.1"]


def test_docker_images_have_the_same_id_on_every_node(testbed_cluster: Cluster) -> None:
    ids = {
        inspected(DockerClient(n.docker_socket), "registry.shimshift.test/team/app:1.0")["Id"]
        for n in testbed_cluster.nodes
    }
    assert len(ids) == 1


def test_docker_containers_are_named_as_kubelet_names_them(testbed_node: Node) -> None:
    names = {c["Names"][0].lstrip("/"): c for c in DockerClient(testbed_node.docker_socket).containers()}
    sandbox = [n for n in names if n.startswith("k8s_POD_kube-proxy-")]
    app = [n for n in names if n.startswith("k8s_kube-proxy_kube-proxy-")]
    assert len(sandbox) == 1 and len(app) == 1
    parts = app[0].split("_")
    assert parts[0] == "k8s" and parts[3] == "kube-system" and parts[-1] == "0"
    assert names[app[0]]["Labels"]["io.kubernetes.pod.namespace"] == "kube-system"
    expected = "running" if testbed_node.profile.cgroup_driver == "cgroupfs" else "created"
    assert names[app[0]]["State"] == expected


def test_docker_uses_the_cgroup_driver_of_the_profile(testbed_node: Node) -> None:
    info = DockerClient(testbed_node.docker_socket).info()
    assert info["CgroupDriver"] == testbed_node.profile.cgroup_driver


def test_the_node_runs_the_containerd_and_crictl_of_its_profile_and_the_host_keeps_its_own(
    testbed_node: Node,
) -> None:
    profile = testbed_node.profile
    reported = testbed_node.exec(["containerd", "--version"]).stdout.split()[2]
    assert reported == profile.containerd_version
    server = testbed_node.exec(["ctr", "version"]).stdout  # the running daemon, not only the binary
    assert f"Version:  {profile.containerd_version}" in server.split("Server:")[1]
    shim = testbed_node.exec(["containerd-shim-runc-v2", "-v"]).stdout
    assert (profile.containerd_version if profile.containerd else "1.6.20") in shim
    crictl = testbed_node.exec(["sh", "-c", "command -v crictl && crictl --version"])
    if profile.crictl:
        assert crictl.stdout.split() == ["/usr/local/bin/crictl", "crictl", "version", f"v{profile.crictl}"]
    else:
        assert crictl.exit_status != 0 and crictl.stdout == ""
    # the bind mounts live in the node's mount namespace only
    assert (
        "1.6.20"
        in subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=True).stdout
    )
    assert not Path("/usr/local/bin/crictl").exists()
