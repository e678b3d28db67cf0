"""Each node's record lives in its own NodeMigrationNode; the NodeMigration's status stays bounded;
an operator of this version finishes a rollout whose status a previous version wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.nodestate import (
    MAX_NAME,
    belongs_to,
    child_manifest,
    child_name,
    label_value,
    migration_of,
    migration_selector,
    record_of,
)
from shimshift.model.status import (
    FAILED_LISTED,
    LastError,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
    StepRecord,
    StepState,
)
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, Crash, FakeCluster, FakeNodes, manifest, workers

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")


def test_a_child_is_named_migration_dot_node_and_labelled_with_both() -> None:
    body = child_manifest("m", "uid-m", "w1")
    assert body["metadata"]["name"] == "m.w1"
    assert body["metadata"]["labels"] == {keys.MIGRATION_LABEL: "m", keys.NODE_LABEL: "w1"}
    (owner,) = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (keys.KIND, "m", "uid-m")
    assert body["spec"] == {"migration": "m", "node": "w1"}


@pytest.mark.parametrize(
    ("migration", "node"),
    [("m" * 200, "n" * 60), ("m", "Node_With_Capitals"), ("m", "a" * 253)],
)
def test_a_name_too_long_or_invalid_falls_back_to_a_stable_hash(migration: str, node: str) -> None:
    name = child_name(migration, node)
    assert name.startswith("nmn-") and len(name) <= MAX_NAME
    assert name == child_name(migration, node)
    assert name != child_name(migration, node + "x")
    for value in (label_value(migration), label_value(node)):
        assert len(value) <= 63
    assert migration_selector(migration) == f"{keys.MIGRATION_LABEL}={label_value(migration)}"


def test_a_child_whose_status_never_landed_reads_as_a_started_node() -> None:
    body = child_manifest("m", "uid-m", "w1")
    body["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    record = record_of(body)
    assert (record.name, record.phase, record.step) == ("w1", NodePhase.IN_PROGRESS, None)
    assert record.started_at == "2026-01-01T00:00:00Z"  # a child created without the annotation


def test_a_just_started_child_reads_as_started_on_the_operators_clock_not_the_api_servers() -> None:
    # the API server stamps creationTimestamp on its clock; the record's later writes carry the
    # operator's: the start the child is created with must read the same before and after them
    body = child_manifest("m", "uid-m", "w1", started_at="2026-01-01T00:00:42Z")
    assert body["metadata"]["annotations"] == {keys.STARTED_AT_ANNOTATION: "2026-01-01T00:00:42Z"}
    body["metadata"]["creationTimestamp"] = "2026-01-01T00:00:07Z"
    assert record_of(body) == NodeRecord("w1", NodePhase.IN_PROGRESS, started_at="2026-01-01T00:00:42Z")


def _succeeded(name: str) -> NodeRecord:
    record = NodeRecord(name=name, phase=NodePhase.SUCCEEDED, started_at="2026-01-01T00:00:00Z")
    for step in STEP_ORDER:
        record = record.with_step(
            StepRecord(step, StepState.DONE, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "x" * 80)
        )
    return record


def test_the_stored_status_of_a_5000_node_fleet_is_bounded() -> None:
    failed = [
        NodeRecord(f"f{i}", NodePhase.ROLLED_BACK, last_error=LastError("switch", "e" * 2000))
        for i in range(300)
    ]
    flying = [NodeRecord(f"r{i:04}", NodePhase.IN_PROGRESS) for i in range(500)]
    nodes = (*[_succeeded(f"n{i:04}") for i in range(4200)], *failed, *flying)
    stored = MigrationStatus(phase=Phase.PROGRESSING, nodes=nodes).for_storage()
    assert "nodes" not in stored
    assert len(stored["failedNodes"]) == FAILED_LISTED
    assert stored["failedNotListed"] == 300 - FAILED_LISTED
    assert stored["inFlight"] == [r.name for r in flying]
    assert stored["summary"]["total"] == 5000
    assert len(json.dumps(stored)) < 64 * 1024


def test_every_step_is_recorded_in_the_nodes_own_object_and_the_status_holds_counts(clock: Clock) -> None:
    cluster = FakeCluster(workers(3, pods=["default/a"]), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))

    run_to_end(cluster, nodes, clock)

    assert sorted(cluster.children) == ["m.w1", "m.w2", "m.w3"]
    for name, (owner, raw) in cluster.children.items():
        record = NodeRecord.from_storage(raw)
        assert owner == "m" and name == f"m.{record.name}"
        assert record.phase == NodePhase.SUCCEEDED
        assert [s.id for s in record.steps] == list(STEP_ORDER)
    stored = cluster.objects["m"]["status"]
    assert "nodes" not in stored
    assert stored["summary"]["succeeded"] == 3 and stored["inFlight"] == []
    # no status write ever carried per-node step records, and none exceeded a few KiB
    for write in cluster.status_writes:
        assert "steps" not in json.dumps(write)
    assert max(len(json.dumps(w)) for w in cluster.status_writes) < 4096


def test_in_flight_in_the_stored_status_never_exceeds_max_unavailable(clock: Clock) -> None:
    cluster = FakeCluster(workers(7), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 3}))

    run_to_end(cluster, nodes, clock)

    assert max(len(w.get("inFlight", [])) for w in cluster.status_writes) == 3


def test_a_settled_rollout_writes_nothing_more(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())
    run_to_end(cluster, nodes, clock)
    writes = cluster.writes

    engine = make_engine(cluster, nodes, clock)
    for _ in range(3):
        engine.reconcile(cluster.get("m"))
        clock.advance(60)

    assert cluster.writes == writes


# --- an operator of this version takes over a rollout the previous version wrote ----------------------


def _previous_version_status(cluster: FakeCluster, nodes: FakeNodes, clock: Clock) -> dict[str, Any]:
    """Run a rollout until w1 is done and the operator dies inside w2's images step (the change made,
    not yet recorded), then write its status as the previous version did: every node's record in
    status.nodes[], no NodeMigrationNode objects."""
    engine = make_engine(cluster, nodes, clock)
    nodes.crash_after = "w2:images"
    with pytest.raises(Crash):
        for _ in range(50):
            engine.reconcile(cluster.get("m"))
            clock.advance(1)
    status = cluster.status()
    w2 = status.node("w2")
    assert w2 is not None and (w2.step, w2.step_state) == (StepId.IMAGES, StepState.STARTED)
    legacy = {**cluster.objects["m"]["status"], "nodes": [n.for_storage() for n in status.nodes]}
    for key in ("inFlight", "failedNodes", "failedNotListed"):
        legacy.pop(key, None)
    cluster.objects["m"]["status"] = legacy
    cluster.children.clear()
    return legacy


def _w1_done_w2_midway(clock: Clock) -> tuple[FakeCluster, FakeNodes]:
    cluster = FakeCluster(workers(3, pods=["default/a"]), clock)
    cluster.create(manifest(rollout={"maxUnavailable": 1}))
    nodes = FakeNodes(cluster)
    return cluster, nodes


def test_a_rollout_written_by_the_previous_version_is_finished_without_redoing_a_change(clock: Clock) -> None:
    cluster, nodes = _w1_done_w2_midway(clock)
    legacy = _previous_version_status(cluster, nodes, clock)
    phases = {n["name"]: n["phase"] for n in legacy["nodes"]}
    assert phases["w1"] == NodePhase.SUCCEEDED and phases["w2"] == NodePhase.IN_PROGRESS
    w1_before = NodeRecord.from_storage(next(n for n in legacy["nodes"] if n["name"] == "w1"))

    result = run_to_end(cluster, nodes, clock)

    assert result.phase == Phase.SUCCEEDED
    assert "nodes" not in cluster.objects["m"]["status"]
    assert NodeRecord.from_storage(cluster.children["m.w1"][1]) == w1_before  # its record, unchanged
    for name in ("w1", "w2", "w3"):
        record = NodeRecord.from_storage(cluster.children[f"m.{name}"][1])
        assert record.phase == NodePhase.SUCCEEDED
        assert [s.id for s in record.steps] == list(STEP_ORDER)
        for op in NODE_CHANGES:
            assert nodes.changes[f"{name}:{op}"] == 1, f"{name}:{op} changed twice"
        assert cluster.changes[f"{name}:cordon"] == 1


@pytest.mark.parametrize("write", [1, 2, 3])
def test_a_crash_while_moving_the_old_records_loses_none(clock: Clock, write: int) -> None:
    cluster, nodes = _w1_done_w2_midway(clock)
    _previous_version_status(cluster, nodes, clock)
    cluster.crash_on_write = cluster.writes + write  # the first writes of the next pass move records

    with pytest.raises(Crash):
        make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    cluster.crash_on_write = None
    moved = {NodeRecord.from_storage(r).name for _, r in cluster.children.values()}
    if "nodes" not in cluster.objects["m"]["status"]:
        assert moved >= {"w1", "w2"}  # the old list goes only once every record is in a child

    run_to_end(cluster, nodes, clock)

    for name in ("w1", "w2", "w3"):
        for op in NODE_CHANGES:
            assert nodes.changes[f"{name}:{op}"] == 1
    assert cluster.status().phase == Phase.SUCCEEDED


def test_a_child_of_a_deleted_namesake_is_not_a_record_of_the_new_nodemigration() -> None:
    old = child_manifest("m", "uid-old", "w1")
    assert migration_of(old) == ("m", "uid-old")
    assert belongs_to(migration_of(old), "m", "uid-old")
    assert not belongs_to(migration_of(old), "m", "uid-new")
    assert not belongs_to(migration_of(old), "other", "uid-old")


def test_the_current_column_names_five_nodes_and_counts_the_rest() -> None:
    flying = tuple(NodeRecord(f"n{i}", NodePhase.IN_PROGRESS) for i in range(8))
    stored = MigrationStatus(nodes=flying).for_storage()
    assert stored["currentNodes"] == "n0,n1,n2,n3,n4 +3 more"
    assert len(stored["inFlight"]) == 8
    assert MigrationStatus(nodes=flying[:2]).for_storage()["currentNodes"] == "n0,n1"
