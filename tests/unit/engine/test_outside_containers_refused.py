"""In Migrate mode a node whose Docker runs containers outside the kubelet fails at its facts step,
untouched, unless spec.dockerOutsideContainers is Stop; an RKE1 node, and one whose Docker remaps user
IDs (daemon.json userns-remap), and one whose default runtime's binary is missing, fail there whatever
the spec."""

from __future__ import annotations

import pytest

from shimshift.model.facts import Distribution, NodeFacts, OutsideContainer
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

REGISTRY = OutsideContainer("registry", "registry:2", "always")


def _nodes(cluster: FakeCluster, **fields: object) -> FakeNodes:
    nodes = FakeNodes(cluster)
    nodes.node_facts["w1"] = NodeFacts(
        node="w1",
        docker_version="20.10.24",
        containerd_version="1.6.20",
        **fields,  # type: ignore[arg-type]
    )
    return nodes


@pytest.mark.parametrize(
    ("fields", "spec", "why"),
    [
        ({"outside_containers": (REGISTRY,)}, {}, "registry (registry:2, restart always)"),
        (
            {"distribution": Distribution.RKE1},
            {"dockerOutsideContainers": "Stop"},
            "RKE1-to-RKE2 migration guide",
        ),
        (
            {"daemon_json": {"userns-remap": "default"}},
            {"dockerOutsideContainers": "Stop"},
            "daemon.json userns-remap = default would break the node",
        ),
        (
            {
                "daemon_json": {"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "/usr/bin/nv"}}},
                "runtime_binaries": {"/usr/bin/nv": ""},
            },
            {"dockerOutsideContainers": "Stop"},
            "runtime nvidia: its binary /usr/bin/nv (runc's shim runs it as BinaryName) is not an executable",
        ),
    ],
)
def test_a_refused_node_fails_at_facts_untouched_and_uncordoned(
    clock: Clock, fields: dict[str, object], spec: dict[str, str], why: str
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = _nodes(cluster, **fields)
    cluster.create(manifest(**spec))

    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.FAILED
    facts = next(s for s in record.steps if s.id == StepId.FACTS)
    assert facts.state == StepState.FAILED and why in facts.message
    assert StepId.CORDON not in {s.id for s in record.steps}
    assert set(nodes.changes) == {"w1:facts"} and not cluster.nodes["w1"].unschedulable


def test_with_stop_the_node_migrates_and_its_outside_containers_stop_with_docker(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = _nodes(cluster, outside_containers=(REGISTRY,))
    cluster.create(manifest(dockerOutsideContainers="Stop"))

    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.SUCCEEDED
