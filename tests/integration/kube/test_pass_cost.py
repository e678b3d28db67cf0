"""A reconcile pass costs requests for the nodes in flight, not for the fleet: Nodes and the
NodeMigrationNode objects come from watch-fed caches, so no pass LISTs Nodes or pods (a pod LIST
limited to one node in flight is that node's drain), counted in the API emulator's request log."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord

from shimshift.engine import Engine
from shimshift.kube.api import Kube, load_api_client
from shimshift.kube.cluster import KubeCluster
from shimshift.model.status import NodePhase, Phase
from shimshift.ports import EngineConfig
from shimshift.resources import load_crd, load_node_crd
from tests.e2e.simnodes import SimNodes

from .conftest import migration, node

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FLEET = 500
#: Requests the operator's own client may make per node it migrates: the scale goal is 40; measured
#: 25.1 without the canary and 29.1 with it, a step's Done written with the next step's Started (with
#: a write each, 12 more per node: 37 and 41)
PER_NODE = 32


def fleet_wide_list(rec: RequestRecord) -> bool:
    """A LIST of Nodes or pods not limited to a single node."""
    if rec.verb != "list" or rec.resource not in ("nodes", "pods"):
        return False
    one = (
        rec.field_selector.startswith(("spec.nodeName=", "metadata.name=")) and "," not in rec.field_selector
    )
    return not one


@pytest.mark.parametrize("canary", [False, True], ids=["no-canary", "canary"])
def test_a_pass_lists_no_nodes_or_pods_and_costs_requests_per_node_in_flight(
    kubeapi: KubeApi, kube: Kube, tmp_path: Path, canary: bool
) -> None:
    """Also with verify's canary pod on every node (its create, watch, log and delete count)."""
    kubeapi.seed([load_crd(), load_node_crd()])
    kubeapi.seed([node(f"w{i:04}") for i in range(FLEET)])
    # without an image named, the simulated nodes have none for a canary: verify skips it
    verify: dict[str, Any] = (
        {"verify": {"canary": {"image": "registry.example/busybox:1.36"}}} if canary else {}
    )
    kubeapi.seed(migration(rollout={"maxUnavailable": "10%"}, **verify))
    cluster = KubeCluster(kube)
    # the simulated kubelet reports the new runtime with a client of its own, not counted as ours
    api = load_api_client(str(kubeapi.kubeconfig))
    api.user_agent = "kubelet-sim"
    kubelet = Kube(api, request_timeout=10)
    sim = SimNodes(kubelet, tmp_path, 0.0, set())
    engine = Engine(cluster, lambda m: sim, config=EngineConfig(budget=60.0, wait_slice=5.0))
    try:
        assert len(cluster.read_nodes()) == FLEET  # the caches' one LIST each, before any pass
        assert cluster.read_api_servers().hosts == ()  # the kube-apiserver pods' cache too
        passes = []
        for _ in range(30):
            before = len(kubeapi.requests)
            current = cluster.read_migration("m")
            assert current is not None
            result = engine.reconcile(current)
            made = list(kubeapi.requests)[before:]
            passes.append((result, made))
            if result.phase == Phase.SUCCEEDED:
                break
        assert result.phase == Phase.SUCCEEDED, result

        for number, (_, made) in enumerate(passes, 1):
            listed = [f"{r.method} {r.path}?{r.query}" for r in made if fleet_wide_list(r)]
            assert not listed, f"pass {number} listed the fleet: {listed[:3]}"
        ours = [r for _, made in passes for r in made if r.user_agent.startswith("shimshift/")]
        per_node = len(ours) / FLEET
        kinds = Counter(f"{r.verb} {r.resource}/{r.subresource}" for r in ours)
        print(f"\n{len(passes)} passes, {per_node:.1f} requests per migrated node: {kinds.most_common()}")
        assert per_node <= PER_NODE
        # a pass costs what the nodes it works on cost, whatever the fleet (a pass whose wave ends
        # within its budget starts the next wave, so it may work on more than one wave's nodes)
        for number, (_, made) in enumerate(passes, 1):
            worked = {r.name for r in made if r.resource == "nodemigrationnodes" and r.name}
            mine = [r for r in made if r.user_agent.startswith("shimshift/")]
            assert len(mine) <= PER_NODE * len(worked) + 20, (number, len(mine), len(worked))
        children = kubeapi.list("nodemigrationnodes.shimshift.io", label_selector="shimshift.io/migration=m")
        assert len(children) == FLEET
        assert {c["status"]["phase"] for c in children} == {NodePhase.SUCCEEDED}
    finally:
        cluster.close()
        kubelet.close()
