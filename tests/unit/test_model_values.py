"""Small value types: durations, label selectors, status round trips."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shimshift.model.durations import format_duration, parse_duration
from shimshift.model.keys import StepId
from shimshift.model.selectors import parse_label_selector
from shimshift.model.status import (
    Condition,
    LastError,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
    StepRecord,
    StepState,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400)],
)
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "5d", "1h 30m", "-5s"])
def test_bad_durations_are_rejected_with_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 30s"):
        parse_duration(text)


@given(st.integers(0, 10**6))
def test_formatted_durations_parse_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_label_selector_strings_parse_every_operator() -> None:
    sel = parse_label_selector("app=web,tier!=db,env in (prod, stage),!legacy,team,zone notin (a)")
    assert sel.matches({"app": "web", "env": "prod", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "tier": "db"})
    assert not sel.matches({"app": "web", "env": "dev", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "env": "prod"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "zone": "a"})


@pytest.mark.parametrize("text", ["app in web", "a=b=c", "env in ()", "=x"])
def test_bad_label_selector_strings_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="app=web"):
        parse_label_selector(text)


def test_status_round_trips_through_storage() -> None:
    record = NodeRecord(
        name="n1",
        phase=NodePhase.FAILED,
        attempts=2,
        was_unschedulable=False,
        last_error=LastError("configure", "CRI plugin not ok", "ctr plugins ls", 1, "error"),
    ).with_step(StepRecord(StepId.CONFIGURE, StepState.FAILED, "2026-01-01T00:00:00Z"))
    status = MigrationStatus(
        phase=Phase.PAUSED,
        observed_generation=3,
        conditions=(Condition("Progressing", "False", "MaxFailures", "1 node failed", "t", 3),),
        nodes=(record, NodeRecord(name="n2", phase=NodePhase.SUCCEEDED)),
    )
    stored = status.for_storage()
    assert stored["summary"] == {
        "total": 2,
        "pending": 0,
        "inProgress": 0,
        "succeeded": 1,
        "skipped": 0,
        "failed": 1,
        "rolledBack": 0,
        "held": 0,
        "progress": "1/2",
    }
    assert stored["failedNodes"] == [
        {"name": "n1", "phase": "Failed", "step": "configure", "message": "CRI plugin not ok"}
    ]
    # the NodeMigration's status keeps no per-node record: each one round-trips through its own object
    again = MigrationStatus.from_storage(stored)
    assert again == replace(status, nodes=())
    assert NodeRecord.from_storage(record.for_storage()) == record
    assert record.step is StepId.CONFIGURE and record.step_state is StepState.FAILED


def test_a_step_record_replaces_the_previous_record_of_the_same_step() -> None:
    r = NodeRecord(name="n").with_step(StepRecord(StepId.DRAIN, StepState.STARTED))
    r = r.with_step(StepRecord(StepId.DRAIN, StepState.DONE))
    assert [(s.id, s.state) for s in r.steps] == [(StepId.DRAIN, StepState.DONE)]


def test_a_held_node_is_skipped_but_not_done_in_the_progress() -> None:
    from shimshift.model.keys import HOLD_REASON

    nodes = (
        NodeRecord(name="n1", phase=NodePhase.SUCCEEDED),
        NodeRecord(name="n2", phase=NodePhase.SKIPPED, skip_reason="already on containerd"),
        NodeRecord(name="n3", phase=NodePhase.SKIPPED, skip_reason=f"{HOLD_REASON}: storage node"),
    )
    summary = MigrationStatus(phase=Phase.SUCCEEDED, nodes=nodes).summary()
    assert summary["skipped"] == 2 and summary["held"] == 1
    assert summary["progress"] == "2/3", "the held node is still on Docker"
