"""The engine against fake ports: waves, safety of cordons, rollback, pauses, drain timeouts."""

from __future__ import annotations

import json

from shimshift.model import keys
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, Phase, StepState
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers


def cordoned(cluster: FakeCluster, name: str) -> bool:
    """Read afresh (mypy would carry an assert's narrowing of the attribute across a reconcile)."""
    return cluster.nodes[name].unschedulable


def test_every_selected_node_is_migrated_in_waves_of_max_unavailable(clock: Clock) -> None:
    cluster = FakeCluster(workers(5, pods=["default/a"]), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))

    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.SUCCEEDED
    status = cluster.status()
    assert [n.phase for n in status.nodes] == [NodePhase.SUCCEEDED] * 5
    assert cluster.max_cordoned_by_us <= 2
    waves: dict[str, list[str]] = {}
    for record in status.nodes:
        waves.setdefault(record.started_at, []).append(record.name)
    assert sorted(waves.values()) == [["w1", "w2"], ["w3", "w4"], ["w5"]]
    for node in cluster.nodes.values():
        assert node.labels[keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
        assert not node.unschedulable
        assert keys.LOCK_ANNOTATION not in node.annotations
        assert node.runtime.startswith("containerd://")
    assert status.for_storage()["summary"]["progress"] == "5/5"
    w1 = status.node("w1")
    assert w1 is not None
    assert [s.id for s in w1.steps] == list(keys.STEP_ORDER)
    assert all(s.state == StepState.DONE for s in w1.steps)


def test_an_admin_cordoned_node_stays_cordoned_after_its_migration(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1", unschedulable=True), FakeNode("w2")], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    assert cluster.nodes["w1"].unschedulable is True
    assert cluster.nodes["w2"].unschedulable is False
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.was_unschedulable is True


def test_a_failing_configure_rolls_the_node_back_and_pauses_at_max_failures(clock: Clock) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "configure"
    cluster.create(manifest(rollout={"maxUnavailable": 1, "maxFailures": 0}))

    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.PAUSED
    status = cluster.status()
    w1 = status.node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert w1.last_error is not None and "containerd did not start" in w1.last_error.message
    assert nodes.changes["w1:undo"] == 1
    assert cluster.nodes["w1"].runtime.startswith("docker://")
    assert not cluster.nodes["w1"].unschedulable
    assert keys.LOCK_ANNOTATION not in cluster.nodes["w1"].annotations
    assert [status.node(n).phase for n in ("w2", "w3")] == [NodePhase.PENDING] * 2  # type: ignore[union-attr]
    paused = next(c for c in status.conditions if c.type == "Paused")
    assert paused.status == "True" and paused.reason == "MaxFailures" and "w1" in paused.message


def test_raising_max_failures_resumes_a_paused_rollout(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "switch"
    cluster.create(manifest())
    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    cluster.set_spec("m", rollout={"maxFailures": 1})
    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.FAILED  # finished, with one node rolled back
    assert cluster.status().node("w2").phase == NodePhase.SUCCEEDED  # type: ignore[union-attr]


def test_verify_waits_until_the_daemonset_pods_on_the_node_run_again_before_finishing(clock: Clock) -> None:
    cluster = FakeCluster(
        [FakeNode("w1", daemonsets_down={"DaemonSet kube-system/proxy (pod proxy-1)": 3})], clock
    )
    nodes = FakeNodes(cluster)
    finish = nodes.finish

    def finish_once_daemonsets_are_back(node: str, facts: NodeFacts) -> None:
        assert not any(cluster.nodes[node].daemonsets_down.values()), "finished before the DaemonSet pods ran"
        finish(node, facts)

    nodes.finish = finish_once_daemonsets_are_back  # type: ignore[method-assign]
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.daemonset_waits["w1"] >= 3 and nodes.changes["w1:finish"] == 1
    assert nodes.changes["w1:undo"] == 0


def test_the_daemonsets_on_the_node_when_its_drain_finished_are_recorded_and_required_at_verify(
    clock: Clock,
) -> None:
    cluster = FakeCluster([FakeNode("w1", daemonsets=("kube-system/cni", "kube-system/proxy"))], clock)
    nodes = FakeNodes(cluster)
    switch = nodes.switch

    def pods_vanish_after_the_drain(node: str, facts: NodeFacts) -> None:
        cluster.nodes[node].daemonsets = ()  # e.g. deleted while the runtime changes, not yet recreated
        switch(node, facts)

    nodes.switch = pods_vanish_after_the_drain  # type: ignore[method-assign]
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.daemonsets_expected["w1"] == ("kube-system/cni", "kube-system/proxy")
    assert cluster.daemonset_runtimes["w1"] == "containerd"  # a pod still on docker:// does not count
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.daemonsets == ("kube-system/cni", "kube-system/proxy")


def test_daemonset_pods_that_never_come_back_fail_the_verify_and_roll_the_node_back(clock: Clock) -> None:
    missing = "DaemonSet kube-system/cni (pod cni-7: not Ready)"
    cluster = FakeCluster([FakeNode("w1", daemonsets_down={missing: 10_000})], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert w1.last_error is not None and missing in w1.last_error.message
    assert nodes.changes["w1:undo"] == 1 and nodes.changes["w1:finish"] == 0
    assert cluster.nodes["w1"].runtime.startswith("docker://") and not cluster.nodes["w1"].unschedulable


def test_a_pdb_that_never_allows_eviction_times_out_the_drain_and_uncordons_the_node(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "60s"}, staging="AfterCordon"))

    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.PAUSED
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.FAILED  # nothing on the node had changed
    assert w1.last_error is not None
    assert "shop/web-pdb" in w1.last_error.message and "shop/web-0" in w1.last_error.message
    assert "timed out" in w1.last_error.message
    assert not cluster.nodes["w1"].unschedulable
    assert nodes.changes["w1:configure"] == 0 and nodes.changes["w1:undo"] == 0
    blocked_events = [e for e in cluster.events if e[3] == "EvictionBlocked"]
    assert blocked_events and "shop/web-pdb" in blocked_events[0][4]


def test_drain_escalates_to_deleting_pods_only_when_the_spec_opts_in(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "60s", "onTimeout": "DeletePods"}))

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert any(e[3] == "DrainEscalated" for e in cluster.events)


