"""The finish step: once the node verified, Docker per `spec.docker` on the node (playbook
`playbooks/cleanup.yaml`: `docker: Stop` disables Docker and cri-dockerd and removes the stale
docker.sock, script `docker_disable.sh`; its undo `docker_enable.sh`), then through the API the
completion label (and the cri-socket annotation, if asked), the canary pod deleted where one
can have run (verify deletes it; a crash right after may not have), uncordon (only a cordon shimshift made)
and the lock released (with the autoscaler annotation, if shimshift set it).
"""

from __future__ import annotations

from typing import Any

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, playbook_halves
from shimshift.steps.nodeplan import NodeRunPlan

PLAYBOOK = "cleanup"


def _variables(plan: NodeRunPlan) -> dict[str, Any]:
    plan.checked()
    return {"docker_policy": plan.docker_policy.value, "state_dir": plan.state_dir}


_run_on_node, _undo_on_node = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, owner, spec = record.name, migration.name, migration.spec
    facts = ctx.facts_of(migration, port, name)
    port.finish(name, facts)
    endpoint = spec.kubelet.runtime_endpoint if spec.kubelet.update_cri_socket_annotation else None
    ctx.cluster.mark_migrated(name, endpoint)
    if spec.verify.canary.enabled and ctx.canary_image(migration, facts) is not None:
        ctx.cluster.delete_canaries(name)  # verify deleted its canary; a crash right after may not have
    ctx.cluster.uncordon(name, owner)
    ctx.cluster.release_lock(name, owner)
    return Outcome(True, record, "labelled, uncordoned (if shimshift cordoned it), lock released")


STEP = Step(
    StepId.FINISH,
    _run,
    node_run=_run_on_node,
    node_undo=_undo_on_node,
    scripts=("docker_disable", "docker_enable"),
)
