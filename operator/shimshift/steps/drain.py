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
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext
from shimshift.steps.drainpass import drain_once


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    outcome = drain_once(ctx, migration, record)
    if not outcome.done:
        return outcome
    # what must run here again after the switch, recorded with the drain's Done (one write)
    daemonsets = ctx.cluster.daemonsets_on(record.name)
    return replace(outcome, record=replace(outcome.record, daemonsets=daemonsets))


STEP = Step(StepId.DRAIN, _run)