def test_pause_between_nodes_holds_the_next_wave_until_the_soak_time_passed(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"pauseBetweenNodes": "10m"}))
    engine = make_engine(cluster, nodes, clock)

    first = engine.reconcile(cluster.get("m"))
    assert cluster.status().node("w1").phase == NodePhase.SUCCEEDED  # type: ignore[union-attr]
    second = engine.reconcile(cluster.get("m"))
    assert cluster.status().node("w2").phase == NodePhase.PENDING  # type: ignore[union-attr]
    assert 0 < second.delay <= 600
    assert first.phase == Phase.PROGRESSING

    clock.advance(601)
    engine.reconcile(cluster.get("m"))
    assert cluster.status().node("w2").phase == NodePhase.SUCCEEDED  # type: ignore[union-attr]


def test_a_paused_rollout_starts_no_node(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"paused": True}))

    result = make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))

    assert result.phase == Phase.PAUSED
    assert not nodes.changes
    assert all(n.phase == NodePhase.PENDING for n in cluster.status().nodes)


def test_control_plane_nodes_go_last_and_one_at_a_time(clock: Clock) -> None:
    cp_labels = {"pool": "workers", "node-role.kubernetes.io/control-plane": ""}
    cluster = FakeCluster(
        [FakeNode("a-cp1", labels=dict(cp_labels)), FakeNode("a-cp2", labels=dict(cp_labels)), *workers(2)],
        clock,
    )
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 4}))
    run_to_end(cluster, nodes, clock)

    status = cluster.status()
    record = {n.name: n for n in status.nodes}
    assert all(r.phase == NodePhase.SUCCEEDED for r in record.values())
    workers_done = max(record[w].finished_at for w in ("w1", "w2"))
    assert record["w1"].started_at == record["w2"].started_at  # the workers: one wave
    assert workers_done <= record["a-cp1"].started_at  # control-plane nodes last,
    assert record["a-cp1"].finished_at <= record["a-cp2"].started_at  # one at a time
    for write in cluster.status_writes:
        in_flight = set(write.get("inFlight", ()))
        assert not {"a-cp1", "a-cp2"} <= in_flight
        assert not (in_flight & {"a-cp1", "a-cp2"} and in_flight & {"w1", "w2"})


