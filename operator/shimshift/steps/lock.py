"""The lock step: the Node annotation naming the NodeMigration (`shimshift.io/locked-by`), so no other
NodeMigration (or replica) migrates the node at the same time, and in the same patch the cluster
autoscaler's `scale-down-disabled=true` (unless the node already carries it; `shimshift.model.nodelock`).
Through the Kubernetes API only; the finish step and the rollback release both.
"""

from __future__ import annotations

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    ctx.cluster.acquire_lock(record.name, migration.name)
    return Outcome(True, record)


STEP = Step(StepId.LOCK, _run)
