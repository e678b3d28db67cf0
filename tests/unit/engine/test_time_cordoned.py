"""The time a node is out of service: each node's record holds when shimshift cordoned and uncordoned
it and the seconds between, and `shimshift_node_unschedulable_seconds` observes it once per node.

We test these aspects:
- the figure is read off the step records (the cordon's Done to the finish's or rollback's Done), so a
  crash in between, or inside the finish step, still gives it (the re-run's Done ends it);
- a node an admin had cordoned, or one still cordoned, has no figure and is not observed;
- the record round-trips through storage with its three fields, which the CRD schema declares (the
  API server prunes what it does not);
- a rollout observes one sample per node that was uncordoned, labelled by its NodeMigration.
"""

from __future__ import annotations

import pytest

from shimshift.engine import Engine
from shimshift.metrics import Metrics
from shimshift.model.cordoned import (
    cordoned_at,
    cordoned_parts,
    seconds_between,
    step_seconds,
    with_cordon_times,
)
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, NodeRecord, StepRecord, StepState
from shimshift.ports import EngineConfig
from shimshift.resources import load_node_crd
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, Crash, FakeCluster, FakeNodes, manifest, workers

T0 = "2026-01-01T00:00:00Z"


def _at(seconds: int) -> str:
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


def _cordoned(was_unschedulable: bool = False) -> NodeRecord:
    record = NodeRecord("w1", NodePhase.IN_PROGRESS, was_unschedulable=was_unschedulable)
    for step, start, end in ((StepId.FACTS, 0, 2), (StepId.LOCK, 2, 2), (StepId.CORDON, 3, 4)):
        record = record.with_step(StepRecord(step, StepState.DONE, _at(start), _at(end)))
    return record


def _done(record: NodeRecord, step: StepId, start: int, end: int) -> NodeRecord:
    return with_cordon_times(record.with_step(StepRecord(step, StepState.DONE, _at(start), _at(end))))


def test_the_cordoned_time_runs_from_the_cordons_done_to_the_finishs_done() -> None:
    record = with_cordon_times(_cordoned())
    assert (record.cordoned_at, record.uncordoned_at, record.cordoned_seconds) == (_at(4), "", None)

    for step, start, end in ((StepId.DRAIN, 4, 30), (StepId.IMAGES, 31, 70), (StepId.VERIFY, 80, 95)):
        record = _done(record, step, start, end)
    assert record.cordoned_seconds is None  # still cordoned
    record = _done(record, StepId.FINISH, 95, 99)

    assert (record.cordoned_at, record.uncordoned_at, record.cordoned_seconds) == (_at(4), _at(99), 95)
    assert step_seconds(record, StepId.DRAIN) == 26 and step_seconds(record, StepId.SWITCH) is None
    assert cordoned_parts(record) == {
        StepId.DRAIN: 26,
        StepId.IMAGES: 39,
        StepId.VERIFY: 15,
        StepId.FINISH: 4,
    }
    assert with_cordon_times(record) == record


def test_a_finish_run_again_after_a_crash_ends_the_time_at_the_re_runs_done() -> None:
    # the first run of finish was recorded Started at 95 and died; the re-run, 60 s later, keeps that
    # record's start (the engine does) and is recorded Done at 158
    started = _cordoned().with_step(StepRecord(StepId.FINISH, StepState.STARTED, _at(95)))
    assert with_cordon_times(started).cordoned_seconds is None
    # as stored before the crash and read back by the restarted operator
    resumed = NodeRecord.from_storage(with_cordon_times(started).for_storage())

    record = _done(resumed, StepId.FINISH, 95, 158)

    assert record.cordoned_at == _at(4) and record.cordoned_seconds == 154


def test_a_rollback_ends_the_time_as_the_finish_would() -> None:
    failed = _cordoned().with_step(StepRecord(StepId.SWITCH, StepState.FAILED, _at(40), _at(50)))

    record = _done(failed, StepId.ROLLBACK, 50, 70)

    assert record.cordoned_seconds == 66


def test_a_step_done_before_the_cordon_is_not_a_part_of_the_cordoned_time() -> None:
    # what moving the images before the cordon will look like in the records
    record = NodeRecord("w1", NodePhase.IN_PROGRESS, was_unschedulable=False)
    for step, start, end in (
        (StepId.FACTS, 0, 2),
        (StepId.IMAGES, 2, 40),
        (StepId.CORDON, 40, 41),
        (StepId.DRAIN, 41, 60),
        (StepId.FINISH, 60, 62),
    ):
        record = _done(record, step, start, end)

    assert record.cordoned_seconds == 21
    assert cordoned_parts(record) == {StepId.DRAIN: 19, StepId.FINISH: 2}
    assert cordoned_parts(_cordoned()) == {}  # not uncordoned yet


def test_a_node_an_admin_had_cordoned_has_no_cordoned_time() -> None:
    record = _done(with_cordon_times(_cordoned(was_unschedulable=True)), StepId.FINISH, 95, 99)

    assert (record.cordoned_at, record.uncordoned_at, record.cordoned_seconds) == ("", "", None)
    assert "cordonedSeconds" not in record.for_storage()


def test_a_node_whose_cordon_failed_was_never_cordoned_by_shimshift() -> None:
    record = NodeRecord("w1", was_unschedulable=False).with_step(
        StepRecord(StepId.CORDON, StepState.FAILED, T0, _at(1))
    )
    assert cordoned_at(record) == ""
    assert _done(record, StepId.ROLLBACK, 1, 5).cordoned_seconds is None


