"""The configure step: containerd's config.toml, certs.d/<host>/hosts.toml and the drop-ins with
Docker's HTTP proxy (containerd.service.d/http-proxy.conf) and the containers' limits
(containerd.service.d/limits.conf), rendered from the spec and the node's
facts (`shimshift.rendering.render_node_config`), installed atomically (temp file, sha256,
`containerd --config <tmp> config dump` for config.toml, rename), systemd's units reloaded,
containerd restarted, its CRI plugin required `ok`. Playbook `playbooks/configure.yaml`, scripts
`containerd_apply.sh` and, for the undo, `containerd_undo.sh` (the saved files back, systemd's units
reloaded, containerd restarted with them: a drop-in the step added is removed again).

The plan half (`containerd_files`, `SharedRenders`) is what the plan report shows of these files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shimshift.model import keys
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import NodeRecord
from shimshift.rendering import RegistryMaterial, render_node_config
from shimshift.rendering.redact import redact_text
from shimshift.rendering.values import shown
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, playbook_halves
from shimshift.steps.filesection import Carryover, FileChange, FileSection, PlannedNode
from shimshift.steps.nodeplan import NodeRunPlan

PLAYBOOK = "configure"


# ---- plan ---------------------------------------------------------------------------------------


def containerd_files(
    spec: NodeMigrationSpec, facts: NodeFacts, material: RegistryMaterial | None = None
) -> FileSection:
    """config.toml and certs.d/<host>/hosts.toml as the configure step would write them.

    `material` holds the CA bundles and client certificates of spec registries that name Secrets;
    offline it is empty and such registries are reported by the renderer as problems. The section is
    for people: credential values in the files are redacted (rendering/redact.py).
    """
    rendered = render_node_config(spec, facts, material or RegistryMaterial())
    from_secrets = _from_secrets(spec, rendered.layout.certs_dir)
    current: Mapping[str, str | None] = {
        rendered.layout.config_file: facts.containerd_config,
        **facts.containerd_dropins,
    }

    def view(path: str, text: str | None) -> str | None:
        return None if text is None else shown(path, text)

    changes = tuple(
        FileChange(
            f.path,
            view(f.path, current.get(f.path)),
            view(f.path, f.content.decode("utf-8", "replace")),
            secret=f.secret or f.path in from_secrets,
        )
        for f in rendered.files
    )
    rep = rendered.report
    notes = [
        f"config version {rep.config_version}: {rep.config_version_reason}",
        f"sandbox image {rep.sandbox_image}: {rep.sandbox_image_reason}",
        f"SystemdCgroup = {str(rep.systemd_cgroup).lower()}: {rep.cgroup_reason}",
    ]
    notes += [
        f"spec registry wins for {c.host} ({c.kept}); translated {c.translated} dropped"
        for c in rep.conflicts
    ]
    notes += [f"kept from the current config.toml: {p}" for p in rep.preserved]
    notes += list(rep.proxy_notes)
    notes += list(rep.runtime_notes)
    notes += list(rep.limits_notes)
    if any(f.path.startswith(rendered.layout.certs_dir) for f in rendered.files):
        notes.append(
            f"files under {rendered.layout.certs_dir} are shown as new: the probe does not read existing ones"
        )
    if any(f.path in from_secrets for f in rendered.files):
        notes.append(
            "registry CA and client certificate files from Secrets are shown by sha256 only; each was "
            "checked to hold X.509 certificates only (a client key: the certificate's own, written 0600)"
        )
    carryover = tuple(
        Carryover(t.source, t.host, redact_text(t.summary), True) for t in rep.translated
    ) + tuple(Carryover(n.source, redact_text(n.value), n.replacement, False) for n in rep.not_carried)
    return FileSection(
        True, "", changes, tuple(redact_text(n) for n in notes), carryover, tuple(rep.warnings)
    )


def _from_secrets(spec: NodeMigrationSpec, certs_dir: str) -> set[str]:
    """The certs.d files whose content comes from a Secret (caSecretRef, clientCertSecretRef): a plan
    shows them by hash only, as it does the client key (the report lands in a ConfigMap)."""
    paths: set[str] = set()
    for reg in spec.containerd.registries:
        if reg.ca_secret is not None:
            paths.add(posixpath.join(certs_dir, reg.host, "ca.crt"))
        if reg.client_cert_secret is not None:
            paths.add(posixpath.join(certs_dir, reg.host, "client.cert"))
    return paths


class SharedRenders:
    """`containerd_files` that renders once per distinct input in a fleet of look-alike nodes.

    The renderer reads the node's containerd, Docker and kubelet facts but not its inventory (images,
    containers, free disk; tests/unit/planning/test_wiring.py holds it to that), so nodes that differ
    only in those share a render. A render whose output names the node is never shared.
    """

    def __init__(self, material: RegistryMaterial | None = None) -> None:
        self._spec: NodeMigrationSpec | None = None
        self._seen: dict[str, FileSection] = {}
        self._material = material

    def __call__(self, spec: NodeMigrationSpec, node: PlannedNode, facts: NodeFacts) -> FileSection:
        if spec is not self._spec:
            self._spec, self._seen = spec, {}
        key = repr(
            replace(
                facts,
                node="",
                images=(),
                containers=(),
                containerd_images=(),
                containerd_root_free_bytes=None,
            )
        )
        section = self._seen.get(key)
        if section is None:
            section = containerd_files(spec, facts, self._material)
            if facts.node not in repr(section):
                self._seen[key] = section
        return section


# ---- run and undo on the node -------------------------------------------------------------------


def _variables(plan: NodeRunPlan) -> dict[str, Any]:
    plan.checked()
    return {
        "files": list(plan.containerd_files),
        "state_dir": plan.state_dir,
        "containerd_backup": plan.backup_dir("containerd"),
        "config_path": keys.CONTAINERD_CONFIG,
        "wait_seconds": str(plan.wait_seconds),
        "proxy_dropin": keys.CONTAINERD_PROXY_DROPIN,
        "limits_dropin": keys.CONTAINERD_LIMITS_DROPIN,
    }


_run_on_node, _undo_on_node = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    port.configure(record.name, ctx.facts_of(migration, port, record.name))
    return Outcome(True, record)


STEP = Step(
    StepId.CONFIGURE,
    _run,
    node_run=_run_on_node,
    node_undo=_undo_on_node,
    scripts=("upload", "containerd_apply", "containerd_undo"),
)
