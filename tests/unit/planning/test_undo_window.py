"""The rollback window's decisions as pure functions: who is undone, who is committed, what is refused,
and which step a node in its undo or commit runs next."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.spec import NodeMigrationSpec, RollbackPolicy
from shimshift.model.status import NodePhase, NodeRecord, StepRecord, StepState
from shimshift.planning.cluster import Node
from shimshift.planning.undo import (
    begin,
    limited,
    plan_note,
    plan_window,
    window_condition,
)
from shimshift.steps.machine import next_step
from tests.unit.planning.factory import spec

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _spec(**fields: Any) -> NodeMigrationSpec:
    return spec(mode="Migrate", nodeNames=["a", "b", "c"], **fields)


def _succeeded(name: str, *extra: StepRecord) -> NodeRecord:
    steps = tuple(StepRecord(s, StepState.DONE) for s in STEP_ORDER)
    return NodeRecord(name, NodePhase.SUCCEEDED, StepId.FINISH, StepState.DONE, steps=steps + extra)


def _node(name: str, **annotations: str) -> Node:
    return Node(name, annotations=annotations)


COMMITTED = StepRecord(StepId.COMMIT, StepState.DONE)


def test_an_annotated_or_listed_succeeded_node_is_undone_with_its_request_named() -> None:
    records = [_succeeded("a"), _succeeded("b"), _succeeded("c")]
    nodes = [_node("a", **{keys.UNDO_ANNOTATION: "yes"}), _node("b"), _node("c")]

    window = plan_window(_spec(undo=["b"]), "m", records, nodes)

    assert dict(window.undo) == {"a": "annotation=yes", "b": "spec.undo"}
    assert window.commit == () and window.refused == ()


def test_commit_takes_every_succeeded_node_not_committed_and_not_asked_to_undo() -> None:
    records = [
        _succeeded("a"),
        _succeeded("b", COMMITTED),
        _succeeded("c"),
        NodeRecord("d", NodePhase.FAILED),
    ]
    nodes = [_node("a"), _node("b"), _node("c", **{keys.UNDO_ANNOTATION: ""})]

    window = plan_window(_spec(commit=True), "m", records, nodes)

    assert window.commit == ("a",)
    assert dict(window.undo) == {"c": "annotation="}


def test_refusals_name_the_node_and_what_to_do() -> None:
    records = [
        _succeeded("a", COMMITTED),
        NodeRecord("b", NodePhase.ROLLED_BACK),
        NodeRecord("c", NodePhase.IN_PROGRESS),
    ]
    nodes = [_node("a", **{keys.UNDO_ANNOTATION: "1"}), _node("b"), _node("c")]

    window = plan_window(_spec(undo=["b", "c", "z"]), "m", records, nodes)

    assert window.undo == {}
    a, b, c, z = window.refused
    assert a.startswith("node a: its rollback window is committed") and "annotation from node a" in a
    assert b.startswith("node b: its migration ended RolledBack") and "remove b from spec.undo" in b
    assert c.startswith("node c: its migration is InProgress") and "acted on once it succeeds" in c
    assert z.startswith("node z: not migrated by NodeMigration m")


def test_an_annotation_on_a_node_of_another_migration_is_left_to_it() -> None:
    window = plan_window(_spec(), "m", [], [_node("x", **{keys.UNDO_ANNOTATION: "1"})])
    assert window.undo == {} and window.refused == ()


def test_a_node_undone_from_the_list_is_not_refused_nor_undone_again() -> None:
    done = NodeRecord("a", NodePhase.ROLLED_BACK, undo_request="spec.undo")
    window = plan_window(_spec(undo=["a"]), "m", [done], [_node("a")])
    assert window.undo == {} and window.refused == ()


def test_a_failed_undo_is_retried_by_the_annotation_not_by_the_list() -> None:
    failed = _succeeded("a", StepRecord(StepId.UNDO, StepState.FAILED))
    assert plan_window(_spec(undo=["a"]), "m", [failed], [_node("a")]).undo == {}
    again = plan_window(_spec(undo=["a"]), "m", [failed], [_node("a", **{keys.UNDO_ANNOTATION: "2"})])
    assert dict(again.undo) == {"a": "annotation=2"}


def test_undos_begin_at_most_as_many_as_a_wave_holds() -> None:
    records = [_succeeded(n) for n in "abc"]
    window = limited(plan_window(_spec(undo=["a", "b", "c"]), "m", records, []), 2)
    assert sorted(window.undo) == ["a", "b"]
    assert limited(window, 0).undo == {}


def test_begin_records_the_undo_and_commit_steps_started_before_anything_runs() -> None:
    records = [_succeeded("a"), _succeeded("b")]
    window = plan_window(_spec(undo=["a"], commit=True), "m", records, [])

    a, b = begin(records, window, NOW)

    assert (a.phase, a.step, a.step_state, a.undo_request) == (
        NodePhase.ROLLING_BACK,
        StepId.UNDO,
        StepState.STARTED,
        "spec.undo",
    )
    assert (b.phase, b.step, b.step_state) == (NodePhase.IN_PROGRESS, StepId.COMMIT, StepState.STARTED)
    assert b.committed  # a commit that began closes the window: its backups may be half gone


def test_the_step_machine_runs_undo_then_rollback_and_ends_rolled_back() -> None:
    policy = RollbackPolicy.AUTOMATIC
    undoing = begin([_succeeded("a")], plan_window(_spec(undo=["a"]), "m", [_succeeded("a")], []), NOW)[0]
    assert next_step(undoing, policy).step == StepId.UNDO
    drained = undoing.with_step(StepRecord(StepId.UNDO, StepState.DONE))
    assert next_step(drained, policy) == next_step(drained, RollbackPolicy.MANUAL)
    assert (next_step(drained, policy).step, next_step(drained, policy).phase) == (
        StepId.ROLLBACK,
        NodePhase.ROLLING_BACK,
    )
    done = drained.with_step(StepRecord(StepId.ROLLBACK, StepState.DONE))
    assert (next_step(done, policy).step, next_step(done, policy).phase) == (None, NodePhase.ROLLED_BACK)


def test_a_failed_undo_ends_succeeded_after_its_rollback_uncordons() -> None:
    undoing = replace(_succeeded("a"), phase=NodePhase.ROLLING_BACK)
    failed = undoing.with_step(StepRecord(StepId.UNDO, StepState.FAILED))
    assert next_step(failed, RollbackPolicy.AUTOMATIC).step == StepId.ROLLBACK
    done = failed.with_step(StepRecord(StepId.ROLLBACK, StepState.DONE))
    assert next_step(done, RollbackPolicy.AUTOMATIC).phase == NodePhase.SUCCEEDED


def test_a_commit_ends_succeeded_whether_it_is_done_or_failed() -> None:
    committing = replace(_succeeded("a"), phase=NodePhase.IN_PROGRESS)
    started = committing.with_step(StepRecord(StepId.COMMIT, StepState.STARTED))
    assert next_step(started, RollbackPolicy.AUTOMATIC).step == StepId.COMMIT
    for state in (StepState.DONE, StepState.FAILED):
        ended = started.with_step(StepRecord(StepId.COMMIT, state))
        assert next_step(ended, RollbackPolicy.AUTOMATIC).step is None
        assert next_step(ended, RollbackPolicy.AUTOMATIC).phase == NodePhase.SUCCEEDED


def test_the_window_condition_and_the_plan_say_what_commit_will_do() -> None:
    spec = _spec(docker="Stop")
    condition = window_condition(spec, "m", [_succeeded("a"), _succeeded("b", COMMITTED)], (), NOW, 3)
    assert (condition.status, condition.reason, condition.observed_generation) == ("True", "NotCommitted", 3)
    assert "1 Succeeded node(s) (a)" in condition.message and "set spec.commit: true" in condition.message
    assert (
        "stops and disables Docker" in condition.message
        and "/var/lib/shimshift/m/backup" in condition.message
    )
    closed = window_condition(spec, "m", [_succeeded("b", COMMITTED)], (condition,), NOW, 3)
    assert (closed.status, closed.reason) == (
        "False",
        "Committed",
    ) and "undo is no longer possible" in closed.message

    note = plan_note(_spec(), "m", ["a", "b"])
    assert "spec.commit is false" in note and "2 planned node(s) (a, b)" in note
    assert "leaves Docker installed and stopped (spec.docker: Keep)" in note