def test_new_matching_nodes_join_and_migrated_nodes_are_skipped(clock: Clock) -> None:
    done = FakeNode("w0", labels={"pool": "workers", keys.RUNTIME_LABEL: keys.RUNTIME_LABEL_VALUE})
    cluster = FakeCluster([done, FakeNode("w1")], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())
    run_to_end(cluster, nodes, clock)
    cluster.nodes["w2"] = FakeNode("w2")

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    status = cluster.status()
    assert status.node("w0").phase == NodePhase.SKIPPED  # type: ignore[union-attr]
    assert status.node("w2").phase == NodePhase.SUCCEEDED  # type: ignore[union-attr]
    assert "w0:facts" not in nodes.changes


def test_a_transient_failure_is_retried_and_counted_in_attempts(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:images"] = 2
    cluster.create(manifest())
    engine = make_engine(cluster, nodes, clock)

    engine.reconcile(cluster.get("m"))
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.step == StepId.IMAGES and w1.attempts == 1
    assert w1.last_error is not None and "connection reset" in w1.last_error.message

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert nodes.changes["w1:images"] == 1


def test_a_step_failing_transiently_too_often_fails_the_node(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:images"] = 99
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED
    assert cluster.status().node("w1").phase == NodePhase.ROLLED_BACK  # type: ignore[union-attr]


def test_deleting_the_migration_during_drain_uncordons_the_node_and_changes_nothing_on_it(
    clock: Clock,
) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "1h"}, staging="AfterCordon"))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    assert cordoned(cluster, "w1")

    result = engine.reconcile(cluster.get("m"), stopping=True)

    assert result.in_flight == 0
    assert not cordoned(cluster, "w1")
    assert keys.LOCK_ANNOTATION not in cluster.nodes["w1"].annotations
    assert nodes.changes["w1:configure"] == 0


def test_deleting_the_migration_after_the_switch_finishes_the_node(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:verify"] = 1
    cluster.create(manifest(rollout={"maxUnavailable": 1}))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    assert cluster.status().node("w1").step == StepId.VERIFY  # type: ignore[union-attr]

    result = engine.reconcile(cluster.get("m"), stopping=True)

    assert result.in_flight == 0
    assert cluster.status().node("w1").phase == NodePhase.SUCCEEDED  # type: ignore[union-attr]
    assert cluster.status().node("w2").phase == NodePhase.PENDING  # type: ignore[union-attr]


def test_manual_rollback_leaves_the_failed_node_cordoned_for_inspection(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "switch"
    cluster.create(manifest(rollback="Manual"))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED
    assert cluster.status().node("w1").phase == NodePhase.FAILED  # type: ignore[union-attr]
    assert cluster.nodes["w1"].unschedulable
    assert nodes.changes["w1:undo"] == 0


def test_plan_mode_probes_reports_and_changes_nothing(clock: Clock) -> None:
    cluster = FakeCluster([*workers(2), FakeNode("done", runtime="containerd://1.6.20")], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(mode="Plan"))
    engine = make_engine(cluster, nodes, clock)

    result = engine.reconcile(cluster.get("m"))
    again = engine.reconcile(cluster.get("m"))

    assert result.phase == again.phase == Phase.PLANNED
    status = cluster.status()
    assert status.report_config_map == "shimshift-system/m-plan"
    assert {n.name: n.phase for n in status.nodes} == {
        "done": NodePhase.SKIPPED,
        "w1": NodePhase.PENDING,
        "w2": NodePhase.PENDING,
    }
    report = json.loads(cluster.reports["m"]["report.json"])
    assert sorted(n["name"] for n in report["nodes"]) == ["w1", "w2"]
    assert "w1" in cluster.reports["m"]["report.md"]
    assert set(nodes.changes) == {"w1:facts", "w2:facts"}  # the read-only probe, once per node
    assert nodes.changes["w1:facts"] == 1 and not cluster.changes
    assert not any(n.unschedulable for n in cluster.nodes.values())
