"""The switch step: the kubelet moves to containerd. The edit is planned from values
(`steps.switch.kubelet.plan_kubelet_switch`: which flags and config files change, their exact new
bytes, version-aware); on the node the edited files are staged next to their targets (checked by
sha256), then one command stops the kubelet, Docker's Kubernetes containers and the Docker services,
moves the staged files into place and starts the kubelet. Playbook `playbooks/switch.yaml`, scripts
`switch.sh` and, for the undo, `switch_undo.sh` (kubelet stopped, its files back byte for byte, what
the switch stopped started again).

The plan half (`kubelet_files`, `SharedKubeletEdits`) is what the plan report shows of the edit.
"""

from __future__ import annotations

from typing import Any

from shimshift.model import keys
from shimshift.model.dockerera import log_rotation
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import NodeRecord
from shimshift.playbooks import NodeFile
from shimshift.rendering.redact import redact_text
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, playbook_halves
from shimshift.steps.filesection import FileChange, FileSection, PlannedNode
from shimshift.steps.nodeplan import NodeRunPlan
from shimshift.steps.switch.kubelet import KubeletSwitch, plan_kubelet_switch

PLAYBOOK = "switch"
_UNIT_VERBS = {"removed": "removed from", "added": "added to"}
STAGED_SUFFIX = ".shimshift-new"


# ---- plan ---------------------------------------------------------------------------------------


def plan_switch(
    spec: NodeMigrationSpec, node: str, facts: NodeFacts, *, kubelet_version: str | None = None
) -> KubeletSwitch:
    """The kubelet edit the switch makes on `node`, from its facts and the spec's kubelet settings
    (and Docker's json-file log rotation, which the kubelet's rotation carries)."""
    return plan_kubelet_switch(
        node,
        facts.kubelet,
        endpoint=spec.kubelet.runtime_endpoint,
        method=spec.kubelet.config_method,
        kubelet_version=kubelet_version,
        log_rotation=log_rotation(facts.daemon_json),
    )


def kubelet_files(spec: NodeMigrationSpec, node: PlannedNode, facts: NodeFacts) -> FileSection:
    """The kubelet flags/config edit the switch step makes, and the Node annotation it updates."""
    version = None if facts.kubelet.version else (node.kubelet_version or None)
    switch = plan_switch(spec, node.name, facts, kubelet_version=version)
    notes = [f"runtime endpoint {switch.endpoint} set by {switch.endpoint_key} in {switch.endpoint_file}"]
    if switch.removed_flags:
        notes.append(
            "flags removed (dockershim-only or refused by this kubelet): " + ", ".join(switch.removed_flags)
        )
    if switch.unit_changes:
        notes.append(
            "kubelet units edited, then `systemctl daemon-reload`: "
            + "; ".join(
                f"{flag} {_UNIT_VERBS.get(what, f'set to {what} in')} {path}"
                for path, flag, what in switch.unit_changes
            )
        )
    if switch.log_rotation:
        notes.append(
            "Docker's log rotation (daemon.json log-opts) carried: "
            + ", ".join(f"{key} {value} in {path}" for key, value, path in switch.log_rotation)
        )
    notes += list(switch.notes)
    annotation = node.annotations.get(keys.CRI_SOCKET_ANNOTATION)
    if annotation is not None and spec.kubelet.update_cri_socket_annotation:
        notes.append(
            f"Node annotation {keys.CRI_SOCKET_ANNOTATION}: {annotation} -> {spec.kubelet.runtime_endpoint} "
            "at the finish step, so kubeadm upgrade uses containerd (a rollback sets the old value again)"
        )
    changes = tuple(
        FileChange(e.path, _no_userinfo(e.before), _no_userinfo(e.after)) for e in switch.edits
    )  # a flags file may set e.g. HTTPS_PROXY=http://user:password@proxy
    return FileSection(True, "", changes, tuple(notes))


def _no_userinfo(text: str | None) -> str | None:
    return None if text is None else redact_text(text)


class SharedKubeletEdits:
    """`kubelet_files` computed once per distinct kubelet setup (files, version, cri-socket annotation)."""

    def __init__(self) -> None:
        self._spec: NodeMigrationSpec | None = None
        self._seen: dict[str, FileSection] = {}

    def __call__(self, spec: NodeMigrationSpec, node: PlannedNode, facts: NodeFacts) -> FileSection:
        if spec is not self._spec:
            self._spec, self._seen = spec, {}
        key = repr(
            (
                facts.kubelet,
                log_rotation(facts.daemon_json),
                node.kubelet_version,
                node.annotations.get(keys.CRI_SOCKET_ANNOTATION),
            )
        )
        section = self._seen.get(key)
        if section is None:
            section = kubelet_files(spec, node, facts)
            if node.name not in repr(section):
                self._seen[key] = section
        return section


# ---- run and undo on the node -------------------------------------------------------------------


def staged_files(plan: NodeRunPlan) -> list[NodeFile]:
    """The edited kubelet files, uploaded next to their targets before the switch moves them in."""
    return [
        NodeFile(e.path + STAGED_SUFFIX, e.after.encode(), 0o644, done_if=e.path) for e in plan.kubelet_edits
    ]


def _variables(plan: NodeRunPlan) -> dict[str, Any]:
    plan.checked()
    edits, staged = plan.kubelet_edits, staged_files(plan)
    pairs: list[str] = []
    for e, f in zip(edits, staged, strict=True):
        pairs += [e.path, f.sha256]
    return {
        "staged_files": staged,
        "switch_pairs": pairs,
        "targets": [e.path for e in edits],
        "state_dir": plan.state_dir,
        "kubelet_backup": plan.backup_dir("kubelet"),
        "wait_seconds": str(plan.wait_seconds),
        "stop_grace_seconds": str(plan.stop_grace_seconds),
    }


_run_on_node, _undo_on_node = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    port.switch(record.name, ctx.facts_of(migration, port, record.name))
    return Outcome(True, record)


STEP = Step(
    StepId.SWITCH,
    _run,
    node_run=_run_on_node,
    node_undo=_undo_on_node,
    scripts=("upload", "switch", "switch_undo"),
)
