"""Wires the containerd renderer and the kubelet planner into plan reports (`PlanHooks`).

`shimshift.planning` and `shimshift.rendering` are sibling layers and may not import each other, so
the composition happens here, above both: the CLI (`shimshift plan`) and the operator (`mode: Plan`)
call `plan_hooks()` and pass the result to `shimshift.planning.build.build_plan`. Pure apart from
that: no I/O, no clock.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import replace

from shimshift.model import keys
from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.cluster import Node
from shimshift.planning.kubelet import plan_kubelet_switch
from shimshift.planning.report import Carryover, FileChange, FileSection, PlanHooks
from shimshift.rendering import RegistryMaterial, render_node_config
from shimshift.rendering.redact import redact_text
from shimshift.rendering.values import shown


def containerd_files(
    spec: NodeMigrationSpec, node: Node, facts: NodeFacts, material: RegistryMaterial | None = None
) -> FileSection:
    """config.toml and certs.d/<host>/hosts.toml as the configure step would write them.

    `material` holds the CA bundles and client certificates of spec registries that name Secrets;
    offline it is empty and such registries are reported by the renderer as problems. The section is
    for people: credential values in the files are redacted (rendering/redact.py).
    """
    rendered = render_node_config(spec, facts, material or RegistryMaterial())
    from_secrets = _from_secrets(spec, rendered.layout.certs_dir)
    current: Mapping[str, str | None] = {rendered.layout.config_file: facts.containerd_config}

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


def kubelet_files(spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> FileSection:
    """The kubelet flags/config edit the switch step makes, and the Node annotation it updates."""
    switch = plan_kubelet_switch(
        node.name,
        facts.kubelet,
        endpoint=spec.kubelet.runtime_endpoint,
        method=spec.kubelet.config_method,
        kubelet_version=None if facts.kubelet.version else (node.kubelet_version or None),
    )
    notes = [f"runtime endpoint {switch.endpoint} set by {switch.endpoint_key} in {switch.endpoint_file}"]
    if switch.removed_flags:
        notes.append(
            "flags removed (dockershim-only or refused by this kubelet): " + ", ".join(switch.removed_flags)
        )
    notes += list(switch.notes)
    annotation = node.annotations.get(keys.CRI_SOCKET_ANNOTATION)
    if annotation is not None and spec.kubelet.update_cri_socket_annotation:
        notes.append(
            f"Node annotation {keys.CRI_SOCKET_ANNOTATION}: {annotation} -> {spec.kubelet.runtime_endpoint}"
        )
    changes = tuple(
        FileChange(e.path, _no_userinfo(e.before), _no_userinfo(e.after)) for e in switch.edits
    )  # a flags file may set e.g. HTTPS_PROXY=http://user:password@proxy
    return FileSection(True, "", changes, tuple(notes))


def _no_userinfo(text: str | None) -> str | None:
    return None if text is None else redact_text(text)


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

    def __call__(self, spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> FileSection:
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
            section = containerd_files(spec, node, facts, self._material)
            if facts.node not in repr(section):
                self._seen[key] = section
        return section


class SharedKubeletEdits:
    """`kubelet_files` computed once per distinct kubelet setup (files, version, cri-socket annotation)."""

    def __init__(self) -> None:
        self._spec: NodeMigrationSpec | None = None
        self._seen: dict[str, FileSection] = {}

    def __call__(self, spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> FileSection:
        if spec is not self._spec:
            self._spec, self._seen = spec, {}
        key = repr((facts.kubelet, node.kubelet_version, node.annotations.get(keys.CRI_SOCKET_ANNOTATION)))
        section = self._seen.get(key)
        if section is None:
            section = kubelet_files(spec, node, facts)
            if node.name not in repr(section):
                self._seen[key] = section
        return section


def plan_hooks(material: RegistryMaterial | None = None) -> PlanHooks:
    """Fresh hooks for one plan (renders and kubelet edits are shared between look-alike nodes).

    `material`: the registry Secrets as the operator resolved them (`shimshift.nodeport.registry_material`),
    so the plan renders what Migrate mode writes; None offline, where such registries are blockers."""
    return PlanHooks(containerd=SharedRenders(material), kubelet=SharedKubeletEdits())
