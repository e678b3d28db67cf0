"""The plan report: one frozen value that every format renders, and its versioned JSON form.

`report_to_json` is the contract CI gates read; its schema is `docs/plan-report-schema.json` and its
version is `SCHEMA_VERSION` (a new optional field keeps the version; renaming or removing one bumps it).
`exit_code` maps a report to `shimshift plan`'s exit status: 0 clean, 2 warnings, 3 blockers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.model.factsjson import to_jsonable
from shimshift.planning.dockerdeps import DockerDependency
from shimshift.planning.drain import PodPlan
from shimshift.planning.faq import FaqEntry
from shimshift.planning.findings import Finding
from shimshift.planning.gates import RolloutGates
from shimshift.planning.pdb import PdbState
from shimshift.planning.preflight import NodeRuntime
from shimshift.planning.selection import Skipped
from shimshift.steps.filesection import FileSection
from shimshift.steps.images.fit import ImageSummary

SCHEMA_VERSION = "shimshift.io/plan-report/v1"

EXIT_CLEAN = 0
EXIT_WARNINGS = 2
EXIT_BLOCKERS = 3


class Verdict(StrEnum):
    CLEAN = "Clean"
    WARNINGS = "Warnings"
    BLOCKED = "Blocked"


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


#: What the reports say of the wave of the node the operator runs on.
RUNS_OPERATOR = "runs the operator: migrated last"
API_DOWNTIME = "runs the only API server: migrated last of all, the API unavailable during its switch"


@dataclass(frozen=True)
class WavePlan:
    index: int
    nodes: tuple[str, ...]
    control_plane: bool
    estimate_seconds: int
    #: the node the planning operator runs on, alone in the last wave ("runs the operator: migrated last")
    runs_operator: bool = False
    #: the node runs the cluster's only API server: the last wave(s), the API down during its switch
    api_downtime: bool = False


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
    staging: str  # spec.staging
    #: the steps each node runs, in order (spec.staging's; a node with a StagingAfterCordon finding runs
    #: the AfterCordon order, which step_order_reason then names)
    step_order: tuple[str, ...]
    step_order_reason: str  # why this order, and what it means for the time out of service


@dataclass(frozen=True)
class PlanReport:
    schema_version: str
    name: str
    generated_at: str
    facts_taken_at: str
    source: str
    spec: SpecSummary
    rollout_gates: RolloutGates
    summary: Summary
    waves: tuple[WavePlan, ...]
    nodes: tuple[NodeReport, ...]
    skipped: tuple[Skipped, ...]
    pdbs: tuple[PdbState, ...]  # PDBs selecting pods on the planned nodes
    docker_dependencies: tuple[DockerDependency, ...]
    docker_socket_note: str
    #: what stays on the nodes until `spec.commit` (rollback on request) and what the commit does
    rollback_window: str
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
        raw["advice"] = dep.advice  # with a known agent's own setting first
    return out
