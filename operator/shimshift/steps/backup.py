"""The backup step: every file the later steps change, saved once under
/var/lib/shimshift/<migration>/backup/ on the node (containerd's config and hosts files in
backup/containerd, the kubelet's flags and config files in backup/kubelet; a path that does not exist
is recorded as absent). Playbook `playbooks/backup.yaml`, script `backup.sh`, one round trip.

The backups are what the undo of configure and switch restore; they are kept after the migration, so
the step itself has no undo. A node that is not a Docker node is refused before anything changes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, playbook_halves
from shimshift.steps.nodeplan import NodeRunPlan

PLAYBOOK = "backup"


def _variables(plan: NodeRunPlan) -> dict[str, Any]:
    plan.checked()
    return {
        "containerd_backup": plan.backup_dir("containerd"),
        "containerd_paths": plan.containerd_paths,
        "kubelet_backup": plan.backup_dir("kubelet"),
        "kubelet_paths": plan.kubelet_paths,
    }


def backup_root(plan: NodeRunPlan) -> str:
    """Where the backups are, as the node record keeps it."""
    return f"{plan.state_dir}/backup"


_run_on_node, _ = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    facts = ctx.facts_of(migration, port, record.name)
    return Outcome(True, replace(record, backup_dir=port.backup(record.name, facts)))


STEP = Step(StepId.BACKUP, _run, node_run=_run_on_node, scripts=("backup",))
