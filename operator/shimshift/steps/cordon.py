"""The cordon step: the node unschedulable, remembering whether an admin had cordoned it already (that
cordon is never undone). Through the Kubernetes API only; its undo (uncordon, only a cordon
shimshift made) runs in the finish step and in the rollback.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    was = ctx.cluster.cordon(record.name, migration.name)
    if record.was_unschedulable is not None:
        was = record.was_unschedulable  # the first answer is the truth; ours hides it on resume
    note = "already cordoned by someone else; it stays cordoned" if was else "cordoned"
    return Outcome(True, replace(record, was_unschedulable=was), note)


STEP = Step(StepId.CORDON, _run)
