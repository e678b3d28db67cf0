"""What the Markdown and HTML reports share to stay readable at any fleet size. Pure.

- `group_nodes`: nodes with the same inputs and the same outcome (role, status, runtime, cordon, the
  containerd and kubelet files the migration writes) form one group, whose files and common findings
  a report shows once, with the list of nodes it applies to.
- `compact_names`: a list of node names with runs of numbered names as ranges
  (`node-00001..node-00625, node-00630`).
- `detailed`: whether a report lists every pod and each node's largest images (small fleets) or only
  the pods that need attention (large ones); the JSON form always holds everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shimshift.planning.drain import PodAction, PodPlan
from shimshift.planning.findings import Finding
from shimshift.planning.pdb import EvictionVerdict
from shimshift.planning.preflight import NodeRuntime
from shimshift.planning.report import NodeReport, NodeStatus, PlanReport
from shimshift.steps.filesection import FileSection

#: Up to this many nodes and pods a report shows every pod of every node; beyond, only those that
#: need attention (the JSON form lists all of them in nodes[].pods).
DETAILED_MAX_NODES = 100
DETAILED_MAX_PODS = 3000

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True)
class NodeGroup:
    index: int  # 1-based, in the order of the report's nodes
    nodes: tuple[NodeReport, ...]
    shared: tuple[Finding, ...]  # findings every node of the group has, word for word (node aside)

    @property
    def first(self) -> NodeReport:
        return self.nodes[0]

    @property
    def status(self) -> NodeStatus:
        return self.first.status

    @property
    def role(self) -> str:
        return self.first.role

    @property
    def runtime(self) -> NodeRuntime | None:
        return self.first.runtime

    @property
    def containerd(self) -> FileSection:
        return self.first.containerd

    @property
    def kubelet(self) -> FileSection:
        return self.first.kubelet

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def own_findings(self, node: NodeReport) -> tuple[Finding, ...]:
        """`node`'s findings that are not shared by the whole group."""
        shared = {_finding_key(f) for f in self.shared}
        return tuple(f for f in node.findings if _finding_key(f) not in shared)


def _finding_key(f: Finding) -> tuple[str, str, str, str, str]:
    return (f.code, f.level.value, f.message, f.advice, f.subject)


def _group_key(n: NodeReport) -> tuple[object, ...]:
    return (n.role, n.status, n.runtime_version, n.runtime, n.cordoned, n.containerd, n.kubelet)


def group_nodes(report: PlanReport) -> tuple[NodeGroup, ...]:
    members: dict[tuple[object, ...], list[NodeReport]] = {}
    for n in report.nodes:
        members.setdefault(_group_key(n), []).append(n)
    groups = []
    for index, nodes in enumerate(members.values(), start=1):
        common = [f for f in nodes[0].findings]
        for other in nodes[1:]:
            theirs = {_finding_key(f) for f in other.findings}
            common = [f for f in common if _finding_key(f) in theirs]
        groups.append(NodeGroup(index, tuple(nodes), tuple(common)))
    return tuple(groups)


def detailed(report: PlanReport) -> bool:
    return (
        len(report.nodes) <= DETAILED_MAX_NODES
        and sum(len(n.pods) for n in report.nodes) <= DETAILED_MAX_PODS
    )


def needs_attention(p: PodPlan) -> bool:
    """A pod the drain refuses, or whose eviction the Eviction API would not allow right now."""
    return p.action == PodAction.REFUSED or (p.verdict is not None and p.verdict != EvictionVerdict.ALLOWED)


def compact_names(names: Iterable[str]) -> str:
    """`a-1..a-4, a-7, b`: runs of names that differ only in a consecutive number of the same width as
    ranges, everything else as it is, in the given order."""
    out: list[str] = []
    run: list[tuple[str, int, int, str]] = []  # (prefix, number, width when zero-padded else 0, name)

    def flush() -> None:
        if len(run) >= 3:
            out.append(f"{run[0][3]}..{run[-1][3]}")
        else:
            out.extend(r[3] for r in run)
        run.clear()

    for name in names:
        m = _NUMBERED.match(name)
        if m is None:
            flush()
            out.append(name)
            continue
        prefix, digits = m.group(1), m.group(2)
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        if run:
            last = run[-1]
            same_width = len(digits) == len(str(last[1]).zfill(last[2])) if (width or last[2]) else True
            if not (last[0] == prefix and last[1] + 1 == int(digits) and same_width):
                flush()
        run.append((prefix, int(digits), width, name))
    flush()
    return ", ".join(out)


def group_title(group: NodeGroup, limit: int = 80) -> str:
    """The group's node names when they are short enough for a heading, else their count."""
    listed = compact_names(group.names)
    if len(listed) <= limit:
        return listed
    return f"{len(group.nodes):,} nodes"


def pods_needing_attention(nodes: Sequence[NodeReport]) -> list[tuple[str, PodPlan]]:
    return [(n.name, p) for n in nodes for p in n.pods if needs_attention(p)]


#: In a large fleet's report, the notes of one code shown before the rest are counted (all in the JSON).
NOTES_PER_CODE = 10


def cap_by_code(
    findings: Sequence[Finding], limit: int
) -> tuple[tuple[Finding, ...], tuple[tuple[str, int], ...]]:
    """The first `limit` findings of each code, in order, and (code, how many more) for the codes cut."""
    shown: list[Finding] = []
    seen: dict[str, int] = {}
    for f in findings:
        seen[f.code] = seen.get(f.code, 0) + 1
        if seen[f.code] <= limit:
            shown.append(f)
    return tuple(shown), tuple((code, n - limit) for code, n in seen.items() if n > limit)
