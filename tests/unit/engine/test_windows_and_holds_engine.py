"""The engine against fake ports with a fake clock: maintenance windows, holds and blocking pods, end to end."""

from __future__ import annotations

import datetime as dt

from testbed.kubeapi.tables import jsonpath

from shimshift.entry.statusview import render_status
from shimshift.model.status import ConditionReason, NodePhase, Phase
from shimshift.model.timestamps import parse_iso
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import CRD, Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers


def progressing(cluster: FakeCluster) -> tuple[str, str]:
    """reason and message of the stored Progressing condition (what `kubectl get nm` shows)."""
    condition = next(c for c in cluster.stored_status().conditions if c.type == "Progressing")
    return condition.reason, condition.message


def test_nodes_start_only_inside_the_window_and_the_one_in_flight_finishes_after_it_closes(
    clock: Clock,
) -> None:
    # T0 is Thursday 2026-01-01 00:00 UTC; the window is open 7s each day at 02:00, and a fake node takes
    # 5s (fake time): w1 and w2 start in the first window (w2 finishes after it closed), w3 the next day
    cluster = FakeCluster(workers(3, pods=["default/a"]), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"windows": [{"start": "02:00", "duration": "7s"}], "timeZone": "UTC"}))
    engine = make_engine(cluster, nodes, clock)

    result = engine.reconcile(cluster.get("m"))

    assert result.in_flight == 0 and result.delay == 2 * 3600  # the next pass when the window opens
    assert progressing(cluster) == (
        ConditionReason.WAITING_FOR_WINDOW,
        "waiting for window (opens in 2h, Thu 2026-01-01 02:00 UTC); 3 node(s) pending",
    )
    assert nodes.changes == {} and not any(n.unschedulable for n in cluster.nodes.values())
    # `kubectl get nm` shows it: the CRD's Message column, evaluated as the API server's table does
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    message = next(c for c in columns if c["name"] == "Message")
    assert jsonpath(cluster.objects["m"], message["jsonPath"]).startswith("waiting for window (opens in 2h")

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    status = cluster.status()
    assert [r.phase for r in status.nodes] == [NodePhase.SUCCEEDED] * 3
    started = {r.name: parse_iso(r.started_at) for r in status.nodes}
    finished = {r.name: parse_iso(r.finished_at) for r in status.nodes}
    day = dt.timedelta(days=1)
    opens = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    assert started["w1"] == opens and opens < started["w2"] < opens + dt.timedelta(seconds=7)  # type: ignore[operator]
    assert finished["w2"] > opens + dt.timedelta(seconds=7)  # type: ignore[operator]
    assert started["w3"] == opens + day  # not before the next window
    assert not any(n.unschedulable for n in cluster.nodes.values())


def test_a_held_node_is_skipped_with_its_reason_untouched_and_migrated_once_the_hold_is_removed(
    clock: Clock,
) -> None:
    held = FakeNode("w2", annotations={"shimshift.io/hold": "RAID rebuild until Friday"})
    cluster = FakeCluster([FakeNode("w1"), held, FakeNode("w3")], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 3}))

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    w2 = cluster.status().node("w2")
    assert w2 is not None and w2.phase == NodePhase.SKIPPED
    assert w2.skip_reason == "held by shimshift.io/hold: RAID rebuild until Friday"
    assert cluster.nodes["w2"].runtime.startswith("docker://")
    assert not any(key.startswith("w2:") for key in nodes.changes)
    assert "1 held by shimshift.io/hold (w2)" in progressing_or_complete(cluster)
    assert cluster.blocking_reads == 0  # no blockingPodSelector: no pod is read
    stored = cluster.objects["m"]["status"]
    assert stored["heldNodes"] == [
        {"name": "w2", "reason": "held by shimshift.io/hold: RAID rebuild until Friday"}
    ]
    assert stored["heldNotListed"] == 0
    shown = render_status(cluster.objects["m"], [], source="test", now=clock.now)
    assert "Held    w2: held by shimshift.io/hold: RAID rebuild until Friday" in shown

    del cluster.nodes["w2"].annotations["shimshift.io/hold"]
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.objects["m"]["status"]["heldNodes"] == []
    assert cluster.nodes["w2"].runtime.startswith("containerd://")


def progressing_or_complete(cluster: FakeCluster) -> str:
    return next(c.message for c in cluster.stored_status().conditions if c.status == "True")


def test_a_node_with_a_blocking_pod_waits_while_the_wave_takes_other_nodes(clock: Clock) -> None:
    cluster = FakeCluster(workers(3), clock)
    cluster.nodes["w1"].labelled_pods = {
        "jobs/nightly-backup": ({"app": "backup"}, "Running"),
        "jobs/old-backup": ({"app": "backup"}, "Succeeded"),  # finished: does not count
    }
    cluster.nodes["w2"].labelled_pods = {"jobs/done": ({"app": "backup"}, "Failed")}
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 1, "blockingPodSelector": "app=backup"}))
    engine = make_engine(cluster, nodes, clock)

    for _ in range(50):
        engine.reconcile(cluster.get("m"))
        clock.advance(1.0)
        if all(with_phase(cluster, n) == NodePhase.SUCCEEDED for n in ("w2", "w3")):
            break
    assert with_phase(cluster, "w1") == NodePhase.PENDING
    engine.reconcile(cluster.get("m"))
    assert progressing(cluster) == (
        ConditionReason.BLOCKED_BY_PODS,
        "waiting: 1 node(s) held back by pods matching spec.rollout.blockingPodSelector: w1 (jobs/nightly-backup)",
    )
    assert not cluster.nodes["w1"].unschedulable

    cluster.nodes["w1"].labelled_pods["jobs/nightly-backup"] = ({"app": "backup"}, "Succeeded")
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.nodes["w1"].runtime.startswith("containerd://")
    reads = cluster.blocking_reads
    assert reads > 0
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    assert cluster.blocking_reads == reads  # nothing pending: a settled rollout reads no pods


def with_phase(cluster: FakeCluster, name: str) -> NodePhase | None:
    record = cluster.status().node(name)
    return record.phase if record else None
