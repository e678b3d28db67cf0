"""The drain step: the node's pods leave through the Eviction API with kubectl's rules, one bounded pass
at a time, until `spec.drain.timeout` (measured from the step's recorded start, so it survives
restarts); then fail, or with `onTimeout: DeletePods` delete what is left, bypassing budgets.

Which pod goes how is `shimshift.planning.drain.classify_pod` (the plan report uses the same rules);
one pass against the API is `shimshift.kube.drain.drain_pass`, behind `StepCluster.drain_pass`. With
its Done the step records the DaemonSets that have a pod on the node, which verify waits for. Each
pass tells the engine the PodDisruptionBudgets the node waits on (the `DrainBlocked` condition). Pods
are not put back: there is no undo.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import DrainTimeoutAction
from shimshift.model.status import EventReason, NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, StepFailed


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    outcome = drain_once(ctx, migration, record)
    if not outcome.done:
        return outcome
    # what must run here again after the switch, recorded with the drain's Done (one write)
    daemonsets = ctx.cluster.daemonsets_on(record.name)
    return replace(outcome, record=replace(outcome.record, daemonsets=daemonsets))


def drain_once(ctx: StepContext, migration: NodeMigration, record: NodeRecord) -> Outcome:
    drain, name = migration.spec.drain, record.name
    elapsed = ctx.elapsed(record, StepId.DRAIN)
    previous = next((s.message for s in record.steps if s.id == StepId.DRAIN), "")
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


STEP = Step(StepId.DRAIN, _run)
