"""NodeMigration status: the durable record every restart resumes from.

Frozen values with explicit `from_storage` / `for_storage`, so what is persisted is exactly what is
read back (kopf's habit for persisted state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shimshift.model.hookrecord import HookKind, HookRecord
from shimshift.model.keys import HOLD_REASON, SOLE_API_SERVER_REASON, StepId


class Phase(StrEnum):
    PENDING = "Pending"
    PLANNING = "Planning"
    PLANNED = "Planned"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    """The `type` of every condition the operator writes in `status.conditions` (`kubectl describe`)."""

    VALID = "Valid"  # False: the operator's checks refuse the spec (reason InvalidSpec / InternalError)
    RECONCILE_ERROR = "ReconcileError"  # True: the last pass failed unexpectedly; False once one passes
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    COMPLETE = "Complete"  # Succeeded or Failed: nothing more will start
    #: True while a node's drain waits because a PodDisruptionBudget refused an eviction (the message
    #: names the node(s) and the budget(s), a few of each); False otherwise
    DRAIN_BLOCKED = "DrainBlocked"
    #: True while spec.rollout.gates hold the next wave back: a gate was read and said no (the message
    #: names it and why); False once every gate is open
    GATE_CLOSED = "GateClosed"
    #: True while a gate cannot be read (Prometheus unreachable, a bad query, an object missing or
    #: forbidden): neither yes nor no, retried with backoff; False once every gate could be read
    GATE_ERROR = "GateError"
    #: True while Succeeded nodes can still be rolled back on request (no `spec.commit` yet); the
    #: message says how many and what a commit will do; False once every one is committed
    ROLLBACK_WINDOW = "RollbackWindow"
    #: True while a request to undo a node (annotation shimshift.io/undo or spec.undo) is refused;
    #: the message names the node(s) and what to do
    UNDO_REFUSED = "UndoRefused"


class ConditionReason(StrEnum):
    """The `reason` of the conditions the operator writes."""

    PLAN_MODE = "PlanMode"
    PLANNED = "Planned"
    DELETING = "Deleting"
    MAX_FAILURES = "MaxFailures"
    NODES_FAILED = "NodesFailed"
    MIGRATED = "Migrated"
    PAUSED_BY_SPEC = "PausedBySpec"
    NODES_IN_FLIGHT = "NodesInFlight"
    PAUSE_BETWEEN_NODES = "PauseBetweenNodes"
    WAVE_STARTED = "WaveStarted"
    WAITING_FOR_WINDOW = "WaitingForWindow"  # spec.rollout.windows: none is open now
    BLOCKED_BY_PODS = "BlockedByPods"  # every pending node has a pod matching blockingPodSelector
    #: only the operator's own node is left, and its drain would strand the operator (planning.operatorpod)
    OPERATOR_CANNOT_MOVE = "OperatorCannotMove"
    WAITING_FOR_GATE = "WaitingForGate"  # spec.rollout.gates: a gate is closed (GateClosed True)
    GATE_ERROR = "GateError"  # a gate could not be read (GateError True); read again with backoff
    GATE_TIMEOUT = "GateTimeout"  # Paused: a gate stayed closed (or unreadable) past gates.timeout
    GATES_OPEN = "GatesOpen"  # GateClosed / GateError False: the last reading found every gate open
    NOT_ACTIVE = "NotActive"  # a Progressing/Paused/Complete condition that is False
    RECONCILED = "Reconciled"  # ReconcileError back to False
    POD_DISRUPTION_BUDGET = "PodDisruptionBudget"  # DrainBlocked True: a budget refused an eviction
    NOT_BLOCKED = "NotBlocked"  # DrainBlocked False: no drain waits on a budget
    INTERNAL_ERROR = "InternalError"
    INVALID_SPEC = "InvalidSpec"
    WINDOW_OPEN = "NotCommitted"  # RollbackWindow True: spec.commit is not set
    COMMITTED = "Committed"  # RollbackWindow False: spec.commit is set (or nothing succeeded yet)
    UNDO_NOT_POSSIBLE = "UndoNotPossible"  # UndoRefused True
    NO_REFUSED_UNDO = "NoRefusedUndo"  # UndoRefused False


class EventReason(StrEnum):
    """The `reason` of every Event the operator records, on the NodeMigration (and the Node it concerns)."""

    # the NodeMigration's phase changed: the reason is the new phase
    PENDING = "Pending"
    PLANNING = "Planning"
    PLANNED = "Planned"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # one node
    NODE_STARTED = "NodeStarted"
    NODE_MIGRATED = "NodeMigrated"
    NODE_ROLLED_BACK = "NodeRolledBack"
    NODE_FAILED = "NodeFailed"
    NODE_UNDO_STARTED = "NodeUndoStarted"  # a Succeeded node's rollback on request began
    NODE_UNDONE = "NodeUndone"  # ... and it runs Docker again (phase RolledBack, undoRequest set)
    NODE_UNDO_FAILED = "NodeUndoFailed"  # ... its cordon or drain failed: it still runs containerd
    UNDO_REFUSED = "UndoRefused"  # a request to undo a node cannot be honoured (the message says why)
    NODE_COMMITTED = "NodeCommitted"  # Docker per spec.docker and the backups removed on the node
    STEP_FAILED = "StepFailed"  # a step failed for good (a transient error retries without an Event)
    HOST_KEY_MISMATCH = "HostKeyMismatch"  # the step failed because the node's SSH host key changed
    HOST_KEY_REVOKED = "HostKeyRevoked"  # ... or is revoked in known_hosts
    DRAIN_ESCALATED = "DrainEscalated"
    EVICTION_BLOCKED = "EvictionBlocked"
    # spec.rollout.gates, when what they say changes (not on every reading)
    GATE_CLOSED = "GateClosed"
    GATE_OPENED = "GateOpened"
    GATE_ERROR = "GateError"
    CANARY_FAILED = "CanaryFailed"  # the verify step's canary pod did not run on the switched node
    CANARY_SKIPPED = "CanarySkipped"  # no image for the canary: the node is uncordoned without one
    HOOK_STARTED = "HookStarted"  # a hook Job (spec.rollout.hooks) was created for a node
    HOOK_SUCCEEDED = "HookSucceeded"  # ... and completed
    HOOK_FAILED = "HookFailed"  # ... failed or timed out: the node fails (pre) or rolls back (post)
    # the operator itself
    INVALID_SPEC = "InvalidSpec"  # the operator's checks refuse the spec (also the Valid condition's reason)
    INTERNAL_ERROR = "InternalError"
    NOTIFICATION_FAILED = "NotificationFailed"  # a notification was given up after its retries

    @classmethod
    def for_phase(cls, phase: Phase) -> EventReason:
        """The reason of the Event that says the NodeMigration entered `phase`."""
        return cls(phase.value)


class NodePhase(StrEnum):
    PENDING = "Pending"
    SKIPPED = "Skipped"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"

    @property
    def finished(self) -> bool:
        return self in (NodePhase.SKIPPED, NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.ROLLED_BACK)


class StepState(StrEnum):
    STARTED = "Started"
    DONE = "Done"
    FAILED = "Failed"
    UNDONE = "Undone"


@dataclass(frozen=True)
class LastError:
    step: str
    message: str
    command: str = ""
    exit_code: int | None = None
    stderr_tail: str = ""

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> LastError:
        return cls(
            step=raw.get("step", ""),
            message=raw.get("message", ""),
            command=raw.get("command", ""),
            exit_code=raw.get("exitCode"),
            stderr_tail=raw.get("stderrTail", ""),
        )

    def for_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "message": self.message}
        if self.command:
            out["command"] = self.command
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.stderr_tail:
            out["stderrTail"] = self.stderr_tail
        return out


@dataclass(frozen=True)
class StepRecord:
    id: StepId
    state: StepState
    started_at: str = ""
    finished_at: str = ""
    message: str = ""

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> StepRecord:
        return cls(
            id=StepId(raw["id"]),
            state=StepState(raw["state"]),
            started_at=raw.get("startedAt", ""),
            finished_at=raw.get("finishedAt", ""),
            message=raw.get("message", ""),
        )

    def for_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "state": str(self.state)}
        for key, value in (
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
            ("message", self.message),
        ):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class ImageCounts:
    """What the images step did on a node. `bytes` is what the transfers streamed (the metric's
    figure); `bytes_to_move` is the sum of Docker's sizes of the images the plan moves (not those in
    containerd before the step), `bytes_moved` the part of it moved so far: written while the step
    runs (when a transfer or pull ends, at most every few seconds) for the status view's bar, and
    equal to `bytes_to_move` once the step is done. Both 0 in records of older versions."""

    transferred: int = 0
    pulled: int = 0
    skipped: int = 0
    bytes: int = 0
    bytes_to_move: int = 0
    bytes_moved: int = 0


#: How a record names the request it was undone on: `spec.undo`, or the annotation's value after this.
UNDO_BY_SPEC = "spec.undo"
UNDO_BY_ANNOTATION = "annotation="


@dataclass(frozen=True)
class NodeRecord:
    """Everything shimshift knows durably about one node of one migration."""

    name: str
    phase: NodePhase = NodePhase.PENDING
    step: StepId | None = None
    step_state: StepState | None = None
    attempts: int = 0
    skip_reason: str = ""
    started_at: str = ""
    finished_at: str = ""
    was_unschedulable: bool | None = None
    backup_dir: str = ""
    host_key_fingerprint: str = ""
    #: The order the node's steps run in (`model.steporder`), as its facts step decided it: spec.staging,
    #: or AfterCordon when its containerd.service would kill Docker's containers at containerd's restart
    #: ("" before the facts step: spec.staging)
    staging: str = ""
    last_error: LastError | None = None
    images: ImageCounts = field(default_factory=ImageCounts)
    steps: tuple[StepRecord, ...] = ()
    #: "namespace/name" of each DaemonSet with a pod on the node when its drain finished: the verify
    #: waits until every one has a Running and Ready pod there again (recorded, so a restart keeps it)
    daemonsets: tuple[str, ...] = ()
    #: When shimshift cordoned the node and uncordoned it, and the whole seconds between: the time it
    #: was out of service (`model.cordoned` derives all three from the step records)
    cordoned_at: str = ""
    uncordoned_at: str = ""
    cordoned_seconds: int | None = None
    #: Set when a Succeeded node is rolled back on request: `spec.undo`, or `annotation=<value>` (the
    #: value of the node's shimshift.io/undo annotation that was acted on, removed only while it still
    #: holds that value). A RolledBack node with it was undone on request, not by a failure.
    undo_request: str = ""
    #: What became of the node's hooks (spec.rollout.hooks): its Job, result, message and times
    hooks: tuple[HookRecord, ...] = ()

    def hook(self, kind: HookKind) -> HookRecord | None:
        """The record of the node's `kind` hook (None: not started)."""
        return next((h for h in self.hooks if h.hook == kind), None)

    def with_hook(self, record: HookRecord) -> NodeRecord:
        """This record with `record` replacing the previous record of the same hook (or appended)."""
        return replace(self, hooks=(*(h for h in self.hooks if h.hook != record.hook), record))

    @property
    def committed(self) -> bool:
        """The rollback window of this node is closed: its commit step is done (or ran at all)."""
        return any(s.id == StepId.COMMIT for s in self.steps)

    @property
    def undo_annotation(self) -> str | None:
        """The value of the shimshift.io/undo annotation this record was undone on (None: not one)."""
        if self.undo_request.startswith(UNDO_BY_ANNOTATION):
            return self.undo_request[len(UNDO_BY_ANNOTATION) :]
        return None

    @property
    def undone_on_request(self) -> bool:
        """Rolled back to Docker on request (not by a failure)."""
        return bool(self.undo_request) and self.phase == NodePhase.ROLLED_BACK

    @property
    def sole_api_server(self) -> bool:
        """Skipped because it runs the cluster's only API server (spec.rollout.allowApiDowntime)."""
        return self.phase == NodePhase.SKIPPED and self.skip_reason.startswith(SOLE_API_SERVER_REASON)

    @property
    def held(self) -> bool:
        """Skipped because a hold label or annotation keeps it on Docker for now (not done)."""
        return self.phase == NodePhase.SKIPPED and self.skip_reason.startswith(HOLD_REASON)

    @property
    def undo_failed(self) -> bool:
        """A rollback on request stopped at its cordon or drain: the node still runs containerd."""
        return any(s.id == StepId.UNDO and s.state == StepState.FAILED for s in self.steps)

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> NodeRecord:
        img = raw.get("images") or {}
        return cls(
            name=raw["name"],
            phase=NodePhase(raw.get("phase", "Pending")),
            step=StepId(raw["step"]) if raw.get("step") else None,
            step_state=StepState(raw["stepState"]) if raw.get("stepState") else None,
            attempts=int(raw.get("attempts", 0)),
            skip_reason=raw.get("skipReason", ""),
            started_at=raw.get("startedAt", ""),
            finished_at=raw.get("finishedAt", ""),
            was_unschedulable=raw.get("wasUnschedulable"),
            backup_dir=raw.get("backupDir", ""),
            host_key_fingerprint=raw.get("hostKeyFingerprint", ""),
            staging=raw.get("staging", ""),
            last_error=LastError.from_storage(raw["lastError"]) if raw.get("lastError") else None,
            images=ImageCounts(
                transferred=img.get("transferred", 0),
                pulled=img.get("pulled", 0),
                skipped=img.get("skipped", 0),
                bytes=img.get("bytes", 0),
                bytes_to_move=img.get("bytesToMove", 0),
                bytes_moved=img.get("bytesMoved", 0),
            ),
            steps=tuple(StepRecord.from_storage(s) for s in raw.get("steps") or ()),
            daemonsets=tuple(raw.get("daemonSets") or ()),
            cordoned_at=raw.get("cordonedAt", ""),
            uncordoned_at=raw.get("uncordonedAt", ""),
            cordoned_seconds=None if raw.get("cordonedSeconds") is None else int(raw["cordonedSeconds"]),
            undo_request=raw.get("undoRequest", ""),
            hooks=tuple(HookRecord.from_storage(h) for h in raw.get("hooks") or ()),
        )

    def for_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "phase": str(self.phase), "attempts": self.attempts}
        if self.step is not None:
            out["step"] = str(self.step)
        if self.step_state is not None:
            out["stepState"] = str(self.step_state)
        for key, value in (
            ("skipReason", self.skip_reason),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
            ("backupDir", self.backup_dir),
            ("hostKeyFingerprint", self.host_key_fingerprint),
            ("staging", self.staging),
            ("cordonedAt", self.cordoned_at),
            ("uncordonedAt", self.uncordoned_at),
            ("undoRequest", self.undo_request),
        ):
            if value:
                out[key] = value
        if self.was_unschedulable is not None:
            out["wasUnschedulable"] = self.was_unschedulable
        if self.cordoned_seconds is not None:
            out["cordonedSeconds"] = self.cordoned_seconds
        if self.last_error is not None:
            out["lastError"] = self.last_error.for_storage()
        if self.images != ImageCounts():
            i = self.images
            out["images"] = {
                "transferred": i.transferred,
                "pulled": i.pulled,
                "skipped": i.skipped,
                "bytes": i.bytes,
            }
            if i.bytes_to_move or i.bytes_moved:
                out["images"] |= {"bytesToMove": i.bytes_to_move, "bytesMoved": i.bytes_moved}
        if self.daemonsets:
            out["daemonSets"] = list(self.daemonsets)
        if self.steps:
            out["steps"] = [s.for_storage() for s in self.steps]
        if self.hooks:
            out["hooks"] = [h.for_storage() for h in self.hooks]
        return out

    def state_of(self, step: StepId) -> StepState | None:
        """The state `step`'s record holds (None: not started). The current step is `step`; a step
        that ended is Done or Failed in `steps` (its Done is written with the next step's Started)."""
        return next((s.state for s in self.steps if s.id == step), None)

    def with_step(self, record: StepRecord) -> NodeRecord:
        """This record with `record` replacing the previous record of the same step (or appended)."""
        kept = tuple(s for s in self.steps if s.id != record.id)
        return replace(self, step=record.id, step_state=record.state, steps=(*kept, record))


