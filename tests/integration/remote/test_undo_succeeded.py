"""A Succeeded node on the testbed's real daemons (sshd, containerd 1.6, dockerd 20.10, a kubelet 1.23
with dockershim reporting to the API emulator), rolled back on request and committed over SSH:

- undo, as the engine runs it after the node finished and the operator restarted: a fresh
  `SshNodePort` with no memory and no facts probes the node as it is now (on containerd), and its undo
  puts every file back byte for byte and the kubelet back on dockershim, Ready on Docker;
- commit (`spec.docker: Stop`): Docker and cri-dockerd stopped and disabled, the stale docker.sock
  gone, the backups removed, and nothing changes when it runs again; the Docker part's undo enables
  Docker again (what a rollback of a node an earlier version stopped Docker on runs).
"""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ImageCounts
from shimshift.remote import SshNodePort
from shimshift.steps.base import ImagesProgress
from tests.integration.remote.test_migrate import (
    DOCKER_SOCKET,
    active,
    connect,
    snapshot,
    touched_paths,
    wait_until,
)

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster, Node
    from testbed.nodes.fixtures import ApiEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

SCRATCH_PROFILES = ["kubeadm-systemd"]
MIGRATION = "undo1"  # the second test's own state directory: "commit1"


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    scratch_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    yield scratch_cluster


def wait_runtime(kube_core: CoreV1Api, name: str, prefix: str) -> None:
    """Until the node is Ready on `prefix` (a Node the fake kubelet has not reported yet is not)."""

    def ready() -> bool:
        status = kube_core.read_node(name).status
        if status is None or status.node_info is None:
            return False
        ok = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
        return ok and str(status.node_info.container_runtime_version).startswith(prefix)

    wait_until(ready, 60, f"node {name} Ready on {prefix}")


class NoImagesPort(SshNodePort):
    """The images step moves no image here (tests/integration/images' subject)."""

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        return ImageCounts()


def _port(cluster: Cluster, node: Node, migration: str = MIGRATION, **spec: Any) -> NoImagesPort:
    body = {"mode": "Migrate", "nodeNames": [node.name], **spec}
    return NoImagesPort(
        migration,
        NodeMigrationSpec.from_raw(body),
        lambda _n: connect(cluster, node),
        wait_seconds=30,
        stop_grace_seconds=1,
        kubelet_version=lambda _n: "v" + node.profile.kubelet_version,
    )


def _migrate(port: NoImagesPort, node: Node) -> NodeFacts:
    """Every node step of a migration, as the engine calls them, up to its finish."""
    facts = port.facts(node.name)
    port.prepare(node.name, facts)
    port.backup(node.name, facts)
    for step in (port.configure, port.images, port.switch, port.verify, port.finish):
        step(node.name, facts)
    return facts


def test_a_succeeded_node_is_undone_by_a_fresh_port_from_its_backups_back_to_dockershim(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = cluster.nodes[0]
    wait_runtime(kube_core, node.name, "docker://")
    port = _port(cluster, node)
    try:
        plan = port.plan(node.name, port.facts(node.name))
        before = snapshot(node, touched_paths(plan))
        _migrate(port, node)
    finally:
        port.close()
    wait_runtime(kube_core, node.name, "containerd://")
    assert not active(node, "docker")

    restarted = _port(cluster, node)  # the operator after a restart: no plan, no facts
    try:
        restarted.undo(node.name, None)
        calls = len(node.systemctl_calls())
        restarted.undo(node.name, None)  # idempotent: the second undo starts or stops nothing
        again = [c["argv"] for c in node.systemctl_calls()[calls:] if c["argv"][0] in ("start", "stop")]
        assert again == []
        facts = restarted.facts(node.name)
    finally:
        restarted.close()
    assert snapshot(node, touched_paths(plan)) == before
    assert active(node, "docker") and active(node, "kubelet")
    assert facts.dockershim_node and not facts.on_containerd
    wait_runtime(kube_core, node.name, "docker://")


def _stale_docker_socket(node: Node) -> None:
    """A socket nobody listens on at /var/run/docker.sock, as a stopped dockerd or docker.socket leaves."""
    path = node.view(DOCKER_SOCKET)
    if not path.exists():
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
    assert stat.S_ISSOCK(path.stat().st_mode)


def test_commit_stops_docker_and_removes_the_backups_once(cluster: Cluster, kube_core: CoreV1Api) -> None:
    node = cluster.nodes[0]
    wait_runtime(kube_core, node.name, "docker://")
    port = _port(cluster, node, "commit1", docker="Stop")
    backups = Path("/var/lib/shimshift/commit1/backup")
    try:
        facts = _migrate(port, node)
        wait_runtime(kube_core, node.name, "containerd://")
        assert node.view(str(backups / "kubelet" / "complete")).exists(), "the finish removed the backups"
        assert ["disable", "docker"] not in [c["argv"] for c in node.systemctl_calls()]
        _stale_docker_socket(node)

        calls = len(node.systemctl_calls())
        port.commit(node.name, facts)
        disabled = [c["argv"] for c in node.systemctl_calls()[calls:] if c["argv"][0] == "disable"]
        assert ["disable", "docker"] in disabled and ["disable", "cri-docker"] in disabled
        assert not node.view(DOCKER_SOCKET).exists(), "the stale docker.sock is still there"
        assert not node.view(str(backups)).exists()
        assert node.view("/var/lib/shimshift/commit1/committed").exists()

        steps, plan = port.steps(node.name), port.plan(node.name, facts)
        assert not steps.run(StepId.COMMIT, plan).changed  # again: nothing
        assert steps.undo(StepId.COMMIT, plan).changed  # Docker enabled again
        enabled = [c["argv"] for c in node.systemctl_calls() if c["argv"][0] == "enable"]
        assert ["enable", "docker"] in enabled
    finally:
        port.close()
    wait_runtime(kube_core, node.name, "containerd://")  # the kubelet stays on containerd throughout
