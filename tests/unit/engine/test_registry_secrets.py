"""The registry Secrets in the engine: Plan mode renders with them (so the plan says what Migrate then
does), and in Migrate mode a node whose files cannot be decided (a refused CA, a missing Secret) fails at
its facts step, before the lock, cordon and drain, with the reason recorded."""

from __future__ import annotations

import json
from typing import Any

from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.rendering import RegistryMaterial
from tests import pki
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

HOST = "registry.example.com"
CONTAINERD = {
    "cgroupDriver": "systemd",
    "registries": [{"host": HOST, "caSecretRef": {"name": "registry-ca"}}],
}


def plan_report(nodes: FakeNodes, cluster: FakeCluster, clock: Clock) -> dict[str, Any]:
    cluster.create(manifest(mode="Plan", containerd=CONTAINERD))
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    report: dict[str, Any] = json.loads(cluster.reports["m"]["report.json"])
    return report


def containerd_blockers(report: dict[str, Any]) -> list[str]:
    return [
        f["message"] for n in report["nodes"] for f in n["findings"] if f["code"] == "ContainerdRenderFailed"
    ]


def test_plan_mode_renders_with_the_registry_secrets_so_an_existing_valid_ca_is_no_blocker(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.material = RegistryMaterial(ca_bundles={HOST: pki.CA_PEM})
    report = plan_report(nodes, cluster, clock)
    assert containerd_blockers(report) == []
    (node,) = report["nodes"]
    ca = next(c for c in node["containerd"]["changes"] if c["path"].endswith(f"/{HOST}/ca.crt"))
    assert ca["secret"] is True and "sha256" in ca["diff"]  # shown by hash only
    assert pki.CA_PEM.splitlines()[1] not in json.dumps(report) + cluster.reports["m"]["report.md"]


def test_plan_mode_names_the_secret_of_a_registry_whose_material_was_refused(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.material = RegistryMaterial(
        refused={(HOST, "caSecretRef"): "Secret shimshift-system/registry-ca does not exist; create it"}
    )
    (message,) = containerd_blockers(plan_report(nodes, cluster, clock))
    assert f"caSecretRef: registry {HOST}: Secret registry-ca (key ca.crt): Secret" in message
    assert "does not exist" in message


def test_plan_mode_blocks_a_registry_whose_secret_holds_a_private_key_not_a_ca(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    key = pki.openssh_private_key()
    nodes.material = RegistryMaterial(ca_bundles={HOST: key})
    report = plan_report(nodes, cluster, clock)
    (message,) = containerd_blockers(report)
    assert "Secret registry-ca (key ca.crt): PEM block 1 is a private key" in message
    assert key.splitlines()[1] not in json.dumps(report) + cluster.reports["m"]["report.md"]


def test_a_node_whose_files_cannot_be_decided_fails_at_facts_untouched_uncordoned_and_unlocked(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "prepare"
    cluster.create(manifest(containerd=CONTAINERD))

    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.FAILED
    facts = next(s for s in record.steps if s.id == StepId.FACTS)
    assert facts.state == StepState.FAILED and "the registry CA is refused" in facts.message
    assert StepId.LOCK not in {s.id for s in record.steps} and StepId.CORDON not in {
        s.id for s in record.steps
    }
    assert record.last_error is not None and "the registry CA is refused" in record.last_error.message
    assert set(nodes.changes) == {"w1:facts"} and not cluster.nodes["w1"].unschedulable
    assert any(e[3] == "StepFailed" and "the registry CA is refused" in e[4] for e in cluster.events)