@dataclass(frozen=True)
class Condition:
    # `str`, not ConditionType / ConditionReason: a status is read back as it is stored, including a
    # condition a newer version of the operator wrote. What this version writes are members of those.
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(
            type=raw["type"],
            status=raw["status"],
            reason=raw.get("reason", ""),
            message=raw.get("message", ""),
            last_transition_time=raw.get("lastTransitionTime", ""),
            observed_generation=raw.get("observedGeneration"),
        )

    def for_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        for key, value in (
            ("reason", self.reason),
            ("message", self.message),
            ("lastTransitionTime", self.last_transition_time),
        ):
            if value:
                out[key] = value
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out


@dataclass(frozen=True)
class MigrationStatus:
    phase: Phase | None = None
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    #: Every node's record while the operator works (read from the NodeMigrationNode objects; as
    #: read from storage, only what a previous version kept in `status.nodes[]`)
    nodes: tuple[NodeRecord, ...] = ()
    report_config_map: str = ""
    #: What the rollout does or waits for now: the message of the fleet rules' last decision (the
    #: `Message` printer column), e.g. "waiting for window (opens in 3h, ...)".
    message: str = ""
    #: The status exactly as read from storage (None: not read), so a pass writes only what changed.
    stored: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> MigrationStatus:
        return cls(
            phase=Phase(raw["phase"]) if raw.get("phase") else None,
            observed_generation=raw.get("observedGeneration"),
            conditions=tuple(Condition.from_storage(c) for c in raw.get("conditions") or ()),
            nodes=tuple(NodeRecord.from_storage(n) for n in raw.get("nodes") or ()),
            report_config_map=raw.get("reportConfigMap", ""),
            message=raw.get("message", ""),
            stored=dict(raw),
        )

    def node(self, name: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.name == name), None)

    def summary(self) -> dict[str, Any]:
        counts = dict.fromkeys(("pending", "inProgress", "succeeded", "skipped", "failed", "rolledBack"), 0)
        key_of = {
            NodePhase.PENDING: "pending",
            NodePhase.IN_PROGRESS: "inProgress",
            NodePhase.ROLLING_BACK: "inProgress",
            NodePhase.SUCCEEDED: "succeeded",
            NodePhase.SKIPPED: "skipped",
            NodePhase.FAILED: "failed",
            NodePhase.ROLLED_BACK: "rolledBack",
        }
        held = 0
        for n in self.nodes:
            counts[key_of[n.phase]] += 1
            held += n.held
        # a held node is skipped for now, not done: it is still on Docker
        done = counts["succeeded"] + counts["skipped"] - held
        return {"total": len(self.nodes), **counts, "held": held, "progress": f"{done}/{len(self.nodes)}"}

    def for_storage(self) -> dict[str, Any]:
        """The NodeMigration's status as stored: bounded whatever the fleet's size. Each node's record
        lives in its NodeMigrationNode (`model.nodestate`); here only the counts, the nodes in flight
        (at most maxUnavailable), and the first `FAILED_LISTED` failed nodes and held nodes, the rest
        counted."""
        flying = [n.name for n in self.nodes if n.phase in (NodePhase.IN_PROGRESS, NodePhase.ROLLING_BACK)]
        failed = [
            n
            for n in self.nodes
            if n.phase in (NodePhase.FAILED, NodePhase.ROLLED_BACK) and not n.undone_on_request
        ]
        held = [n for n in self.nodes if n.held]
        out: dict[str, Any] = {
            "conditions": [c.for_storage() for c in self.conditions],
            "summary": self.summary(),
            "currentNodes": _current_column(flying),
            "inFlight": flying,
            "failedNodes": [_failed_entry(n) for n in failed[:FAILED_LISTED]],
            "failedNotListed": max(0, len(failed) - FAILED_LISTED),
            "heldNodes": [{"name": n.name, "reason": n.skip_reason} for n in held[:FAILED_LISTED]],
            "heldNotListed": max(0, len(held) - FAILED_LISTED),
        }
        sole = [n for n in self.nodes if n.sole_api_server]  # a cluster has at most a few
        out["apiServerNodes"] = [{"name": n.name, "reason": n.skip_reason} for n in sole[:FAILED_LISTED]]
        if self.phase is not None:
            out["phase"] = str(self.phase)
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        if self.report_config_map:
            out["reportConfigMap"] = self.report_config_map
        if self.message:
            out["message"] = self.message
        return out


#: Failed nodes named in the NodeMigration's status; the rest are counted (their records are in their
#: NodeMigrationNode objects).
FAILED_LISTED = 20
FAILED_MESSAGE_MAX = 300


#: Nodes named in the `Current` printer column; the rest are counted (all are in `inFlight`).
CURRENT_COLUMN_NAMES = 5


def _current_column(names: list[str]) -> str:
    head = ",".join(names[:CURRENT_COLUMN_NAMES])
    more = len(names) - CURRENT_COLUMN_NAMES
    return f"{head} +{more} more" if more > 0 else head


def _failed_entry(record: NodeRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"name": record.name, "phase": str(record.phase)}
    if record.last_error is not None:
        out["step"] = record.last_error.step
        out["message"] = record.last_error.message[:FAILED_MESSAGE_MAX]
    return out
