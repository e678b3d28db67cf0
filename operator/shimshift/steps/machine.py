"""The per-node step machine as a pure function: given what status says about a node, what runs next.

Status is the only memory: a step recorded `Started` but not `Done` was interrupted (a crash, a
restart, a lost leader) and runs again, which is safe because every step checks before it changes
anything. A failure in the steps that change the node (backup..verify) leads to `rollback`, which
undoes the node's changes in reverse, uncordons (only a cordon shimshift made) and releases the lock;
a failure before them leads to the same `rollback` step, which then has nothing to undo on the node.
The order is `spec.staging`'s, or the node's own as its facts step recorded it
(`shimshift.model.steporder.node_staging`): by default the node's changes that need
no drain (backup, configure, images) run before the cordon, so a failure there rolls back a node that
was never cordoned.

After success, two more steps (begun by the fleet rules, `planning.undo`): `undo` (a rollback on
request: lock, cordon and drain again, then the same `rollback`; if the undo itself fails the rollback
only uncordons and the node stays Succeeded on containerd) and `commit` (the rollback window ends).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from shimshift.model.keys import ROLLBACK_STEPS, StepId
from shimshift.model.spec import RollbackPolicy, Staging
from shimshift.model.status import NodePhase, NodeRecord, StepState
from shimshift.model.steporder import abortable_steps, record_staging, step_order

#: How often a step may fail transiently (API hiccup, SSH drop) before it counts as failed.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Next:
    """What to do with a node: run `step`, or nothing (`step is None`) and settle on `phase`."""

    step: StepId | None
    phase: NodePhase


def needs_node_undo(record: NodeRecord) -> bool:
    """True when a step that changes the node (backup..verify) has started, so rollback must undo it."""
    return any(s.id in ROLLBACK_STEPS for s in record.steps)


def _after_rollback(record: NodeRecord) -> NodePhase:
    if record.undo_failed:
        return NodePhase.SUCCEEDED  # the undo stopped before the node changed: still on containerd
    return NodePhase.ROLLED_BACK if needs_node_undo(record) else NodePhase.FAILED


def next_step(
    record: NodeRecord,
    policy: RollbackPolicy,
    *,
    stopping: bool = False,
    staging: Staging = Staging.BEFORE_CORDON,
    hooks: Collection[StepId] = (),
) -> Next:
    """The next step for a node in flight; `stopping` is true while its NodeMigration is being deleted,
    `staging` (spec.staging) picks the order, `hooks` the hook steps it holds (spec.rollout.hooks).
    After a step is done, the next is the first step of the order not yet done: a node whose
    spec.staging changed mid-way still runs every step once. A node whose facts step recorded its own
    order (`NodeRecord.staging`: AfterCordon where containerd's restart would kill Docker's containers)
    runs that one."""
    staging = record_staging(record.staging, staging)
    if record.phase.finished or record.phase == NodePhase.PENDING:
        return Next(None, record.phase)
    step, state = record.step, record.step_state
    if step is None:
        return Next(StepId.FACTS, NodePhase.IN_PROGRESS)
    if step == StepId.UNDO:  # a Succeeded node rolled back on request: cordon and drain, then rollback
        if state == StepState.STARTED:
            return Next(StepId.UNDO, NodePhase.ROLLING_BACK)
        return Next(StepId.ROLLBACK, NodePhase.ROLLING_BACK)  # Failed: rollback only uncordons
    if step == StepId.COMMIT:  # the rollback window of a Succeeded node ends
        if state == StepState.STARTED:
            return Next(StepId.COMMIT, NodePhase.IN_PROGRESS)
        return Next(None, NodePhase.SUCCEEDED)  # Failed: lastError says why; it is not retried
    if step == StepId.ROLLBACK:
        if state == StepState.DONE:
            return Next(None, _after_rollback(record))
        if state == StepState.FAILED:
            return Next(None, NodePhase.FAILED)  # a person must look: lastError says what failed
        return Next(StepId.ROLLBACK, NodePhase.ROLLING_BACK)
    if state == StepState.FAILED:
        if step in ROLLBACK_STEPS and policy == RollbackPolicy.MANUAL:
            return Next(None, NodePhase.FAILED)
        return Next(StepId.ROLLBACK, NodePhase.ROLLING_BACK)
    if stopping and step in abortable_steps(staging):
        return Next(StepId.ROLLBACK, NodePhase.ROLLING_BACK)
    if state == StepState.DONE:
        if step == StepId.FINISH:
            return Next(None, NodePhase.SUCCEEDED)
        done = {s.id for s in record.steps if s.state == StepState.DONE}
        pending = [s for s in step_order(staging, hooks) if s not in done]
        return Next(pending[0] if pending else StepId.FINISH, NodePhase.IN_PROGRESS)
    return Next(step, NodePhase.IN_PROGRESS)  # Started: interrupted or still waiting; run it again
