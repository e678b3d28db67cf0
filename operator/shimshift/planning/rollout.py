"""The fleet rules as a pure function of (spec, status, nodes, now): which nodes start, and the phase.

- Node selection is re-evaluated on every pass: new matching nodes join as Pending, nodes that left the
  selection before starting are dropped, nodes carrying the completion label or already on containerd
  are Skipped with their reason. Nodes in flight or finished keep their record whatever happens.
- Waves: a new wave of at most `maxUnavailable` workers starts only when no node is in flight and
  `pauseBetweenNodes` has passed since the last node finished; control-plane nodes go last, one at a
  time (the same waves `planning.waves` shows in the plan report).
- `spec.rollout.paused`, more than `maxFailures` failed nodes, Plan mode or deletion start nothing new;
  nodes in flight always run to the end of their step sequence (or roll back) so none is abandoned.
- Maintenance windows (`spec.rollout.windows`, `planning.windows`): outside every window nothing
  starts and the message says when the next one opens; a node in flight when a window closes finishes.
- Holds: a node with the `shimshift.io/hold` label or annotation is Skipped by the selection (unless it
  is already in flight or finished). A node with a pod matching `spec.rollout.blockingPodSelector`
  (`blocked`, read by the caller) is passed over in this wave and the wave takes the next pending
  node instead; it is started once its blocking pods are gone.
- Zones: with `spec.rollout.maxUnavailablePerZone`, a wave takes at most that many workers of one zone
  (the `zoneLabel` value, "" without it; a percentage is of the zone's selected workers) besides the
  global `maxUnavailable`; the nodes of a full zone wait and the wave takes other zones' nodes.
- The operator's own node (`operator_node`, the node the acting replica runs on, passed in by the
  engine): it starts only when it is the last pending node, after every other selected node, worker
  or control plane, has finished; until then each wave passes over it (the plan's last wave,
  `planning.waves.plan_waves`). Its drain evicts the operator; the replacement pod or the standby
  replica resumes it from its NodeMigrationNode.
- The only API server (`api`, read by the caller; `planning.apiserver`): a node that runs it is
  Skipped unless `spec.rollout.allowApiDowntime`; with it, the node starts only when no other selected
  node is pending, after the operator's own node: the API is down during its switch.
- Health gates (`spec.rollout.gates`, `planning.healthgates`): read by the caller (`gates`) only when a
  wave could start; a closed gate holds the wave back, a gate that cannot be read is retried with
  backoff, and one not open past `gates.timeout` (counted inside the windows only) pauses the rollout
  until the spec changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from shimshift.model import keys
from shimshift.model.gates import GateReading
from shimshift.model.keys import StepId
from shimshift.model.spec import ControlPlanePolicy, Mode, NodeMigrationSpec
from shimshift.model.status import (
    Condition,
    ConditionReason,
    ConditionType,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
    StepState,
)
from shimshift.model.timestamps import iso, parse_iso
from shimshift.planning.apiserver import OPT_IN, ApiServers, sole_api_nodes
from shimshift.planning.cluster import Node
from shimshift.planning.findings import name_some
from shimshift.planning.healthgates import gate_hold, timed_out
from shimshift.planning.operatorpod import stranded_message
from shimshift.planning.selection import select_nodes
from shimshift.planning.undo import UndoWindow, begin, limited, plan_window
from shimshift.planning.waves import fill_wave, wave_size, zone_limits, zone_of
from shimshift.planning.windows import describe_opening, window_state

IN_FLIGHT = frozenset({NodePhase.IN_PROGRESS, NodePhase.ROLLING_BACK})
#: Nodes named in a condition message, the rest counted: a wave of 500 stays a short message.
NAMED_IN_MESSAGES = 10
FAILED = frozenset({NodePhase.FAILED, NodePhase.ROLLED_BACK})
#: How a message names the zone of the nodes without the zone label.
EMPTY_ZONE = '""'


@dataclass(frozen=True)
class Decision:
    nodes: tuple[NodeRecord, ...]  # the status' node list after this pass (starts applied)
    start: tuple[str, ...]  # nodes that begin their step sequence now
    phase: Phase
    reason: ConditionReason  # of the Progressing/Paused/Complete condition that is True
    message: str
    wait_seconds: float | None = None  # when nothing can start before then (pauseBetweenNodes)
    #: Succeeded nodes whose undo (rollback on request) or commit begins now (already in `nodes`)
    undo: tuple[str, ...] = ()
    commit: tuple[str, ...] = ()
    #: requests to undo a node that are refused, one message per node (`planning.undo`)
    refused: tuple[str, ...] = ()


def reconcile_selection(
    spec: NodeMigrationSpec,
    records: Sequence[NodeRecord],
    nodes: Sequence[Node],
    api: ApiServers | None = None,
) -> tuple[NodeRecord, ...]:
    """`records` with newly selected nodes added and untouched ones updated or dropped, in name order."""
    selection = select_nodes(spec, nodes, api)
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


def may_start(
    spec: NodeMigrationSpec,
    status: MigrationStatus,
    nodes: Sequence[Node],
    now: dt.datetime,
    *,
    stopping: bool,
    generation: int | None = None,
    api: ApiServers | None = None,
) -> bool:
    """Whether a pass could start a node at all (the caller reads blocking pods and gates only then):
    Migrate mode, not stopping or paused (by the spec or by a gate timeout of this generation), no node
    in flight, a node pending, inside a window, past pauseBetweenNodes."""
    if spec.mode != Mode.MIGRATE or stopping or spec.rollout.paused:
        return False
    if spec.rollout.gates.configured and timed_out(status.conditions, generation):
        return False
    if any(r.phase in IN_FLIGHT for r in status.nodes):
        return False
    records = reconcile_selection(spec, status.nodes, nodes, api)
    if not any(r.phase == NodePhase.PENDING for r in records):
        return False
    if _pause_left(spec, records, now) > 0:
        return False
    return window_state(spec.rollout.windows, spec.rollout.time_zone, now).open


#: Characters of the latest failed node's error quoted in the Paused / Failed condition's message.
FAILURE_QUOTED = 300


def _latest_failure(failures: Sequence[NodeRecord]) -> str:
    """ "; latest: <node>: <its error>" of the failed node that finished last ("" without an error)."""
    latest = max(failures, key=lambda r: (r.finished_at, r.name))
    if latest.last_error is None or not latest.last_error.message:
        return ""
    text = " ".join(latest.last_error.message.split())
    if len(text) > FAILURE_QUOTED:
        text = text[: FAILURE_QUOTED - 3] + "..."
    return f"; latest: {latest.name}: {text}"


def decide(
    spec: NodeMigrationSpec,
    status: MigrationStatus,
    nodes: Sequence[Node],
    now: dt.datetime,
    *,
    stopping: bool = False,
    blocked: Mapping[str, Sequence[str]] | None = None,
    gates: Sequence[GateReading] | None = None,
    generation: int | None = None,
    name: str = "",
    operator_node: str = "",
    api: ApiServers | None = None,
    operator_stranded: tuple[str, str] | None = None,
) -> Decision:
    """One pass of the fleet rules. `blocked`: node -> its non-terminal pods ("namespace/name") that
    match `spec.rollout.blockingPodSelector` (only nodes with at least one; None: none read). `gates`:
    this pass's reading of `spec.rollout.gates` (None: not read, as when `may_start` says no).
    `generation`: the object's, so a gate timeout pauses only the generation it happened in. `name`
    is the NodeMigration's (messages and the backup path name it). `operator_node`: the node the
    operator making this decision runs on ("": unknown), started only when no other node is pending
    but a node running the only API server. `api`: where the API servers run (None: not read).
    `operator_stranded`: (its pod, why) when the drain of `operator_node` would leave the operator's
    replacement nowhere to run (`planning.operatorpod.stranded`): that node is then not started."""
    blocked = blocked or {}
    records = reconcile_selection(spec, status.nodes, nodes, api)
    asked = UndoWindow({}, (), ())
    if spec.mode == Mode.MIGRATE and not stopping:
        asked = plan_window(spec, name, records, nodes)
        busy = sum(1 for r in records if r.phase in IN_FLIGHT and r.step != StepId.COMMIT)
        chosen = sum(1 for r in records if r.phase != NodePhase.SKIPPED)
        asked = limited(asked, wave_size(spec.rollout, chosen) - busy)
        records = begin(records, asked, now)
    control = {n.name for n in nodes if n.control_plane}
    in_flight = [r for r in records if r.phase in IN_FLIGHT]
    # a node rolled back on request did not fail
    failures = [r for r in records if r.phase in FAILED and not r.undone_on_request]
    undone = [r.name for r in records if r.phase == NodePhase.ROLLED_BACK and r.undone_on_request]
    pending = [r for r in records if r.phase == NodePhase.PENDING]
    # a node running the only API server waits while any other node is pending, one at a time
    sole = sole_api_nodes(api) if api is not None else frozenset()
    api_last = [r for r in pending if r.name in sole]
    startable = [r for r in pending if r.name not in sole] or api_last[:1]
    # the operator's own node waits while any other node is pending (in flight ones hold every wave)
    saved = [r for r in startable if r.name == operator_node] if len(startable) > 1 else []
    ours = operator_node != "" and any(r.name == operator_node for r in startable)
    last = f"; {operator_node} runs the operator: migrated last" if ours else ""
    if api_last:
        last += (
            f"; {name_some((r.name for r in api_last), NAMED_IN_MESSAGES)} runs the only API server: "
            "migrated last of all, the API unavailable during its switch"
        )

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
        return Decision(
            updated,
            tuple(start),
            phase,
            reason,
            message,
            wait,
            undo=tuple(asked.undo),
            commit=asked.commit,
            refused=asked.refused,
        )

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
            "then raise maxFailures or recreate the NodeMigration" + _latest_failure(failures),
        )
    if not pending and not in_flight:
        if failures:
            return result(
                Phase.FAILED,
                ConditionReason.NODES_FAILED,
                f"finished; {len(failures)} node(s) failed and were rolled back" + _latest_failure(failures),
            )
        held = [
            r.name
            for r in records
            if r.phase == NodePhase.SKIPPED and r.skip_reason.startswith(keys.HOLD_REASON)
        ]
        sole_skipped = [r.name for r in records if r.sole_api_server]
        if sole_skipped:
            return result(
                Phase.SUCCEEDED,
                ConditionReason.MIGRATED,
                f"every selected node runs containerd but {name_some(sole_skipped, NAMED_IN_MESSAGES)}, "
                f"skipped: it runs the cluster's only API server; {OPT_IN}",
            )
        if held:
            return result(
                Phase.SUCCEEDED,
                ConditionReason.MIGRATED,
                f"every selected node runs containerd but {len(held)} held by {keys.HOLD_KEY} "
                f"({name_some(held, NAMED_IN_MESSAGES)}); remove the hold and they are migrated",
            )
        if undone:
            return result(
                Phase.SUCCEEDED,
                ConditionReason.MIGRATED,
                f"every selected node runs containerd but {len(undone)} rolled back to Docker on request "
                f"({name_some(undone, NAMED_IN_MESSAGES)})",
            )
        return result(Phase.SUCCEEDED, ConditionReason.MIGRATED, "every selected node runs containerd")
    if spec.rollout.paused:
        return result(
            Phase.PAUSED, ConditionReason.PAUSED_BY_SPEC, "spec.rollout.paused is true: no new node starts"
        )
    if in_flight:
        return result(Phase.PROGRESSING, ConditionReason.NODES_IN_FLIGHT, _in_flight_message(in_flight))
    if spec.rollout.gates.configured and timed_out(status.conditions, generation):
        paused = next(c for c in status.conditions if c.type == ConditionType.PAUSED)
        return result(Phase.PAUSED, ConditionReason.GATE_TIMEOUT, paused.message)
    window = window_state(spec.rollout.windows, spec.rollout.time_zone, now)
    if not window.open:
        when = (
            describe_opening(window.at, spec.rollout.time_zone, now)
            if window.at is not None
            else "none of spec.rollout.windows opens in the next 4 years"
        )
        return result(
            Phase.PROGRESSING,
            ConditionReason.WAITING_FOR_WINDOW,
            f"waiting for window ({when}); {len(pending)} node(s) pending",
            wait=(window.at - now).total_seconds() if window.at is not None else None,
        )
    wait = _pause_left(spec, records, now)
    if wait > 0:
        return result(
            Phase.PROGRESSING,
            ConditionReason.PAUSE_BETWEEN_NODES,
            f"waiting {wait:.0f}s (spec.rollout.pauseBetweenNodes)",
            wait=wait,
        )
    if gates is not None and spec.rollout.gates.configured:
        hold = gate_hold(
            spec.rollout.gates, gates, status.conditions, now, len(pending), counting_from=window.opened
        )
        if hold is not None:
            phase = Phase.PAUSED if hold.paused else Phase.PROGRESSING
            return result(phase, hold.reason, hold.message, wait=hold.wait)
    pending = [r for r in startable if r.name != operator_node] if saved else startable
    if ours and not saved and operator_stranded is not None:
        pending = [r for r in pending if r.name != operator_node]
        if not pending:  # the operator's node is all that is left: it waits, uncordoned, with why
            return result(
                Phase.PROGRESSING,
                ConditionReason.OPERATOR_CANNOT_MOVE,
                stranded_message(operator_node, operator_stranded),
            )
    held_back = [r.name for r in pending if blocked.get(r.name)]
    why = _blocked_message(held_back, blocked)
    workers = [r for r in pending if r.name not in control]
    free_workers = [r for r in workers if r.name not in blocked or not blocked[r.name]]
    if free_workers:
        selected = [r.name for r in records if r.name not in control and r.phase != NodePhase.SKIPPED]
        by_name = {n.name: n for n in nodes}
        zones = {name: zone_of(spec.rollout, by_name[name]) if name in by_name else "" for name in selected}
        fill = fill_wave(
            [r.name for r in free_workers],
            wave_size(spec.rollout, len(selected)),
            zones,
            zone_limits(spec.rollout, zones.values()),
        )
        wave = list(fill.nodes)
        full = "".join(
            f"; zone {zone or EMPTY_ZONE} at its limit ({count}/{limit})"
            for zone, (count, limit) in sorted(fill.full_zones.items())[:NAMED_IN_MESSAGES]
        )
        return result(
            Phase.PROGRESSING,
            ConditionReason.WAVE_STARTED,
            f"starting {name_some(wave, NAMED_IN_MESSAGES)}" + full + (f"; {why}" if why else "") + last,
            start=wave,
        )
    if workers:  # every pending worker is held back: control-plane nodes still wait for them
        return result(Phase.PROGRESSING, ConditionReason.BLOCKED_BY_PODS, f"waiting: {why}{last}")
    if spec.rollout.control_plane == ControlPlanePolicy.EXCLUDE:  # pragma: no cover - selection skips them
        return result(Phase.SUCCEEDED, ConditionReason.MIGRATED, "every selected worker runs containerd")
    free = [r.name for r in pending if r.name not in held_back]
    if not free:
        return result(Phase.PROGRESSING, ConditionReason.BLOCKED_BY_PODS, f"waiting: {why}{last}")
    first = free[0]
    return result(
        Phase.PROGRESSING,
        ConditionReason.WAVE_STARTED,
        f"starting control-plane node {first}" + (f"; {why}" if why else "") + last,
        start=[first],
    )


def _in_flight_message(in_flight: Sequence[NodeRecord]) -> str:
    """`migrating a, b; rolling back c to Docker on request; committing d`."""
    undoing = [r.name for r in in_flight if r.undo_request and r.phase == NodePhase.ROLLING_BACK]
    committing = [r.name for r in in_flight if r.step == StepId.COMMIT]
    migrating = [r.name for r in in_flight if r.name not in {*undoing, *committing}]
    parts = [
        f"{what} {name_some(names, NAMED_IN_MESSAGES)}{tail}"
        for what, names, tail in (
            ("migrating", migrating, ""),
            ("rolling back", undoing, " to Docker on request"),
            ("committing", committing, ""),
        )
        if names
    ]
    return "; ".join(parts)


def _blocked_message(held_back: Sequence[str], blocked: Mapping[str, Sequence[str]]) -> str:
    """`2 node(s) held back by pods matching spec.rollout.blockingPodSelector: a (ns/p), b (ns/q, +1)`."""
    if not held_back:
        return ""
    named = [
        f"{n} ({', '.join(blocked[n][:2])}{f', +{len(blocked[n]) - 2}' if len(blocked[n]) > 2 else ''})"
        for n in held_back[:NAMED_IN_MESSAGES]
    ]
    more = len(held_back) - len(named)
    return (
        f"{len(held_back)} node(s) held back by pods matching spec.rollout.blockingPodSelector: "
        + ", ".join(named)
        + (f" and {more} more" if more > 0 else "")
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


#: How many nodes and budgets the DrainBlocked condition names (the rest are counted).
DRAIN_BLOCKED_NAMED = 3


def drain_blocked_condition(
    previous: Sequence[Condition],
    nodes: Sequence[NodeRecord],
    waits: Mapping[str, tuple[str, ...]] | None,
    now: dt.datetime,
    generation: int,
) -> Condition:
    """The DrainBlocked condition: True while a node in its drain step waits on a PodDisruptionBudget.

    `waits` is what this pass's drain passes said (node -> the budgets it waits on, empty: none); None
    before any ran. A node still draining that no pass has spoken for yet (a pass that ended before
    its turn, a restarted operator) leaves a True condition as it was, so it does not flap.
    """
    before = next((c for c in previous if c.type == ConditionType.DRAIN_BLOCKED), None)
    draining = sorted(
        r.name
        for r in nodes
        if r.phase in IN_FLIGHT and r.step == StepId.DRAIN and r.step_state == StepState.STARTED
    )
    known = waits or {}
    blocked = {n: known[n] for n in draining if known.get(n)}
    unknown = [n for n in draining if n not in known]
    if not blocked and unknown and before is not None and before.status == "True":
        return replace(before, observed_generation=generation)
    if blocked:
        budgets = sorted({b for names in blocked.values() for b in names})
        subject = (
            f"the drain of node {next(iter(blocked))} waits"
            if len(blocked) == 1
            else f"the drains of nodes {name_some(blocked, DRAIN_BLOCKED_NAMED)} wait"
        )
        message = f"{subject} on PodDisruptionBudget {name_some(budgets, DRAIN_BLOCKED_NAMED)}"
        status, reason = "True", ConditionReason.POD_DISRUPTION_BUDGET
    else:
        message, status, reason = "", "False", ConditionReason.NOT_BLOCKED
    since = before.last_transition_time if before is not None and before.status == status else iso(now)
    return Condition(
        type=ConditionType.DRAIN_BLOCKED,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def with_condition(conditions: Sequence[Condition], condition: Condition) -> tuple[Condition, ...]:
    """`conditions` with `condition` in place of the one of its type (appended when there is none)."""
    out = [condition if c.type == condition.type else c for c in conditions]
    if all(c.type != condition.type for c in conditions):
        out.append(condition)
    return tuple(out)
