"""A node whose daemon.json registers runtimes whose binaries are not there, probed over SSH on the
testbed's real node: the plan blocks it for the default runtime and warns for the other one, and the
engine's facts step, over the same SSH, refuses the node in the plan's words before touching it.

Docker is not restarted: the probe reads daemon.json, as it reads it on a node whose Docker has not
been restarted since the file changed; the node's containerd and runc shim are real.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from shimshift.engine import Engine
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.planning.build import build_plan
from shimshift.planning.settings import RUNTIME_BINARY_MISSING
from shimshift.remote import NodeSteps, SshNodePort
from tests.integration.remote.test_migrate import connect, facts_of, node_of
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, manifest
from tests.unit.planning.factory import cluster as plan_cluster
from tests.unit.planning.factory import node as plan_node
from tests.unit.planning.factory import spec as plan_spec

if TYPE_CHECKING:
    from testbed.nodes import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

SCRATCH_PROFILES = ["kubeadm-cgroupfs"]
DEFAULT = "/usr/local/bin/nvidia-container-runtime"  # not installed on the node
OTHER = "shimshift-no-such-runsc"  # a name looked up in containerd's PATH
NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster) -> Iterator[Cluster]:
    yield scratch_cluster


def test_a_default_runtime_whose_binary_is_missing_is_a_plan_blocker_and_refused_at_facts(
    cluster: Cluster,
) -> None:
    node = node_of(cluster, "kubeadm-cgroupfs")
    daemon = json.loads(node.read("/etc/docker/daemon.json"))
    daemon["default-runtime"] = "nvidia"
    daemon["runtimes"] = {"nvidia": {"path": DEFAULT}, "runsc": {"path": OTHER}}
    node.view("/etc/docker/daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")
    assert not node.view(DEFAULT).exists()

    with connect(cluster, node) as conn:
        facts = facts_of(NodeSteps(conn), node)
    # the real containerd's runc shim is found where containerd is; the two runtimes' binaries are not
    assert facts.runtime_binaries[DEFAULT] == "" and facts.runtime_binaries[OTHER] == ""
    assert facts.runtime_binaries["containerd-shim-runc-v2"].endswith("/containerd-shim-runc-v2")

    report = build_plan(plan_spec(), plan_cluster(nodes=[plan_node(node.name)]), {node.name: facts}, NOW)
    (blocker,) = [f for f in report.blockers if f.code == RUNTIME_BINARY_MISSING]
    (warning,) = [f for f in report.warnings if f.code == RUNTIME_BINARY_MISSING]
    assert DEFAULT in blocker.message and blocker.subject == "daemon.json runtimes.nvidia"
    assert OTHER in warning.message and warning.subject == "daemon.json runtimes.runsc"

    # Migrate mode: the engine's facts step over SSH refuses the node, untouched and uncordoned
    clock = Clock()
    fake = FakeCluster([FakeNode(node.name)], clock)
    fake.create(manifest())
    port = SshNodePort("m", fake.get("m").spec, lambda _name: connect(cluster, node))
    try:
        Engine(fake, lambda _m: port, clock=clock, monotonic=lambda: clock.now.timestamp()).reconcile(
            fake.get("m")
        )
    finally:
        port.close()
    record = fake.status().node(node.name)
    assert record is not None and record.phase == NodePhase.FAILED
    (step,) = [s for s in record.steps if s.id == StepId.FACTS]
    assert step.state == StepState.FAILED
    assert f"{blocker.message}: {blocker.advice}" in step.message
    assert StepId.CORDON not in {s.id for s in record.steps}
    assert not fake.nodes[node.name].unschedulable


def test_the_probe_reads_the_limits_of_the_containerd_daemon_not_a_younger_process_of_that_name(
    cluster: Cluster,
) -> None:
    # The probe's own `containerd --version` runs while it reads the daemon's limits: a process
    # named containerd that is not the daemon (here a copy of sleep, with 256 open files) must not
    # be the one read, whichever of the two /proc lists first.
    node = node_of(cluster, "kubeadm-cgroupfs")
    daemon = int(node.exec(["systemctl", "show", "-p", "MainPID", "--value", "containerd"]).stdout)
    impostor = "/tmp/shimshift-test/containerd"
    started = node.exec(
        [
            "sh",
            "-c",
            f"mkdir -p /tmp/shimshift-test && cp /bin/sleep {impostor} && "
            f"(ulimit -n 256 && exec setsid {impostor} 120) >/dev/null 2>&1 & echo $!",
        ]
    )
    assert started.exit_status == 0, started.stderr
    try:
        alive = node.exec(["pgrep", "-x", "containerd"]).stdout.split()
        assert len(alive) == 2, (alive, started.stdout)
        with connect(cluster, node) as conn:
            for _ in range(3):
                facts = facts_of(NodeSteps(conn), node)
                assert facts.containerd_limits.get("LimitNOFILE") not in (None, "256"), (
                    facts.containerd_limits
                )
                assert facts.containerd_parent != "sh", facts.containerd_parent
        (line,) = [x for x in node.read(f"/proc/{daemon}/limits").splitlines() if x.startswith("Max open")]
        nr_open = node.read("/proc/sys/fs/nr_open").strip()
        soft, hard = ("infinity" if v == nr_open else v for v in line.split()[3:5])
        assert facts.containerd_limits["LimitNOFILE"] == (soft if soft == hard else f"{soft}:{hard}")
    finally:
        node.exec(["pkill", "-x", "-f", f"{impostor} 120"])
        node.exec(["rm", "-rf", "/tmp/shimshift-test"])
