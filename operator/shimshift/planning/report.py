"""The plan report: one frozen value that every format renders, and its versioned JSON form.

`report_to_json` is the contract CI gates read; its schema is `docs/plan-report-schema.json` and its
version is `SCHEMA_VERSION` (a new optional field keeps the version; renaming or removing one bumps it).
`exit_code` maps a report to `shimshift plan`'s exit status: 0 clean, 2 warnings, 3 blockers. Pure.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

from shimshift.model.facts import NodeFacts
from shimshift.model.factsjson import to_jsonable
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.cluster import Node
from shimshift.planning.dockerdeps import DockerDependency
from shimshift.planning.drain import PodPlan
from shimshift.planning.faq import FaqEntry
from shimshift.planning.findings import Finding
from shimshift.planning.imagefit import ImageSummary
from shimshift.planning.pdb import PdbState
from shimshift.planning.preflight import NodeRuntime
from shimshift.planning.selection import Skipped

SCHEMA_VERSION = "shimshift.io/plan-report/v1"

EXIT_CLEAN = 0
EXIT_WARNINGS = 2
EXIT_BLOCKERS = 3


class Verdict(StrEnum):
    CLEAN = "Clean"
    WARNINGS = "Warnings"
    BLOCKED = "Blocked"


# ---- files the migration writes: computed by hooks from the rendering and kubelet layers ---------


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str | None  # None: the file does not exist yet
    after: str | None  # None: the file is removed
    secret: bool = False  # shown by hash only

    @cached_property
    def diff(self) -> str:
        if self.secret:
            old = hashlib.sha256(self.before.encode()).hexdigest()[:12] if self.before is not None else "none"
            new = hashlib.sha256(self.after.encode()).hexdigest()[:12] if self.after is not None else "none"
            return f"--- {self.path}\n+++ {self.path}\n@@ secret file: sha256 {old} -> {new} @@\n"
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=self.path if self.before is not None else "/dev/null",
            tofile=self.path if self.after is not None else "/dev/null",
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
        )

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class Carryover:
    """A Docker setting and what becomes of it under containerd."""

    source: str  # e.g. "daemon.json insecure-registries"
    value: str
    outcome: str  # where it goes, or what replaces it
    carried: bool


@dataclass(frozen=True)
class FileSection:
    """The files one part of the migration writes on a node, or why they could not be computed."""

    computed: bool
    reason: str = ""  # when not computed: why (no renderer in this build, no facts, a render error)
    changes: tuple[FileChange, ...] = ()
    notes: tuple[str, ...] = ()
    carryover: tuple[Carryover, ...] = ()
    warnings: tuple[str, ...] = ()  # risks the planner saw in these files (e.g. TLS verification off)

    @classmethod
    def not_computed(cls, reason: str) -> FileSection:
        return cls(False, reason)


class FilesHook(Protocol):
    """Computes a FileSection for a node; raises ShimshiftError when the files cannot be rendered."""

    def __call__(self, spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> FileSection: ...


@dataclass(frozen=True)
class PlanHooks:
    """The parts of a plan that come from other layers, injected by the caller (CLI or operator)."""

    containerd: FilesHook | None = None  # config.toml + certs.d/*/hosts.toml, Docker carry-over
    kubelet: FilesHook | None = None  # the kubelet flags/config edit


# ---- the report ----------------------------------------------------------------------------------


class NodeStatus(StrEnum):
    READY = "Ready"
    WARNINGS = "Warnings"
    BLOCKED = "Blocked"


@dataclass(frozen=True)
class DrainSummary:
    evict: int
    ignored_daemonset: int
    skipped_mirror: int
    not_selected: int
    refused: int
    blocked_now: int  # evictions the Eviction API would refuse right now
    max_grace_seconds: int


@dataclass(frozen=True)
class NodeReport:
    name: str
    role: str  # "worker" | "control-plane"
    wave: int
    status: NodeStatus
    ready: bool
    cordoned: bool  # unschedulable before the migration (stays so)
    runtime_version: str
    runtime: NodeRuntime | None  # None without facts
    drain: DrainSummary
    pods: tuple[PodPlan, ...]
    images: ImageSummary | None
    containerd: FileSection
    kubelet: FileSection
    estimate_seconds: int
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class WavePlan:
    index: int
    nodes: tuple[str, ...]
    control_plane: bool
    estimate_seconds: int


@dataclass(frozen=True)
class Summary:
    verdict: Verdict
    exit_code: int
    nodes_selected: int
    nodes_skipped: int
    nodes_blocked: int
    nodes_with_warnings: int
    waves: int
    pods_to_evict: int
    evictions_blocked_now: int
    images: int
    image_bytes: int
    docker_dependencies: int
    blockers: int
    warnings: int
    estimate_seconds: int


@dataclass(frozen=True)
class SpecSummary:
    mode: str
    selector: str
    node_names: tuple[str, ...]
    max_unavailable: str
    control_plane: str
    pause_between_nodes_seconds: int
    drain: str
    images: str
    docker: str
    rollback: str


@dataclass(frozen=True)
class PlanReport:
    schema_version: str
    name: str
    generated_at: str
    facts_taken_at: str
    source: str
    spec: SpecSummary
    summary: Summary
    waves: tuple[WavePlan, ...]
    nodes: tuple[NodeReport, ...]
    skipped: tuple[Skipped, ...]
    pdbs: tuple[PdbState, ...]  # PDBs selecting pods on the planned nodes
    docker_dependencies: tuple[DockerDependency, ...]
    docker_socket_note: str
    blockers: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    notes: tuple[Finding, ...]
    estimate_assumptions: tuple[str, ...]
    faq: tuple[FaqEntry, ...]


def exit_code(report: PlanReport) -> int:
    return report.summary.exit_code


def report_to_json(report: PlanReport) -> dict[str, Any]:
    """The report as JSON values (schema: docs/plan-report-schema.json)."""
    out: dict[str, Any] = to_jsonable(report)
    for node, raw in zip(report.nodes, out["nodes"], strict=True):
        for section, obj in (("containerd", node.containerd), ("kubelet", node.kubelet)):
            raw[section]["changes"] = [
                {
                    "path": c.path,
                    "action": "create" if c.before is None else "remove" if c.after is None else "edit",
                    "changed": c.changed,
                    "secret": c.secret,
                    "diff": c.diff,
                }
                for c in obj.changes
            ]
    for dep, raw in zip(report.docker_dependencies, out["dockerDependencies"], strict=True):
        raw["advice"] = dep.advice
    return out
