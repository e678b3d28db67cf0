"""The rollback step: after a failure in backup..verify (or a stop before them), the undo of every step
done so far, in reverse, on the node (`NodePort.undo`, which runs each step's own undo: finish,
switch, configure, images; see `steps.table.ROLLBACK_ORDER`), a bounded wait for the node to report
Ready on Docker again, then the verify step's canary pod deleted (whatever a failure or a crash
left), uncordon (only a cordon shimshift made) and the lock released (with the
autoscaler annotation, if shimshift set it). A rollback before anything changed on the node only
uncordons and unlocks.
"""

from __future__ import annotations

import logging

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext
from shimshift.steps.machine import needs_node_undo

log = logging.getLogger(__name__)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, owner, config = record.name, migration.name, ctx.config
    if needs_node_undo(record):
        port.undo(name, ctx.cached_facts(migration, name))
        elapsed = ctx.elapsed(record, StepId.ROLLBACK)
        wait = max(1.0, min(config.wait_slice, config.rollback_wait - elapsed))
        if not ctx.cluster.wait_node(name, runtime="docker", timeout=wait):
            if elapsed + wait < config.rollback_wait:
                return Outcome(False, record, "waiting for the kubelet to report Ready on Docker again")
            log.error("node %s: not Ready on Docker %.0fs after rollback; uncordoning anyway", name, elapsed)
    ctx.cluster.delete_canaries(name)  # a verify interrupted by a crash or a failure may leave one
    ctx.cluster.uncordon(name, owner)
    ctx.cluster.release_lock(name, owner)
    return Outcome(True, record, "node changes undone, uncordoned (if shimshift cordoned it), lock released")


STEP = Step(StepId.ROLLBACK, _run)
