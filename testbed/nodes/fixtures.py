"""Pytest fixtures for testbed nodes (registered by ``tests/conftest.py`` as a plugin).

- ``testbed_cluster`` (session): one node per profile, read-mostly; tests must leave nodes as
  they found them. ``testbed_node`` is parametrised over the profiles and yields that node.
- ``scratch_cluster`` (module): a fresh cluster for tests that change nodes (migrations,
  broken configs); it is thrown away after the module.
- ``ssh_client_for(cluster, node)``: a paramiko client with host-key verification.
- ``nodes_kubeapi`` (session): an API emulator for the fake kubelets (``.url``, ``.kubeconfig``),
  without the emulator's own pod lifecycle controller: the fake kubelets own their pods' status.
- ``kubelet_cluster`` (session): ``testbed_cluster`` with its fake kubelets registered in
  ``nodes_kubeapi``; ``kube_core`` is a ``CoreV1Api`` client for it.

Nodes need root, Linux namespaces and the Debian packages installed by ``scripts/setup``; without
them these fixtures skip, naming what is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import pytest

from testbed import waiting
from testbed.nodes.cluster import Cluster, cleanup_stale
from testbed.nodes.layout import DEFAULT_ROOT
from testbed.nodes.node import Node
from testbed.nodes.profiles import PROFILE_NAMES, ProfileName
from testbed.nodes.realkubelet import host_lock

if TYPE_CHECKING:
    import paramiko
    from kubernetes.client import CoreV1Api

T = TypeVar("T")

REQUIRED_BINARIES = (
    "containerd",
    "dockerd",
    "runc",
    "tini",
    "sshd",
    "socat",
    "unshare",
    "nsenter",
    "ssh-keygen",
    "ctr",
)
ALL_PROFILES = PROFILE_NAMES


def missing_prerequisites() -> list[str]:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b, path=path) is None]
    if os.geteuid() != 0:
        missing.insert(0, "root")
    return missing


def _require_prerequisites() -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"testbed nodes need {', '.join(missing)} (run scripts/setup as root)")


@pytest.fixture(scope="session")
def testbed_root() -> Path:
    """The root of testbed clusters; stale clusters of killed runs are cleaned here first."""
    _require_prerequisites()
    DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
    cleanup_stale(DEFAULT_ROOT)
    return DEFAULT_ROOT


#: how long a module waits for another run's real kubelets to finish
REAL_KUBELET_LOCK_WAIT = 120.0


@pytest.fixture(scope="module")
def real_kubelet_host() -> Iterator[None]:
    """Held by the test module running real kubelets: a slot of the host lock (``realkubelet.host_lock``:
    two such stacks at a time on this machine, across pytest runs and ``scripts/demo``); within one run
    the modules are two xdist scopes (tests/conftest.py)."""
    with host_lock(
        REAL_KUBELET_LOCK_WAIT, "another pytest run or demo on this machine is running real kubelets"
    ):
        yield


@pytest.fixture(scope="session")
def testbed_cluster(testbed_root: Path) -> Iterator[Cluster]:
    """One node per profile (in ``ALL_PROFILES`` order), shared by the whole session."""
    with Cluster.up(f"pytest-{os.getpid()}", ALL_PROFILES, root=testbed_root) as cluster:
        yield cluster


@pytest.fixture(params=ALL_PROFILES)
def testbed_node(request: pytest.FixtureRequest, testbed_cluster: Cluster) -> Node:
    """The session cluster's node of each profile, in turn."""
    return node_with_profile(testbed_cluster, request.param)


@pytest.fixture(scope="module")
def scratch_cluster(testbed_root: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A throw-away cluster for tests that change nodes: one node per profile, or per profile
    named in the test module's ``SCRATCH_PROFILES``."""
    # the cluster's name prefixes node names, which must be DNS labels (cluster.CLUSTER_NAME_PATTERN)
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:12]
    module = module.replace("_", "-").rstrip("-")
    profiles = getattr(request.module, "SCRATCH_PROFILES", ALL_PROFILES)
    with Cluster.up(f"pytest-{os.getpid()}-{module}", profiles, root=testbed_root) as cluster:
        yield cluster


@dataclass(frozen=True)
class ApiEndpoint:
    url: str
    kubeconfig: Path


@pytest.fixture(scope="session")
def nodes_kubeapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEndpoint]:
    from testbed.kubeapi import EmulatorConfig, EmulatorThread, write_kubeconfig

    thread = EmulatorThread(EmulatorConfig(controllers=False))
    thread.start()
    try:
        path = tmp_path_factory.mktemp("nodes-kubeapi") / "kubeconfig"
        yield ApiEndpoint(thread.emulator.url, write_kubeconfig(path, thread.emulator.url))
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def kubelet_cluster(testbed_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Cluster:
    testbed_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    return testbed_cluster


@pytest.fixture(scope="session")
def kube_core(nodes_kubeapi: ApiEndpoint) -> Iterator[CoreV1Api]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(nodes_kubeapi.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 30.0,
    what: str = "",
    interval: float = 0.2,
) -> T:
    """``testbed.waiting.wait_until`` with the node tests' defaults (30 s, polled every 0.2 s)."""
    return waiting.wait_until(predicate, timeout, what=what or repr(predicate), interval=interval)


def node_with_profile(cluster: Cluster, profile: str | ProfileName) -> Node:
    for node in cluster.nodes:
        if node.profile.name == ProfileName(profile):
            return node
    raise LookupError(f"cluster {cluster.name} has no node with profile {profile}")


@pytest.fixture
def ssh_client_for(request: pytest.FixtureRequest) -> Iterator[Callable[[Cluster, Node], paramiko.SSHClient]]:
    """``ssh_client_for(cluster, node)``: a connected client verifying the node's host key."""
    clients: list[paramiko.SSHClient] = []

    def connect(cluster: Cluster, node: Node) -> paramiko.SSHClient:
        client = node.ssh_client(cluster.private_key, cluster.known_hosts)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
