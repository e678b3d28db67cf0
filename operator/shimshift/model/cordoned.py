"""How long shimshift kept a node out of service: from its cordon to its uncordon, read off the step
records, so the figure survives an operator crash (nothing of it lives in memory).

The cordon moment is the cordon step's `Done` (its `finishedAt`); the uncordon moment is the `Done` of
the step that uncordons: finish, or rollback. Only a cordon shimshift made counts: a node an admin had
cordoned already (`wasUnschedulable`) was out of service before shimshift came and stays so after it.

Across a crash: a crash inside the finish (or rollback) step after its uncordon and before its `Done`
was recorded runs the step again, and the figure ends at that run's `Done` (the node may have been
schedulable from the first run on: the figure is then an upper bound); a crash inside the cordon step
ends at its re-run's `Done` likewise (a lower bound by at most the outage; the cordon is one API call).
Timestamps have whole seconds (`model.timestamps`), so the figure is whole seconds.

Pure: values in, values out.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.keys import StepId
from shimshift.model.status import NodeRecord, StepRecord, StepState
from shimshift.model.timestamps import parse_iso

#: The steps that uncordon a node shimshift cordoned, in the order their record is believed.
UNCORDONING_STEPS = (StepId.FINISH, StepId.ROLLBACK)


def _done(record: NodeRecord, step: StepId) -> StepRecord | None:
    return next((s for s in record.steps if s.id == step and s.state == StepState.DONE), None)


def cordoned_at(record: NodeRecord) -> str:
    """When shimshift cordoned the node ("" if it did not, or not yet)."""
    if record.was_unschedulable is not False:
        return ""
    cordon = _done(record, StepId.CORDON)
    return cordon.finished_at if cordon is not None else ""


def uncordoned_at(record: NodeRecord) -> str:
    """When the node shimshift cordoned was uncordoned ("" if it was not cordoned by shimshift, or is
    still cordoned: in flight, or failed with `rollback: Manual`)."""
    if not cordoned_at(record):
        return ""
    for step in UNCORDONING_STEPS:
        done = _done(record, step)
        if done is not None and done.finished_at:
            return done.finished_at
    return ""


def seconds_between(start: str, end: str) -> int | None:
    """Whole seconds from `start` to `end` (timestamps as `model.timestamps.iso` writes them); None
    when either is missing or unreadable, or `end` is before `start` (a clock step back: no figure
    rather than a wrong one)."""
    began, ended = parse_iso(start), parse_iso(end)
    if began is None or ended is None or ended < began:
        return None
    return int((ended - began).total_seconds())


def step_seconds(record: NodeRecord, step: StepId) -> int | None:
    """Whole seconds `step` took, from its `Started` to its `Done` (None if it is not done)."""
    done = _done(record, step)
    return seconds_between(done.started_at, done.finished_at) if done is not None else None


def cordoned_parts(record: NodeRecord) -> dict[StepId, int]:
    """Where the cordoned time went: the whole seconds of each step done while shimshift held the
    node cordoned (started at or after `cordonedAt`, done by `uncordonedAt`), in the order they ran;
    empty without both times. A step run before the cordon (the staged backup, configure and images
    of `spec.staging: BeforeCordon`) is not a part."""
    start, end = parse_iso(cordoned_at(record)), parse_iso(uncordoned_at(record))
    if start is None or end is None:
        return {}
    parts: dict[StepId, int] = {}
    for step in sorted(record.steps, key=lambda s: s.started_at):
        began, ended = parse_iso(step.started_at), parse_iso(step.finished_at)
        if step.state != StepState.DONE or step.id == StepId.CORDON or began is None or ended is None:
            continue
        if start <= began and ended <= end:
            parts[step.id] = int((ended - began).total_seconds())
    return parts


def with_cordon_times(record: NodeRecord) -> NodeRecord:
    """`record` with `cordonedAt`, `uncordonedAt` and `cordonedSeconds` derived from its step records
    (the engine applies it to every step it records `Done`; applying it again changes nothing)."""
    start = cordoned_at(record)
    end = uncordoned_at(record)
    seconds = seconds_between(start, end) if end else None
    return replace(record, cordoned_at=start, uncordoned_at=end, cordoned_seconds=seconds)
