"""One bounded drain pass of a node for a step, shared by the drain step and the undo step (which drains
a Succeeded node again before its rollback on request): the step's timeout runs from its recorded
start, `spec.drain.onTimeout` decides what a timeout does, and the outcome says which
PodDisruptionBudgets the node waits on.
"""

from __future__ import annotations

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import DrainTimeoutAction
from shimshift.model.status import EventReason, NodeRecord
from shimshift.steps.base import Outcome, StepContext, StepFailed


def drain_once(
    ctx: StepContext, migration: NodeMigration, record: NodeRecord, step: StepId = StepId.DRAIN
) -> Outcome:
    """One drain pass of `record`'s node for `step` (drain, or the undo that drains again): its timeout
    runs from that step's recorded start."""
    drain, name = migration.spec.drain, record.name
    elapsed = ctx.elapsed(record, step)
    previous = next((s.message for s in record.steps if s.id == step), "")
    escalate = False
    if elapsed >= drain.timeout:
        if drain.on_timeout != DrainTimeoutAction.DELETE_PODS:
            raise StepFailed(
                f"drain of node {name} timed out after {drain.timeout:.0f}s (spec.drain.timeout): "
                f"{previous or 'pods did not leave'}"
            )
        escalate = True
        ctx.cluster.event(
            migration,
            name,
            True,
            EventReason.DRAIN_ESCALATED,
            f"node {name}: drain timed out; deleting remaining pods bypassing PodDisruptionBudgets "
            "(spec.drain.onTimeout: DeletePods)",
        )
    wait = max(1.0, min(ctx.config.drain_pass_wait, drain.timeout - elapsed))
    began = ctx.monotonic()
    progress = ctx.cluster.drain_pass(name, drain, wait=wait, escalate=escalate)
    ctx.observer.drain_waited(ctx.monotonic() - began, bool(progress.blocked))
    if progress.refused:
        raise StepFailed(progress.describe())
    message = progress.describe()
    if progress.done:
        return Outcome(True, record, message, waits_on_budgets=())
    if progress.blocked and message != previous:
        ctx.cluster.event(migration, name, True, EventReason.EVICTION_BLOCKED, message)
    return Outcome(False, record, message, waits_on_budgets=progress.budgets)
