"""Docker nodes whose target is containerd 2.x, migrated end to end by the operator over SSH: a node on
containerd 2.2 (config schema 3) and one on 2.3 (schema 4), both built from their Go modules, their
kubelets registered with the real API server (its scheduler, ReplicaSet and disruption controllers),
the operator as the chart's ServiceAccount. The rendered config is the one that very containerd reads
without converting it, the CRI is asked through crictl in verify, and the evicted pods run again on
containerd 2.x within their budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.controlplane.api import RealKubeApi
from testbed.nodes import Cluster, Node
from testbed.nodes.fixtures import node_with_profile

from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import eventually, web, web_pods
from tests.e2e.realapi import RealCluster, RealStack, nodes_on_real_api, real_test_cluster
from tests.e2e.test_testbed import APP_IMAGE, _migrate, _ready_on, _running_on

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.root, pytest.mark.timeout(280)]

SCRATCH_PROFILES = ["containerd-2.2", "containerd-2.3"]
#: the config schema each target containerd reads without converting it
SCHEMA = {"containerd-2.2": 3, "containerd-2.3": 4}


@pytest.fixture(scope="module")
def testbed(
    scratch_cluster: Cluster, realapi_stack: RealStack
) -> Iterator[tuple[Cluster, RealStack, RealKubeApi]]:
    with nodes_on_real_api(realapi_stack, scratch_cluster) as baseline:
        yield scratch_cluster, realapi_stack, baseline


@pytest.fixture
def stack(
    testbed: tuple[Cluster, RealStack, RealKubeApi], tmp_path: Path
) -> Iterator[tuple[Cluster, RealCluster]]:
    nodes, real, baseline = testbed
    with real_test_cluster(real, tmp_path, baseline) as api:
        yield nodes, api


def crictl(node: Node, *argv: str) -> str:
    result = node.exec(
        ["crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", *argv], timeout=30
    )
    assert result.exit_status == 0, result.stderr
    return result.stdout


def test_docker_nodes_move_to_containerd_2_2_and_2_3_with_the_schema_each_reads(
    stack: tuple[Cluster, RealCluster], tmp_path: Path
) -> None:
    nodes, api = stack
    names = [n.name for n in nodes.nodes]
    workload = web(replicas=2, min_available=1)
    pod_spec = workload[0]["spec"]["template"]["spec"]
    pod_spec["containers"][0]["image"] = APP_IMAGE  # in every node's Docker (testbed seeding)
    pod_spec["terminationGracePeriodSeconds"] = 5
    api.seed(workload)
    eventually(
        lambda: len(pods := web_pods(api)) == 2 and all(_running_on(p, "docker://") for p in pods),
        90,
        "the web pods Running on Docker",
    )
    logs_before = {n.name: len(n.read("/var/log/containerd.log")) for n in nodes.nodes}

    # one node at a time: a pod evicted while every node is cordoned would stay Pending
    phase, status, operator = _migrate(nodes, api, tmp_path, "containerd2", names, max_unavailable=1)

    assert phase == Phase.SUCCEEDED, (status, operator.logs()[-4000:])
    records = {r["name"]: r for r in status["nodes"]}
    for profile in SCRATCH_PROFILES:
        node = node_with_profile(nodes, profile)
        assert records[node.name]["phase"] == NodePhase.SUCCEEDED, records[node.name]
        api_node = api.get("nodes", node.name) or {}
        assert _ready_on(api_node, f"containerd://v{node.profile.containerd}"), api_node.get("status")
        config = node.read("/etc/containerd/config.toml")
        assert f"\nversion = {SCHEMA[profile]}\n" in config
        # this containerd read its file as written: nothing converted, no key ignored
        log = node.read("/var/log/containerd.log")[logs_before[node.name] :]
        assert "loading plugin" in log
        assert "Configuration migrated" not in log and "Ignoring unknown key" not in log
        # what a Docker user types next: the containers and images, through the CRI
        assert "CONTAINER" in crictl(node, "ps").splitlines()[0]
        images = crictl(node, "images")
        assert node.profile.sandbox_image.rsplit(":", 1)[0] in images
    again = eventually(
        lambda: (
            len(pods := web_pods(api)) == 2 and all(_running_on(p, "containerd://") for p in pods) and pods
        ),
        90,
        "the web pods Running on containerd 2.x",
    )
    assert {p["spec"]["nodeName"] for p in again} <= set(names)
