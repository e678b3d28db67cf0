"""The finish step: once the node verified, through the API the completion label (and the cri-socket
annotation, if asked), the canary pod deleted where one can have run (verify deletes it; a crash right
after may not have), uncordon (only a cordon shimshift made) and the lock released (with the
autoscaler annotation, if shimshift set it); the node port is told the node is done (its connection
closes). Nothing changes on the node here: Docker stays installed and stopped and the backups stay,
so the node can be rolled back on request (`steps.undo`) until `spec.commit` ends its rollback window
(`steps.commit` applies `spec.docker` and removes the backups).
"""

from __future__ import annotations

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, owner, spec = record.name, migration.name, migration.spec
    facts = ctx.facts_of(migration, port, name)
    port.finish(name, facts)
    endpoint = spec.kubelet.runtime_endpoint if spec.kubelet.update_cri_socket_annotation else None
    ctx.cluster.mark_migrated(name, endpoint)
    ctx.cluster.uncordon(name, owner)
    ctx.cluster.release_lock(name, owner)
    return Outcome(True, record, "labelled, uncordoned (if shimshift cordoned it), lock released")


STEP = Step(StepId.FINISH, _run)
