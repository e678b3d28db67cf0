"""The engine and the node that runs the cluster's only API server: skipped and untouched without
spec.rollout.allowApiDowntime; with it migrated last of all, and the API's downtime right after its
switch waited out (bounded by spec.verify.timeout) instead of failing the node."""

from __future__ import annotations

import pytest

from shimshift.engine import Engine
from shimshift.entry.statusview import render_status
from shimshift.model.keys import StepId
from shimshift.model.status import EventReason, NodePhase, Phase, StepState
from shimshift.planning.apiserver import ApiServers
from tests.unit.engine.conftest import make_engine
from tests.unit.engine.fakes import ApiDown, Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers

CONTROL_PLANE = {"pool": "workers", "node-role.kubernetes.io/control-plane": ""}


def fleet(clock: Clock) -> tuple[FakeCluster, FakeNodes]:
    cluster = FakeCluster([FakeNode("cp1", labels=dict(CONTROL_PLANE)), *workers(2)], clock)
    cluster.api_servers = ApiServers(("cp1",), 1)
    return cluster, FakeNodes(cluster)


def engine(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, own_node: str = "") -> Engine:
    return make_engine(cluster, nodes, clock, own_node)


def run(operator: Engine, cluster: FakeCluster, clock: Clock) -> None:
    for _ in range(300):
        result = operator.reconcile(cluster.get("m"))
        if result.in_flight == 0 and result.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED):
            return
        clock.advance(max(result.delay, 1.0))
    raise AssertionError(f"did not settle: {cluster.status()}")


def test_without_the_opt_in_the_api_server_node_is_skipped_untouched_and_named_in_status(
    clock: Clock,
) -> None:
    cluster, nodes = fleet(clock)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))
    run(engine(cluster, nodes, clock), cluster, clock)
    status = cluster.status()
    assert status.phase == Phase.SUCCEEDED
    cp1 = status.node("cp1")
    assert cp1 is not None and cp1.phase == NodePhase.SKIPPED
    assert "only API server" in cp1.skip_reason and "allowApiDowntime: true" in cp1.skip_reason
    assert "cp1, skipped: it runs the cluster's only API server" in status.message
    (listed,) = cluster.objects["m"]["status"]["apiServerNodes"]
    assert listed == {"name": "cp1", "reason": cp1.skip_reason}
    assert "Skipped cp1: runs the cluster's only API server" in render_status(
        cluster.objects["m"], [r.for_storage() for r in status.nodes], source="test", now=clock.now
    )
    assert not [k for k in {**nodes.changes, **cluster.changes} if k.startswith("cp1:")]
    assert cluster.nodes["cp1"].runtime.startswith("docker://")


@pytest.mark.parametrize("down_from", [StepId.SWITCH, StepId.VERIFY])
def test_with_the_opt_in_the_api_down_after_its_switch_is_waited_out_and_the_node_succeeds(
    clock: Clock, down_from: StepId
) -> None:
    cluster, nodes = fleet(clock)
    cluster.api_outage = ("cp1", down_from, 40.0)
    cluster.create(manifest(rollout={"maxUnavailable": 2, "allowApiDowntime": True}))
    run(engine(cluster, nodes, clock, own_node="w2"), cluster, clock)
    status = cluster.status()
    assert status.phase == Phase.SUCCEEDED, status.message
    started = sorted(status.nodes, key=lambda r: r.started_at)
    assert [r.name for r in started] == ["w1", "w2", "cp1"]  # the operator's node, then the API server's
    assert cluster.api_refused >= 1  # the switch's Done write, or the verify step's reads, met it down
    assert sum(cluster.api_waits) == pytest.approx(40.0)
    cp1 = status.node("cp1")
    assert cp1 is not None and cp1.phase == NodePhase.SUCCEEDED and cp1.last_error is None
    steps = {s.id: s.state for s in cp1.steps}
    assert steps[StepId.SWITCH] == StepState.DONE and steps[StepId.VERIFY] == StepState.DONE
    assert nodes.changes["cp1:switch"] == 1  # the switch ran once: its Done was written after the wait
    assert not cluster.nodes["cp1"].unschedulable
    assert not [e for e in cluster.events if e[3] in (EventReason.STEP_FAILED, EventReason.NODE_FAILED)]


def test_an_api_down_for_longer_than_the_verify_timeout_is_not_waited_for_without_end(clock: Clock) -> None:
    cluster, nodes = fleet(clock)
    cluster.api_outage = ("cp1", StepId.SWITCH, 3600.0)
    cluster.create(
        manifest(
            rollout={"allowApiDowntime": True}, nodeNames=["cp1"], nodeSelector={"matchLabels": {"x": "y"}}
        )
    )
    cluster.objects["m"]["spec"]["verify"] = {"timeout": "2m"}
    operator = engine(cluster, nodes, clock)
    with pytest.raises(ApiDown):
        run(operator, cluster, clock)
    assert sum(cluster.api_waits) == pytest.approx(120.0)
