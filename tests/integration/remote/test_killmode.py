"""A testbed node whose containerd.service stops with KillMode=control-group (a drop-in, as an admin
would add one): its facts probe over SSH reads the effective KillMode, the plan says the node runs in
the AfterCordon order (a StagingAfterCordon warning naming the drop-in), and the engine, under
spec.staging BeforeCordon, runs it so: cordoned and drained before its containerd is configured, its
record saying `staging: AfterCordon`. Then it goes back to Docker.

The testbed's systemctl is a stand-in that does not apply KillMode (testbed/README.md): what is tested
here is that shimshift reads the unit as systemd would and orders the node by it, not systemd's kill.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from shimshift.engine import Engine
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import STEP_ORDER_AFTER_CORDON, StepId
from shimshift.model.killmode import containerd_kill_mode
from shimshift.model.spec import Staging
from shimshift.model.status import NodePhase, StepState
from shimshift.planning.build import build_plan
from shimshift.remote import NodeSteps, SshNodePort
from shimshift.steps.base import ImagesProgress
from tests.integration.remote.test_migrate import cluster as cluster  # the module's scratch cluster
from tests.integration.remote.test_migrate import connect, node_of, wait_runtime
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, manifest
from tests.unit.planning import factory

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster, Node

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(300)]

DROPIN = "/etc/systemd/system/containerd.service.d/50-killmode.conf"


@pytest.fixture
def killing_node(cluster: Cluster) -> Iterator[Node]:
    """The kubeadm-cgroupfs node, its containerd.service set to kill its whole control group."""
    node = node_of(cluster, "kubeadm-cgroupfs")
    dropin = node.view(DROPIN)
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nKillMode=control-group\n")
    try:
        yield node
    finally:
        dropin.unlink(missing_ok=True)


class RecordingCluster(FakeCluster):
    """FakeCluster that notes the cordon in `calls`, among the node steps."""

    calls: list[str]

    def cordon(self, node: str, owner: str) -> bool:
        self.calls.append("cordon")
        return super().cordon(node, owner)


class RecordingPort(SshNodePort):
    """SshNodePort that notes the node steps in the order they run; once switched, the fake API shows
    the node on containerd (`on_switch`)."""

    calls: list[str]
    on_switch: Callable[[], None]
    finished_with: int = -1  # SSH round trips the node cost, facts to finish

    def finish(self, node: str, facts: NodeFacts) -> None:
        self.finished_with = self.round_trips(node)
        super().finish(node, facts)

    def backup(self, node: str, facts: NodeFacts) -> str:
        self.calls.append("backup")
        return super().backup(node, facts)

    def configure(self, node: str, facts: NodeFacts) -> None:
        self.calls.append("configure")
        super().configure(node, facts)

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> Any:
        self.calls.append("images")
        return super().images(node, facts, progress)

    def switch(self, node: str, facts: NodeFacts) -> None:
        self.calls.append("switch")
        super().switch(node, facts)
        self.on_switch()


def test_a_node_whose_containerd_kills_its_control_group_is_planned_and_run_after_its_cordon(
    cluster: Cluster, kube_core: CoreV1Api, killing_node: Node
) -> None:
    node = killing_node
    wait_runtime(kube_core, node.name, "docker://")
    clock = Clock()
    fake = RecordingCluster([FakeNode(node.name)], clock)
    migration = fake.create(manifest(nodeNames=[node.name], nodeSelector={"matchLabels": {}}))
    assert migration.spec.staging == Staging.BEFORE_CORDON  # the default: staged while serving
    calls: list[str] = []
    port = RecordingPort(
        migration.name,
        migration.spec,
        lambda _n: connect(cluster, node),
        wait_seconds=30,
        stop_grace_seconds=1,
        kubelet_version=lambda _n: "v" + node.profile.kubelet_version,
    )
    port.calls = fake.calls = calls
    port.on_switch = lambda: setattr(fake.nodes[node.name], "runtime", "containerd://1.6.20")
    try:
        # the probe reads the drop-in over SSH; the plan says what the run will do
        with connect(cluster, node) as conn:  # its own connection: the port counts the engine's only
            facts = NodeSteps(conn).facts(kubelet_version="v" + node.profile.kubelet_version)
        mode = containerd_kill_mode(facts)
        assert (mode.value, mode.source) == ("control-group", DROPIN)
        plan = build_plan(
            migration.spec,
            factory.cluster([factory.node(node.name)]),
            {node.name: facts},
            dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
        )
        (report,) = plan.nodes
        (finding,) = [f for f in report.findings if f.code == "StagingAfterCordon"]
        assert finding.level.value == "warning" and finding.subject == DROPIN
        assert "KillMode=control-group" in finding.message and "AfterCordon" in finding.message

        engine = Engine(fake, lambda _m: port, clock=clock, monotonic=lambda: clock.now.timestamp())
        for _ in range(20):
            engine.reconcile(fake.get(migration.name))
            record = fake.status().node(node.name)
            if record is not None and record.phase.finished:
                break
        assert record is not None and record.phase == NodePhase.SUCCEEDED, record
        assert record.staging == "AfterCordon"
        (probe,) = [s for s in record.steps if s.id == StepId.FACTS]
        assert f"KillMode=control-group (set in {DROPIN})" in probe.message
        done = [s.id for s in record.steps if s.state == StepState.DONE]
        assert tuple(done) == STEP_ORDER_AFTER_CORDON, done
        # nothing changed the node before the cordon
        assert calls[:2] == ["cordon", "backup"] and calls.index("configure") > calls.index("cordon")
        assert port.round_trips(node.name) == 0  # the finish closed the node's connection
        # AfterCordon's SSH cost: facts, backup, configure, images (read, move, name), switch, verify
        print(f"\nAfterCordon order: {port.finished_with} SSH round trips, facts to finish")
        assert port.finished_with == 8
    finally:
        port.undo(node.name, facts)
        port.close()
    wait_runtime(kube_core, node.name, "docker://")
