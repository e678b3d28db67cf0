"""The undo step: a Succeeded node rolled back to Docker on request (`planning.undo` begins it while the
rollback window is open). Through the API only: the node lock taken again, the node cordoned (an
admin's cordon stays the admin's) and drained with the same rules and `spec.drain.timeout` as the
migration's drain, measured from this step's recorded start. The node change is the `rollback` step's,
which follows: every changing step's undo in reverse from the backups, the kubelet back on Docker,
Ready on Docker, uncordon, lock released. A failed undo (a drain that timed out) changed nothing on
the node: the rollback then only uncordons, and the node stays Succeeded on containerd.
"""

from __future__ import annotations

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext
from shimshift.steps.drainpass import drain_once


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, owner = record.name, migration.name
    ctx.cluster.acquire_lock(name, owner)
    ctx.cluster.cordon(name, owner)  # idempotent; whose cordon it is lives on the Node
    outcome = drain_once(ctx, migration, record, StepId.UNDO)
    if not outcome.done:
        return outcome
    return Outcome(True, record, f"locked, cordoned, drained ({outcome.message}); rolling back to Docker", ())


STEP = Step(StepId.UNDO, _run)
