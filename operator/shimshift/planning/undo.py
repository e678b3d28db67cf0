"""The rollback window as a pure function: which Succeeded nodes are rolled back on request, which are
committed, which requests are refused, and what the window condition says.

A node whose migration Succeeded keeps Docker (stopped, /var/lib/docker intact) and its backups under
/var/lib/shimshift/<migration>/backup until the NodeMigration is committed (`spec.commit: true`), so
until then it can be rolled back on request: the Node annotation `shimshift.io/undo` (any value; a
one-shot request, removed once handled) or its name in `spec.undo` (level-triggered: listed nodes are
undone while the window is open; a failed undo is not retried from the list, set the annotation to try
again). An undo request wins over a commit of the same node. A request for a node that did not
succeed, or whose window is committed, is refused: the UndoRefused condition and a Warning Event name
the node and say what to do.

Pure: values in, values out (`planning.rollout.decide` applies the result).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from shimshift.model import keys
from shimshift.model.keys import StepId
from shimshift.model.spec import DockerPolicy, NodeMigrationSpec
from shimshift.model.status import (
    UNDO_BY_ANNOTATION,
    UNDO_BY_SPEC,
    Condition,
    ConditionReason,
    ConditionType,
    NodePhase,
    NodeRecord,
    StepRecord,
    StepState,
)
from shimshift.model.timestamps import iso
from shimshift.planning.cluster import Node
from shimshift.planning.findings import name_some

#: How a record names the `spec.undo` request (an annotation request is `annotation=<value>`).
SPEC_REQUEST = UNDO_BY_SPEC
ANNOTATION_REQUEST = UNDO_BY_ANNOTATION
#: Nodes named in the window and refusal messages, the rest counted.
NAMED = 10


@dataclass(frozen=True)
class UndoWindow:
    """What this pass begins and refuses."""

    undo: Mapping[str, str]  # node -> its request (SPEC_REQUEST or ANNOTATION_REQUEST + value)
    commit: tuple[str, ...]
    refused: tuple[str, ...]  # one message per refused request, naming the node and what to do


def annotation_request(node: Node | None) -> str | None:
    """The node's undo request as a record keeps it (None: the node carries no annotation)."""
    if node is None or keys.UNDO_ANNOTATION not in node.annotations:
        return None
    return ANNOTATION_REQUEST + node.annotations[keys.UNDO_ANNOTATION]


def _refusal(record: NodeRecord | None, name: str, how: str, migration: str) -> str:
    withdraw = (
        f"remove the {keys.UNDO_ANNOTATION} annotation from node {name}"
        if how.startswith(ANNOTATION_REQUEST)
        else f"remove {name} from spec.undo"
    )
    if record is None:
        return f"node {name}: not migrated by NodeMigration {migration}, nothing to undo; {withdraw}"
    if record.committed:
        return (
            f"node {name}: its rollback window is committed (spec.commit): Docker per spec.docker and its "
            f"backups are gone, so shimshift cannot undo it; {withdraw} (going back to Docker is a manual "
            "reinstall now)"
        )
    if record.phase in (NodePhase.IN_PROGRESS, NodePhase.ROLLING_BACK, NodePhase.PENDING):
        return (
            f"node {name}: its migration is {record.phase}, not Succeeded; the request stays and is acted "
            f"on once it succeeds (or {withdraw})"
        )
    return (
        f"node {name}: its migration ended {record.phase}, not Succeeded, so it already runs Docker "
        f"(or was never changed); nothing to undo, {withdraw}"
    )


def plan_window(
    spec: NodeMigrationSpec, migration: str, records: Sequence[NodeRecord], nodes: Sequence[Node]
) -> UndoWindow:
    """Which records begin an undo or a commit this pass, and the requests refused."""
    by_node = {n.name: n for n in nodes}
    by_record = {r.name: r for r in records}
    requests: dict[str, str] = {}
    for name in spec.undo:
        requests.setdefault(name, SPEC_REQUEST)
    for r in records:
        asked = annotation_request(by_node.get(r.name))
        if asked is not None:
            requests[r.name] = asked  # the one-shot request wins: it may retry a failed undo
    undo: dict[str, str] = {}
    refused: list[str] = []
    for name in sorted(requests):
        how = requests[name]
        record = by_record.get(name)
        if record is None and how.startswith(ANNOTATION_REQUEST):
            continue  # another NodeMigration's node: its own migration answers
        if record is not None and how == SPEC_REQUEST and record.undone_on_request:
            continue  # done: listed nodes stay listed until someone edits the spec
        if (
            record is not None
            and record.phase == NodePhase.SUCCEEDED
            and not record.committed
            and not (how == SPEC_REQUEST and record.undo_failed)
        ):
            undo[name] = how
        elif record is not None and record.phase == NodePhase.SUCCEEDED and not record.committed:
            continue  # spec.undo after a failed undo: the record says why; the annotation retries
        else:
            refused.append(_refusal(record, name, how, migration))
    commit: tuple[str, ...] = ()
    if spec.commit:
        commit = tuple(
            r.name
            for r in records
            if r.phase == NodePhase.SUCCEEDED and not r.committed and r.name not in requests
        )
    return UndoWindow(undo, commit, tuple(refused))


