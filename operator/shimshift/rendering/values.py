"""The values rendering takes and returns: secret-derived material in, files and a report out.

`RegistryMaterial` carries what the operator resolved from Secrets (CA bundles, client certificate
pairs) so rendering stays a pure function. `RenderedFile.secret` marks content that must never be
printed, logged or put in a report (client keys): `display_text()` shows its sha256 instead. What is
shown of a TOML file (its text, its diff) has credential values redacted (rendering/redact.py); what
is written to the node is `content`, untouched.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shimshift.model import keys
from shimshift.rendering.redact import redact_text, redact_toml


def shown(path: str, text: str) -> str:
    """A file's text as people see it: a TOML file with its credential values redacted, any other
    with the passwords of its URLs redacted (a proxy drop-in's `http://user:password@proxy`)."""
    return redact_toml(text) if path.endswith(".toml") else redact_text(text)


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its private key (PEM), from a kubernetes.io/tls Secret."""

    cert_pem: str
    key_pem: str

    def __repr__(self) -> str:  # never print the key
        return f"ClientCert(cert_sha256={_sha(self.cert_pem.encode())[:12]}, key=<redacted>)"


@dataclass(frozen=True)
class RegistryMaterial:
    """Secret-derived inputs, keyed by the registry host of `spec.containerd.registries[].host`."""

    ca_bundles: Mapping[str, str] = field(default_factory=dict)  # host -> CA PEM (from caSecretRef)
    client_certs: Mapping[str, ClientCert] = field(default_factory=dict)  # host -> clientCertSecretRef
    #: (host, "caSecretRef" | "clientCertSecretRef") -> why the operator refused to read or use it
    #: (the Secret is missing or is one of the SSH Secrets); never the material itself.
    refused: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeLayout:
    """Where containerd's files live on the node. Tests point these at private directories."""

    config_file: str = keys.CONTAINERD_CONFIG
    certs_dir: str = keys.CONTAINERD_CERTS_DIR
    proxy_dropin: str = keys.CONTAINERD_PROXY_DROPIN
    limits_dropin: str = keys.CONTAINERD_LIMITS_DROPIN
    base_spec: str = keys.CONTAINERD_BASE_SPEC


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RenderedFile:
    """One file to write on the node."""

    path: str
    content: bytes
    mode: int = 0o644
    secret: bool = False

    @property
    def sha256(self) -> str:
        return _sha(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    def display_text(self) -> str:
        """The content for humans; a secret file shows only its hash and size."""
        if self.secret:
            return f"<secret: {len(self.content)} bytes, sha256 {self.sha256}>\n"
        return shown(self.path, self.text)


class ChangeKind(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@dataclass(frozen=True)
class ConfigChange:
    """One setting of config.toml that differs from the node's current file (dotted TOML key path)."""

    key: str
    kind: ChangeKind
    old: str | None
    new: str | None

    def __str__(self) -> str:
        if self.kind is ChangeKind.ADDED:
            return f"+ {self.key} = {self.new}"
        if self.kind is ChangeKind.REMOVED:
            return f"- {self.key} (was {self.old})"
        return f"~ {self.key}: {self.old} -> {self.new}"


@dataclass(frozen=True)
class NotCarried:
    """A Docker (or old containerd) setting with no containerd equivalent, and what replaces it."""

    source: str  # e.g. "daemon.json log-opts"
    value: str
    replacement: str


@dataclass(frozen=True)
class RegistryOverride:
    """A translated setting that a spec registry overrides."""

    host: str
    translated: str
    kept: str


@dataclass(frozen=True)
class TranslatedHost:
    """What was carried over from the node's Docker configuration for one registry host."""

    host: str
    source: str  # e.g. "daemon.json registry-mirrors"
    summary: str


@dataclass(frozen=True)
class RenderReport:
    config_version: int
    config_version_reason: str
    sandbox_image: str
    sandbox_image_reason: str
    systemd_cgroup: bool
    cgroup_reason: str
    translated: tuple[TranslatedHost, ...] = ()
    conflicts: tuple[RegistryOverride, ...] = ()
    not_carried: tuple[NotCarried, ...] = ()
    preserved: tuple[str, ...] = ()  # admin settings of the current config.toml kept as they were
    #: what becomes of Docker's HTTP proxy (the drop-in written, or containerd's own kept): for people
    proxy_notes: tuple[str, ...] = ()
    #: what becomes of Docker's other runtimes (`rendering.runtimes`), for people
    runtime_notes: tuple[str, ...] = ()
    #: what becomes of the limits the containers ran with (`rendering.limits`), for people
    limits_notes: tuple[str, ...] = ()
    changes: tuple[ConfigChange, ...] = ()
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """A human-readable report (no secret content)."""
        out = [
            f"config version {self.config_version}: {self.config_version_reason}",
            f"sandbox image {self.sandbox_image}: {self.sandbox_image_reason}",
            f"SystemdCgroup = {str(self.systemd_cgroup).lower()}: {self.cgroup_reason}",
        ]
        out += [f"translated {t.host} from {t.source}: {t.summary}" for t in self.translated]
        out += [
            f"conflict on {c.host}: spec registry wins ({c.kept}); translated {c.translated} dropped"
            for c in self.conflicts
        ]
        out += [
            f"not carried over: {n.source} = {n.value}; instead: {n.replacement}" for n in self.not_carried
        ]
        out += [f"kept from the current config.toml: {p}" for p in self.preserved]
        out += list(self.proxy_notes)
        out += list(self.runtime_notes)
        out += list(self.limits_notes)
        out += [f"warning: {w}" for w in self.warnings]
        if self.changes:
            out.append("changes to config.toml:")
            out += [f"  {c}" for c in self.changes]
        return [redact_text(line) for line in out]


@dataclass(frozen=True)
class RenderedConfig:
    files: tuple[RenderedFile, ...]
    report: RenderReport
    layout: NodeLayout = NodeLayout()

    def file(self, path: str) -> RenderedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    @property
    def config_toml(self) -> RenderedFile:
        return self.file(self.layout.config_file)

    def diff(self, current: Mapping[str, str | None]) -> str:
        """Unified diffs of every rendered file against the node's current text (None/absent = new).

        Secret files are compared by hash only and never shown; credentials in TOML files are redacted.
        """
        chunks: list[str] = []
        for f in self.files:
            old = current.get(f.path)
            if f.secret:
                old_sha = _sha(old.encode()) if old is not None else None
                if old_sha != f.sha256:
                    chunks.append(
                        f"--- {f.path}\n+++ {f.path}\n@@ secret file: sha256 {old_sha} -> {f.sha256}\n"
                    )
                continue
            diff = difflib.unified_diff(
                shown(f.path, old or "").splitlines(keepends=True),
                shown(f.path, f.text).splitlines(keepends=True),
                fromfile=f.path if old is not None else "/dev/null",
                tofile=f.path,
            )
            chunks.append("".join(diff))
        return "".join(c if c.endswith("\n") or not c else c + "\n" for c in chunks)
