"""The rollback step: after a failure in backup..verify (or a stop before the switch in the staged
order, before backup in the old one), the undo of every step done so far, in reverse, on the node
(`NodePort.undo`, which runs each step's own undo: finish, switch, configure, images, whose undo is
the re-check's too; see `steps.table.ROLLBACK_ORDER`), a bounded wait for the node to report Ready on
Docker again, kubeadm's cri-socket annotation set back if the finish step changed it (a finish that
failed, or a Succeeded node undone on request before its commit), the
verify step's canary pod deleted (whatever a failure or a crash left), then uncordon (only a cordon
shimshift made) and the lock released (with the autoscaler annotation, if shimshift set it). A
rollback before anything changed on the node only uncordons and unlocks.

The same step ends a rollback on request (`steps.undo` cordoned and drained the Succeeded node): then
the completion label goes too, and the node's shimshift.io/undo annotation is removed if it still
holds the value acted on. After a failed undo it only uncordons and unlocks: nothing changed.
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
    if needs_node_undo(record) and not record.undo_failed:
        port.undo(name, ctx.cached_facts(migration, name))
        elapsed = ctx.elapsed(record, StepId.ROLLBACK)
        wait = max(1.0, min(config.wait_slice, config.rollback_wait - elapsed))
        if not ctx.cluster.wait_node(name, runtime="docker", timeout=wait):
            if elapsed + wait < config.rollback_wait:
                return Outcome(False, record, "waiting for the kubelet to report Ready on Docker again")
            log.error("node %s: not Ready on Docker %.0fs after rollback; uncordoning anyway", name, elapsed)
    ctx.cluster.delete_canaries(name)  # a verify interrupted by a crash or a failure may leave one
    ctx.cluster.restore_cri_socket(name)  # a finish that changed it: failed, or undone on request
    on_request = record.undo_request and not record.undo_failed
    if on_request:  # back on Docker: not a completed node any more
        ctx.cluster.unmark_migrated(name)
    ctx.cluster.uncordon(name, owner)
    ctx.cluster.release_lock(name, owner)
    asked = record.undo_annotation
    if asked is not None:  # the one-shot request is handled (done or failed): ours to remove
        ctx.cluster.clear_undo_request(name, asked)
    if record.undo_failed:
        return Outcome(True, record, "undo stopped before the node changed: uncordoned, lock released")
    if on_request:
        return Outcome(
            True,
            record,
            "rolled back to Docker on request: uncordoned (if shimshift cordoned it), lock released",
        )
    return Outcome(True, record, "node changes undone, uncordoned (if shimshift cordoned it), lock released")


STEP = Step(StepId.ROLLBACK, _run)