def limited(window: UndoWindow, capacity: int) -> UndoWindow:
    """`window` with at most `capacity` undos (each cordons and drains its node, as a wave would)."""
    names = sorted(window.undo)[: max(0, capacity)]
    return replace(window, undo={n: window.undo[n] for n in names})


def begin(records: Sequence[NodeRecord], window: UndoWindow, now: dt.datetime) -> tuple[NodeRecord, ...]:
    """`records` with the undo and commit steps of `window` recorded as Started (in flight)."""
    at = iso(now)
    out = []
    for r in records:
        if r.name in window.undo:
            r = replace(
                r, phase=NodePhase.ROLLING_BACK, attempts=0, last_error=None, undo_request=window.undo[r.name]
            ).with_step(StepRecord(StepId.UNDO, StepState.STARTED, started_at=at))
        elif r.name in window.commit:
            r = replace(r, phase=NodePhase.IN_PROGRESS, attempts=0).with_step(
                StepRecord(StepId.COMMIT, StepState.STARTED, started_at=at)
            )
        out.append(r)
    return tuple(out)


def commit_effect(spec: NodeMigrationSpec, migration: str) -> str:
    """What a commit does on each node, in words."""
    docker = (
        "stops and disables Docker and cri-dockerd and removes /var/run/docker.sock (spec.docker: Stop)"
        if spec.docker == DockerPolicy.STOP
        else "leaves Docker installed and stopped (spec.docker: Keep)"
    )
    return (
        f"{docker}, and removes the backups under {keys.NODE_STATE_DIR}/{migration}/backup; after it no "
        "node can be undone"
    )


def plan_note(spec: NodeMigrationSpec, migration: str, planned: Sequence[str]) -> str:
    """The plan report's rollback window paragraph: what stays until the commit, and what it does."""
    nodes = f"{len(planned)} planned node(s)" + (f" ({name_some(planned, NAMED)})" if planned else "")
    when = (
        "spec.commit is true: each node is committed as soon as it succeeds, so the window closes at once"
        if spec.commit
        else "spec.commit is false: the window stays open until it is set to true"
    )
    return (
        "After a node succeeds, Docker stays installed and stopped and its backups stay "
        f"under {keys.NODE_STATE_DIR}/{migration}/backup, so it can be rolled back to Docker on request "
        f"(annotate the Node {keys.UNDO_ANNOTATION}=<anything> or list it in spec.undo) until the "
        f"NodeMigration is committed. {when}. The commit, on {nodes}, {commit_effect(spec, migration)}"
    )


def window_condition(
    spec: NodeMigrationSpec,
    migration: str,
    records: Sequence[NodeRecord],
    previous: Sequence[Condition],
    now: dt.datetime,
    generation: int,
) -> Condition:
    """RollbackWindow: True while a Succeeded node is not committed (it can be undone on request)."""
    open_ = [r.name for r in records if r.phase == NodePhase.SUCCEEDED and not r.committed]
    if open_:
        status, reason = "True", ConditionReason.WINDOW_OPEN
        how = (
            f"commit is under way (spec.commit): it {commit_effect(spec, migration)}"
            if spec.commit
            else f"set spec.commit: true to end it: it {commit_effect(spec, migration)}"
        )
        message = (
            f"rollback window open: {len(open_)} Succeeded node(s) ({name_some(open_, NAMED)}) can be rolled "
            f"back to Docker on request (annotate the Node {keys.UNDO_ANNOTATION}=<anything> or list it in "
            f"spec.undo); {how}"
        )
    else:
        committed = sum(1 for r in records if r.committed)
        status, reason = "False", ConditionReason.COMMITTED
        message = f"{committed} node(s) committed: undo is no longer possible" if committed else ""
    return _condition(ConditionType.ROLLBACK_WINDOW, status, reason, message, previous, now, generation)


def refused_condition(
    refused: Sequence[str], previous: Sequence[Condition], now: dt.datetime, generation: int
) -> Condition:
    """UndoRefused: True while a request to undo a node is refused; the message says why, per node."""
    if refused:
        more = len(refused) - NAMED
        message = "; ".join(refused[:NAMED]) + (f"; and {more} more" if more > 0 else "")
        return _condition(
            ConditionType.UNDO_REFUSED,
            "True",
            ConditionReason.UNDO_NOT_POSSIBLE,
            message,
            previous,
            now,
            generation,
        )
    return _condition(
        ConditionType.UNDO_REFUSED, "False", ConditionReason.NO_REFUSED_UNDO, "", previous, now, generation
    )


def _condition(
    type_: ConditionType,
    status: str,
    reason: ConditionReason,
    message: str,
    previous: Sequence[Condition],
    now: dt.datetime,
    generation: int,
) -> Condition:
    before = next((c for c in previous if c.type == type_), None)
    since = before.last_transition_time if before is not None and before.status == status else iso(now)
    return Condition(type_, status, reason, message, since, generation)
