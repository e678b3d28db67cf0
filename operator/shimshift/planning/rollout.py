"""The fleet rules as a pure function of (spec, status, nodes, now): which nodes start, and the phase.

- Node selection is re-evaluated on every pass: new matching nodes join as Pending, nodes that left the
  selection before starting are dropped, nodes carrying the completion label or already on containerd
  are Skipped with their reason. Nodes in flight or finished keep their record whatever happens.
- Waves: a new wave of at most `maxUnavailable` workers starts only when no node is in flight and
  `pauseBetweenNodes` has passed since the last node finished; control-plane nodes go last, one at a
  time (the same waves `planning.waves` shows in the plan report).
- `spec.rollout.paused`, more than `maxFailures` failed nodes, Plan mode or deletion start nothing new;
  nodes in flight always run to the end of their step sequence (or roll back) so none is abandoned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from shimshift.model.spec import ControlPlanePolicy, Mode, NodeMigrationSpec
from shimshift.model.status import (
    Condition,
    ConditionReason,
    ConditionType,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
)
from shimshift.model.timestamps import iso, parse_iso
from shimshift.planning.cluster import Node
from shimshift.planning.findings import name_some
from shimshift.planning.selection import select_nodes
from shimshift.planning.waves import wave_size

IN_FLIGHT = frozenset({NodePhase.IN_PROGRESS, NodePhase.ROLLING_BACK})
#: Nodes named in a condition message, the rest counted: a wave of 500 stays a short message.
NAMED_IN_MESSAGES = 10
FAILED = frozenset({NodePhase.FAILED, NodePhase.ROLLED_BACK})


@dataclass(frozen=True)
class Decision:
    nodes: tuple[NodeRecord, ...]  # the status' node list after this pass (starts applied)
    start: tuple[str, ...]  # nodes that begin their step sequence now
    phase: Phase
    reason: ConditionReason  # of the Progressing/Paused/Complete condition that is True
    message: str
    wait_seconds: float | None = None  # when nothing can start before then (pauseBetweenNodes)


def reconcile_selection(
    spec: NodeMigrationSpec, records: Sequence[NodeRecord], nodes: Sequence[Node]
) -> tuple[NodeRecord, ...]:
    """`records` with newly selected nodes added and untouched ones updated or dropped, in name order."""
    selection = select_nodes(spec, nodes)
    by_name = {r.name: r for r in records}
    out: dict[str, NodeRecord] = {
        name: r
        for name, r in by_name.items()
        if r.phase != NodePhase.PENDING and r.phase != NodePhase.SKIPPED
    }
    for node in selection.selected:
        if node.name not in out:
            out[node.name] = NodeRecord(name=node.name)
    for skipped in selection.skipped:
        if skipped.node not in out:
            out[skipped.node] = NodeRecord(
                name=skipped.node, phase=NodePhase.SKIPPED, skip_reason=skipped.message
            )
    return tuple(out[name] for name in sorted(out))


def decide(
    spec: NodeMigrationSpec,
    status: MigrationStatus,
    nodes: Sequence[Node],
    now: dt.datetime,
    *,
    stopping: bool = False,
) -> Decision:
    """One pass of the fleet rules."""
    records = reconcile_selection(spec, status.nodes, nodes)
    control = {n.name for n in nodes if n.control_plane}
    in_flight = [r for r in records if r.phase in IN_FLIGHT]
    failures = [r for r in records if r.phase in FAILED]
    pending = [r for r in records if r.phase == NodePhase.PENDING]

    def result(
        phase: Phase,
        reason: ConditionReason,
        message: str,
        start: Sequence[str] = (),
        wait: float | None = None,
    ) -> Decision:
        started = set(start)
        updated = tuple(
            replace(r, phase=NodePhase.IN_PROGRESS, started_at=iso(now), attempts=0)
            if r.name in started
            else r
            for r in records
        )
        return Decision(updated, tuple(start), phase, reason, message, wait)

    if spec.mode == Mode.PLAN:
        return result(Phase.PLANNED, ConditionReason.PLAN_MODE, "mode is Plan: nothing is changed")
    if stopping:
        return result(
            Phase.PROGRESSING,
            ConditionReason.DELETING,
            f"finishing {len(in_flight)} node(s) in flight before deletion",
        )
    if len(failures) > spec.rollout.max_failures:
        names = name_some((r.name for r in failures), NAMED_IN_MESSAGES)
        return result(
            Phase.PAUSED,
            ConditionReason.MAX_FAILURES,
            f"{len(failures)} node(s) failed ({names}), more than spec.rollout.maxFailures="
            f"{spec.rollout.max_failures}; fix the cause (see status.failedNodes, or kubectl get nmn), "
            "then raise maxFailures or recreate the NodeMigration",
        )
    if not pending and not in_flight:
        if failures:
            return result(
                Phase.FAILED,
                ConditionReason.NODES_FAILED,
                f"finished; {len(failures)} node(s) failed and were rolled back",
            )
        return result(Phase.SUCCEEDED, ConditionReason.MIGRATED, "every selected node runs containerd")
    if spec.rollout.paused:
        return result(
            Phase.PAUSED, ConditionReason.PAUSED_BY_SPEC, "spec.rollout.paused is true: no new node starts"
        )
    if in_flight:
        names = name_some((r.name for r in in_flight), NAMED_IN_MESSAGES)
        return result(Phase.PROGRESSING, ConditionReason.NODES_IN_FLIGHT, f"migrating {names}")
    wait = _pause_left(spec, records, now)
    if wait > 0:
        return result(
            Phase.PROGRESSING,
            ConditionReason.PAUSE_BETWEEN_NODES,
            f"waiting {wait:.0f}s (spec.rollout.pauseBetweenNodes)",
            wait=wait,
        )
    workers = [r for r in pending if r.name not in control]
    if workers:
        selected_workers = sum(1 for r in records if r.name not in control and r.phase != NodePhase.SKIPPED)
        wave = [r.name for r in workers[: wave_size(spec.rollout, selected_workers)]]
        return result(
            Phase.PROGRESSING,
            ConditionReason.WAVE_STARTED,
            f"starting {name_some(wave, NAMED_IN_MESSAGES)}",
            start=wave,
        )
    if spec.rollout.control_plane == ControlPlanePolicy.EXCLUDE:  # pragma: no cover - selection skips them
        return result(Phase.SUCCEEDED, ConditionReason.MIGRATED, "every selected worker runs containerd")
    first = pending[0].name
    return result(
        Phase.PROGRESSING, ConditionReason.WAVE_STARTED, f"starting control-plane node {first}", start=[first]
    )


def _pause_left(spec: NodeMigrationSpec, records: Sequence[NodeRecord], now: dt.datetime) -> float:
    if spec.rollout.pause_between_nodes <= 0:
        return 0.0
    finished = [
        t
        for r in records
        if r.phase.finished and r.phase != NodePhase.SKIPPED
        if (t := parse_iso(r.finished_at))
    ]
    if not finished:
        return 0.0
    return max(0.0, spec.rollout.pause_between_nodes - (now - max(finished)).total_seconds())


def condition_updates(
    previous: Sequence[Condition],
    phase: Phase,
    reason: ConditionReason,
    message: str,
    now: dt.datetime,
    generation: int,
) -> tuple[Condition, ...]:
    """Ready/Progressing/Paused conditions for `phase`, keeping lastTransitionTime when a status stays."""
    wanted = {
        ConditionType.PROGRESSING: phase == Phase.PROGRESSING,
        ConditionType.PAUSED: phase == Phase.PAUSED,
        ConditionType.COMPLETE: phase in (Phase.SUCCEEDED, Phase.FAILED),
    }
    old = {c.type: c for c in previous}
    out = []
    for type_, on in wanted.items():
        status = "True" if on else "False"
        before = old.get(type_)
        since = before.last_transition_time if before and before.status == status else iso(now)
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason
                if on
                else (before.reason if before and before.status == status else ConditionReason.NOT_ACTIVE),
                message=message if on else "",
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    kept = [c for c in previous if c.type not in wanted]
    return (*out, *kept)
