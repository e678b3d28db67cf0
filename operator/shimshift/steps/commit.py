"""The commit step: the end of a Succeeded node's rollback window, once `spec.commit` is true
(`planning.undo` begins it). On the node (playbook `playbooks/commit.yaml`): Docker per `spec.docker`
(`Stop` stops and disables Docker and cri-dockerd and removes the stale docker.sock, script
`docker_disable.sh`; `Keep` leaves it), then the backups under /var/lib/shimshift/<migration>/backup
removed (script `backup_remove.sh`); then, through the API, the Node's record of kubeadm's cri-socket
annotation from before the finish step is dropped (an undo would have put it back). All idempotent.
After it the node cannot be undone. The
Docker part has an undo (`docker_enable.sh`), which a rollback of a node migrated by an earlier
version (that stopped Docker at its finish) still runs; removed backups have none.
"""

from __future__ import annotations

from typing import Any

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, playbook_halves
from shimshift.steps.nodeplan import NodeRunPlan

PLAYBOOK = "commit"


def _variables(plan: NodeRunPlan) -> dict[str, Any]:
    plan.checked()
    return {
        "docker_policy": plan.docker_policy.value,
        "state_dir": plan.state_dir,
        "backup_root": f"{plan.state_dir}/backup",
    }


_run_on_node, _undo_on_node = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    port.commit(record.name, ctx.facts_of(migration, port, record.name))
    ctx.cluster.forget_cri_socket(record.name)
    return Outcome(
        True,
        record,
        f"Docker per spec.docker ({migration.spec.docker}), backups removed: rollback window closed",
    )


STEP = Step(
    StepId.COMMIT,
    _run,
    node_run=_run_on_node,
    node_undo=_undo_on_node,
    scripts=("docker_disable", "docker_enable", "backup_remove"),
)