@pytest.mark.parametrize(("start", "end"), [("", T0), (T0, ""), ("not a time", T0), (_at(10), _at(5))])
def test_no_figure_rather_than_a_wrong_one(start: str, end: str) -> None:
    assert seconds_between(start, end) is None


def test_the_three_fields_round_trip_through_storage_and_the_crd_declares_them() -> None:
    record = _done(with_cordon_times(_cordoned()), StepId.FINISH, 95, 99)
    stored = record.for_storage()

    assert {k: stored[k] for k in ("cordonedAt", "uncordonedAt", "cordonedSeconds")} == {
        "cordonedAt": _at(4),
        "uncordonedAt": _at(99),
        "cordonedSeconds": 95,
    }
    assert NodeRecord.from_storage(stored) == record
    version = load_node_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(stored) <= set(schema), "the API server would prune what the schema does not declare"
    assert schema["cordonedSeconds"]["type"] == "integer"
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["CordonedSeconds"] == ".status.cordonedSeconds"
    assert "out of service" in schema["cordonedSeconds"]["description"]  # for kubectl explain


# --- the engine -------------------------------------------------------------------------------------


def _engine(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, metrics: Metrics) -> Engine:
    return Engine(
        cluster,
        lambda migration: nodes,
        config=EngineConfig(drain_pass_wait=5.0),
        observer=metrics,
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
    )


def _samples(metrics: Metrics, migration: str = "m") -> tuple[float, float]:
    """(count, sum) of shimshift_node_unschedulable_seconds{migration}."""
    labels = {"migration": migration}
    count = metrics.registry.get_sample_value("shimshift_node_unschedulable_seconds_count", labels)
    total = metrics.registry.get_sample_value("shimshift_node_unschedulable_seconds_sum", labels)
    return count or 0.0, total or 0.0


def _expected_seconds(record: NodeRecord) -> int | None:
    cordon = next(s for s in record.steps if s.id == StepId.CORDON)
    ended = next(s for s in record.steps if s.id in (StepId.FINISH, StepId.ROLLBACK))
    return seconds_between(cordon.finished_at, ended.finished_at)


def _settle(engine: Engine, cluster: FakeCluster, clock: Clock) -> None:
    for _ in range(200):
        result = engine.reconcile(cluster.get("m"))
        if result.in_flight == 0 and result.phase.value in ("Succeeded", "Failed", "Paused"):
            return
        clock.advance(max(result.delay, 1.0))
    raise AssertionError("the rollout did not settle")


def test_a_rollout_records_each_nodes_cordoned_time_and_observes_it_once() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(2, pods=["default/a", "default/b"]), clock)
    cluster.nodes["w2"].unschedulable = True  # an admin's cordon: not shimshift's time
    cluster.create(manifest(rollout={"maxUnavailable": 2}))
    nodes = FakeNodes(cluster)
    metrics = Metrics()
    engine = _engine(cluster, nodes, clock, metrics)

    _settle(engine, cluster, clock)
    _settle(engine, cluster, clock)  # passes over a settled rollout observe nothing more

    w1, w2 = cluster.status().node("w1"), cluster.status().node("w2")
    assert w1 is not None and w2 is not None
    assert w1.phase == NodePhase.SUCCEEDED and w1.cordoned_seconds is not None
    assert w1.cordoned_seconds == _expected_seconds(w1) and w1.cordoned_seconds >= 5  # a drain pass
    assert w2.phase == NodePhase.SUCCEEDED and w2.cordoned_seconds is None
    assert _samples(metrics) == (1.0, float(w1.cordoned_seconds))


def test_a_rolled_back_node_is_observed_too() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1, pods=["default/a"]), clock)
    cluster.create(manifest())
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "switch"
    metrics = Metrics()

    _settle(_engine(cluster, nodes, clock, metrics), cluster, clock)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert w1.cordoned_seconds is not None and w1.cordoned_seconds == _expected_seconds(w1)
    assert not cluster.nodes["w1"].unschedulable
    assert _samples(metrics) == (1.0, float(w1.cordoned_seconds))


def test_a_crash_inside_the_finish_step_counts_until_the_restarted_operators_finish() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1, pods=["default/a"]), clock)
    cluster.create(manifest())
    nodes = FakeNodes(cluster)
    nodes.crash_after = "w1:finish"
    before = Metrics()
    with pytest.raises(Crash):
        _settle(_engine(cluster, nodes, clock, before), cluster, clock)
    crashed = cluster.status().node("w1")
    assert crashed is not None and crashed.step == StepId.FINISH and crashed.step_state == StepState.STARTED
    assert crashed.cordoned_at and crashed.cordoned_seconds is None
    first_start = crashed.steps[-1].started_at
    clock.advance(60)  # the operator is down for a minute

    after = Metrics()
    run = _engine(cluster, nodes, clock, after)
    _settle(run, cluster, clock)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.SUCCEEDED
    finish = next(s for s in w1.steps if s.id == StepId.FINISH)
    assert finish.started_at == first_start  # the re-run kept the first run's start
    assert w1.cordoned_at == crashed.cordoned_at
    assert w1.cordoned_seconds == _expected_seconds(w1)
    assert w1.cordoned_seconds is not None and w1.cordoned_seconds >= 60  # the outage counts
    assert _samples(before) == (0.0, 0.0)
    assert _samples(after) == (1.0, float(w1.cordoned_seconds))


def test_an_engine_without_metrics_records_the_time_all_the_same() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    cluster.create(manifest())
    assert run_to_end(cluster, FakeNodes(cluster), clock).phase.value == "Succeeded"
    record = cluster.status().node("w1")
    assert record is not None and record.cordoned_seconds is not None
