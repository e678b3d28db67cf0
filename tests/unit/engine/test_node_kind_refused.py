"""Windows and OpenShift nodes fail at the facts step from their Node object, before any connection
to them (the fake node port records a probe as the change `w1:facts`), in the plan's words."""

from __future__ import annotations

import pytest

from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.planning.outside import check_node_kind
from shimshift.steps.facts.refuse import OPENSHIFT, WINDOWS
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers


@pytest.mark.parametrize(
    ("kw", "refused"),
    [
        ({"labels": {"pool": "workers", "kubernetes.io/os": "windows"}}, WINDOWS),
        ({"operating_system": "windows"}, WINDOWS),
        ({"labels": {"pool": "workers", "node.openshift.io/os_id": "rhcos"}}, OPENSHIFT),
        (
            {"annotations": {"machineconfiguration.openshift.io/currentConfig": "rendered-worker-1"}},
            OPENSHIFT,
        ),
    ],
)
def test_the_node_fails_at_facts_without_being_probed(
    clock: Clock, kw: dict[str, object], refused: tuple[str, str, str]
) -> None:
    cluster = FakeCluster(workers(1, **kw), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())

    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.FAILED
    facts = next(s for s in record.steps if s.id == StepId.FACTS)
    _code, what, advice = refused
    assert facts.state == StepState.FAILED and f"{what}: {advice}" in facts.message
    assert not nodes.changes and not cluster.nodes["w1"].unschedulable
    # the plan blocks the same node with the same words
    (finding,) = check_node_kind(cluster.nodes["w1"].view())
    assert (finding.code, finding.message.split(" (")[0], finding.advice) == (
        refused[0],
        what.split(" (")[0],
        advice,
    )


def test_plan_mode_probes_no_windows_or_openshift_node_and_its_report_blocks_them(clock: Clock) -> None:
    cluster = FakeCluster(
        [
            *workers(1),
            FakeNode("win1", labels={"pool": "workers", "kubernetes.io/os": "windows"}),
            FakeNode("ocp1", annotations={"machineconfiguration.openshift.io/state": "Done"}),
        ],
        clock,
    )
    nodes = FakeNodes(cluster)
    cluster.create(manifest(mode="Plan"))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    engine.reconcile(cluster.get("m"))

    assert nodes.changes["w1:facts"] and not nodes.changes["win1:facts"] and not nodes.changes["ocp1:facts"]
    report = "".join(cluster.reports["m"].values())
    assert "WindowsNode" in report and "OpenShiftNode" in report
