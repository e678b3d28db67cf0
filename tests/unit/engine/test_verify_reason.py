"""A verify that fails names the node's own reason, within the NodeMigration's spec.verify.timeout."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.status import EventReason, NodePhase, Phase, StepState
from shimshift.planning.cluster import parse_node
from shimshift.steps.execute import TaskFailed
from shimshift.steps.runner import CommandResult
from shimshift.steps.verify import NODE_REASON_MAX, node_reason
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest

#: what kubelet 1.24+ says when containerd's CNI has no network configuration
CNI_MESSAGE = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


def raw_node(*conditions: dict[str, Any], runtime: str = "containerd://1.6.20") -> dict[str, Any]:
    return {
        "metadata": {"name": "w1"},
        "status": {"conditions": list(conditions), "nodeInfo": {"containerRuntimeVersion": runtime}},
    }


def ready(status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message}


PRESSURE = {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}


def test_a_node_not_ready_is_described_by_its_ready_condition() -> None:
    node = parse_node(raw_node(PRESSURE, ready("False", "KubeletNotReady", CNI_MESSAGE)))
    assert node_reason(node) == f"Ready=False (KubeletNotReady: {CNI_MESSAGE})"


def test_a_node_whose_kubelet_stopped_posting_says_so() -> None:
    node = parse_node(raw_node(ready("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")))
    assert node_reason(node) == "Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)"


def test_a_node_ready_on_another_runtime_names_the_runtime() -> None:
    node = parse_node(
        raw_node(
            ready("True", "KubeletReady", "kubelet is posting ready status"), runtime="docker://20.10.24"
        )
    )
    assert node_reason(node) == "containerRuntimeVersion docker://20.10.24, not containerd://"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            raw_node(PRESSURE, runtime=""),
            "the node reports no Ready condition; containerRuntimeVersion (none), not containerd://",
        ),
        (raw_node(ready("False")), "Ready=False"),
        (raw_node(ready("False", "KubeletNotReady", "  ")), "Ready=False (KubeletNotReady)"),
        (raw_node(ready("True", "KubeletReady", "kubelet is posting ready status")), ""),
    ],
)
def test_what_the_node_lacks_and_nothing_when_it_is_back(raw: dict[str, Any], expected: str) -> None:
    assert node_reason(parse_node(raw)) == expected


def test_a_deleted_node_is_named_as_such() -> None:
    assert node_reason(None) == "the Node object no longer exists"


def test_the_reason_is_one_bounded_line_without_a_password() -> None:
    message = (
        "PLEG is not healthy:\n  pleg was last seen active 3m0s ago;\n"
        + "x" * (NODE_REASON_MAX - 60)
        + " pulling https://puller:hunter2hunter2@registry.example.com/pause:3.9 failed"
    )
    reason = node_reason(parse_node(raw_node(ready("False", "KubeletNotReady", message))))
    assert len(reason) == NODE_REASON_MAX and reason.endswith("...")
    assert "\n" not in reason and "PLEG is not healthy: pleg was last seen active 3m0s ago; xxx" in reason
    assert "hunter2" not in reason


def stays_not_ready_after_switch(cluster: FakeCluster, nodes: FakeNodes, message: str = CNI_MESSAGE) -> None:
    """The kubelet on containerd reports NotReady with `message` until the node is rolled back."""
    switch, undo = nodes.switch, nodes.undo

    def switched(node: str, facts: NodeFacts) -> None:
        switch(node, facts)
        n = cluster.nodes[node]
        n.ready, n.ready_reason, n.ready_message = False, "KubeletNotReady", message

    def undone(node: str, facts: NodeFacts | None) -> None:
        undo(node, facts)
        cluster.nodes[node].ready = True

    nodes.switch = switched  # type: ignore[method-assign]
    nodes.undo = undone  # type: ignore[method-assign]


def seconds(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def test_a_node_not_ready_in_time_fails_verify_with_its_reason_in_last_error_and_events(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    stays_not_ready_after_switch(cluster, nodes)
    cluster.create(manifest(verify={"timeout": "90s"}))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK and w1.last_error is not None
    assert w1.last_error.step == "verify"
    assert w1.last_error.message == (
        "node w1 did not report Ready with a containerd:// runtime within 1m30s (spec.verify.timeout) "
        f"after the switch: Ready=False (KubeletNotReady: {CNI_MESSAGE})"
    )
    verify = next(s for s in w1.steps if s.id == StepId.VERIFY)
    assert verify.state == StepState.FAILED
    assert 90 <= seconds(verify.started_at, verify.finished_at) < 90 + 30  # not the 300 s default
    failed = [m for (_, node, warning, reason, m) in cluster.events if reason == EventReason.STEP_FAILED]
    rolled = [m for (_, node, warning, reason, m) in cluster.events if reason == EventReason.NODE_ROLLED_BACK]
    assert (
        len(failed) == 1 and "reason:NetworkPluginNotReady message:Network plugin returns error" in failed[0]
    )
    assert len(rolled) == 1 and CNI_MESSAGE in rolled[0]
    listed = cluster.objects["m"]["status"]["failedNodes"]  # the NodeMigration's own, 300 characters
    assert listed[0]["message"].startswith(
        "node w1 did not report Ready with a containerd:// runtime within 1m30s (spec.verify.timeout) "
        "after the switch: Ready=False (KubeletNotReady: container runtime network not ready: NetworkReady=false"
    )


def test_the_default_verify_limit_is_five_minutes(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    stays_not_ready_after_switch(cluster, nodes)
    cluster.create(manifest())

    run_to_end(cluster, nodes, clock)

    w1 = cluster.status().node("w1")
    assert (
        w1 is not None
        and w1.last_error is not None
        and "within 5m (spec.verify.timeout)" in w1.last_error.message
    )
    verify = next(s for s in w1.steps if s.id == StepId.VERIFY)
    assert 300 <= seconds(verify.started_at, verify.finished_at) < 300 + 30


def test_while_verify_waits_its_step_message_says_why_the_node_is_not_back(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    stays_not_ready_after_switch(cluster, nodes)
    cluster.create(manifest())
    engine = make_engine(cluster, nodes, clock)

    for _ in range(50):
        engine.reconcile(cluster.get("m"))
        w1 = cluster.status().node("w1")
        if w1 is not None and w1.step == StepId.VERIFY:
            break
        clock.advance(1.0)
    assert w1 is not None and w1.step == StepId.VERIFY and w1.step_state == StepState.STARTED
    verify = next(s for s in w1.steps if s.id == StepId.VERIFY)
    assert (
        verify.message
        == f"waiting for the kubelet to report Ready on containerd: Ready=False (KubeletNotReady: {CNI_MESSAGE})"
    )


def test_a_long_node_message_keeps_last_error_and_events_bounded(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    stays_not_ready_after_switch(cluster, nodes, "runtime broke: " + "detail " * 2000)
    cluster.create(manifest(verify={"timeout": "30s"}))

    run_to_end(cluster, nodes, clock)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.last_error is not None
    assert "Ready=False (KubeletNotReady: runtime broke: detail" in w1.last_error.message
    assert len(w1.last_error.message) < 600
    assert all(len(m) < 1024 for (*_, m) in cluster.events)


CRI_NOT_READY = (
    "crictl info: the CRI runtime is not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


def node_check_fails(
    clock: Clock, nodes: FakeNodes, exit_status: int, stderr: str, times: int
) -> Counter[str]:
    """verify.sh on the node fails `times` times as it does on a node (after waiting its minute)."""
    verify, calls = nodes.verify, Counter[str]()

    def checked(node: str, facts: NodeFacts) -> None:
        calls[node] += 1
        if calls[node] <= times:
            clock.advance(60)
            result = CommandResult(
                ("/bin/sh", "-c", "...", "shimshift-verify", "60"), exit_status, b"", stderr.encode(), 60.0
            )
            raise TaskFailed(node, "verify", "containerd and the kubelet are up", "run", result)
        verify(node, facts)

    nodes.verify = checked  # type: ignore[method-assign]
    return calls


def test_a_cri_not_ready_on_the_node_is_waited_for_within_the_verify_limit(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    calls = node_check_fails(clock, nodes, 1, CRI_NOT_READY, times=3)  # 3 minutes, within 5m
    cluster.create(manifest())
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    for _ in range(10):
        w1 = cluster.status().node("w1")
        if w1 is not None and w1.step == StepId.VERIFY:
            break
        clock.advance(1.0)
        engine.reconcile(cluster.get("m"))
    assert w1 is not None and w1.step == StepId.VERIFY and w1.step_state == StepState.STARTED
    verify = next(s for s in w1.steps if s.id == StepId.VERIFY)
    assert verify.message == f"waiting for containerd and the kubelet on the node: {CRI_NOT_READY}"

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert calls["w1"] == 4 and nodes.changes["w1:undo"] == 0


def test_a_cri_that_stays_not_ready_fails_verify_at_its_limit_with_containerds_reason(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    node_check_fails(clock, nodes, 1, "some progress\n" + CRI_NOT_READY, times=10_000)
    cluster.create(manifest(verify={"timeout": "3m"}))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK and w1.last_error is not None
    assert w1.last_error.message == (
        "node w1: containerd or the kubelet not ready on the node within 3m (spec.verify.timeout) after the "
        f"switch: some progress | {CRI_NOT_READY}"
    )
    verify = next(s for s in w1.steps if s.id == StepId.VERIFY)
    assert 180 <= seconds(verify.started_at, verify.finished_at) <= 180 + 60


def test_a_node_check_that_fails_otherwise_fails_verify_at_once(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    calls = node_check_fails(clock, nodes, 3, "crictl images failed: rpc error", times=10_000)
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.last_error is not None and calls["w1"] == 1
    assert w1.last_error.message == (
        "node w1: verify: 'containerd and the kubelet are up' run exited 3: crictl images failed: rpc error"
    )
