"""The plan report as Markdown, for a terminal or a pull request. Pure: a PlanReport in, text out.

Every piece of node or cluster text goes through `cell` (table cells and running text), `code`
(inline code) or `fenced` (the diffs): control and bidi characters become visible escapes
(`shimshift.model.text.visible`) and nothing from the data can form a link, an image, an autolink or
HTML in a Markdown viewer, since admins read the report in terminals and viewers alike. Ordinary
names render exactly as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from shimshift.model.durations import format_duration
from shimshift.model.text import visible
from shimshift.planning.drain import PodAction, PodPlan
from shimshift.planning.findings import Finding
from shimshift.planning.gates import gate_lines
from shimshift.planning.report import (
    API_DOWNTIME,
    RUNS_OPERATOR,
    NodeReport,
    PlanReport,
    Verdict,
    WavePlan,
)
from shimshift.planning.report_groups import (
    NOTES_PER_CODE,
    NodeGroup,
    cap_by_code,
    compact_names,
    detailed,
    group_nodes,
    group_title,
    pods_needing_attention,
)
from shimshift.steps.filesection import FileSection
from shimshift.steps.images.fit import human_bytes

_VERDICT = {
    Verdict.CLEAN: "CLEAN: nothing blocks the migration",
    Verdict.WARNINGS: "WARNINGS: the migration can run; read the warnings first",
    Verdict.BLOCKED: "BLOCKED: the migration would fail; fix the blockers first",
}


#: Every character str.splitlines() breaks on (\r, \x1e, \u2028, ...), each made a space.
_LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


#: A `]` that closes link text or a link label: followed by `(` (inline link or image), `[` (reference
#: link) or `:` (a link reference definition). `<` is escaped apart, which rules out autolinks and HTML.
_LINK_CLOSE = re.compile(r"\](?=[(\[:])")
_BACKTICKS = re.compile("`+")


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell or a line: no pipes, no HTML tags, no link, one line,
    every control character visible."""
    out = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    if "]" in out:
        out = _LINK_CLOSE.sub("\\\\]", out)
    # Every line break is unprintable, and the check is much cheaper than the translation.
    return out if out.isprintable() else visible(out.translate(_LINE_BREAKS))


def code(text: object) -> str:
    """Inline code of one line whose delimiter no backtick in `text` can close (CommonMark)."""
    out = str(text)
    if not out.isprintable():
        out = visible(out.translate(_LINE_BREAKS))
    if "`" not in out:
        return f"`{out}`"
    fence = "`" * (max(len(run) for run in _BACKTICKS.findall(out)) + 1)
    return f"{fence} {out} {fence}"


def fenced(info: str, body: str) -> list[str]:
    """A fenced code block around `body`, with a fence longer than any backtick run inside it."""
    body = visible(body, keep="\n")
    runs = [len(run) for run in _BACKTICKS.findall(body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + info, body, fence]


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _finding_lines(findings: Sequence[Finding], *, with_node: bool = True) -> list[str]:
    out = []
    for f in findings:
        where = f"**{cell(f.node)}** " if with_node and f.node else ""
        out.append(f"- {where}`{f.code}`: {cell(f.message)}")
        if f.advice:
            out.append(f"  - what to do: {cell(f.advice)}")
    return out


def _eviction(p: PodPlan) -> str:
    if p.verdict is None:
        return "-"
    return {"Allowed": "allowed", "NoBudget": "BLOCKED (429)", "MultiplePDBs": "REFUSED (500)"}[
        p.verdict.value
    ]


_ACTIONS = {
    PodAction.EVICT: "evict",
    PodAction.IGNORE_DAEMONSET: "ignore (DaemonSet)",
    PodAction.SKIP_MIRROR: "skip (static pod)",
    PodAction.NOT_SELECTED: "keep (not in podSelector)",
    PodAction.REFUSED: "REFUSED: drain stops",
}


def action_text(p: PodPlan) -> str:
    return _ACTIONS[p.action]


@lru_cache(maxsize=64)
def _files(title: str, section: FileSection) -> tuple[str, ...]:
    """Remembered: look-alike nodes share one FileSection (steps.configure.SharedRenders), rendered once."""
    out = [f"#### {title}", ""]
    if not section.computed:
        out += [f"_{cell(section.reason)}_", ""]
    for note in section.notes:
        out.append(f"- {cell(note)}")
    if section.notes:
        out.append("")
    for change in section.changes:
        if not change.changed:
            out += [f"{code(change.path)}: unchanged", ""]
            continue
        out += [f"{code(change.path)}:", "", *fenced("diff", change.diff.rstrip("\n")), ""]
    if section.carryover:
        out += ["Docker settings:", ""]
        out += table(
            ["Setting", "Value", "Carried over", "Becomes / instead"],
            ((c.source, c.value, "yes" if c.carried else "NO", c.outcome) for c in section.carryover),
        )
        out.append("")
    return tuple(out)


def _runtime_facts(n: NodeReport) -> list[str]:
    facts = [f"Runtime now: {code(n.runtime_version)}"]
    if n.runtime is not None:
        r = n.runtime
        facts += [
            f"Docker {cell(r.docker_version or 'unknown')}",
            f"containerd {cell(r.containerd_version or 'not installed')}",
            f"kubelet {cell(r.kubelet_version or 'unknown')} ({cell(r.kubelet_layout)})",
            f"cgroup driver for containerd: {cell(r.containerd_cgroup)}",
        ]
    if n.cordoned:
        facts.append("already cordoned by an admin (stays cordoned)")
    return facts


def _drain_line(n: NodeReport) -> str:
    d = n.drain
    return (
        f"{d.evict} pod(s) evicted ({d.blocked_now} blocked right now), "
        f"{d.ignored_daemonset} DaemonSet pod(s) ignored, {d.skipped_mirror} static pod(s) skipped, "
        f"{d.not_selected} outside the pod selector, "
        f"{d.refused} refused; longest grace period {d.max_grace_seconds}s."
    )


def _pod_row(p: PodPlan) -> tuple[str, ...]:
    return (
        p.key,
        p.controller or "none",
        action_text(p),
        ", ".join(p.pdbs) or "-",
        _eviction(p),
        "; ".join(p.notes),
    )


_POD_HEADER = ("Pod", "Controller", "Action", "PDB", "Eviction now", "Notes")


def _images_line(n: NodeReport) -> str:
    if n.images is None:
        return "_not computed: no facts for this node_"
    i = n.images
    return (
        f"{i.count} image(s) to migrate ({i.in_use} in use), {human_bytes(i.bytes)} unpacked; needs "
        f"{human_bytes(i.needed_bytes)} free on the containerd root, {human_bytes(i.free_bytes)} free "
        f"({'fits' if i.fits else 'DOES NOT FIT'}); {i.already_present} already in containerd, "
        f"{i.excluded} left out."
    )


def _node(group: NodeGroup, n: NodeReport) -> list[str]:
    """One node of a group in a detailed report: what is its own (wave, findings, pods, images)."""
    out = [f"#### {cell(n.name)} (wave {n.wave}): estimated {format_duration(n.estimate_seconds)}", ""]
    own = group.own_findings(n)
    out += _finding_lines(own, with_node=False)
    if own:
        out.append("")
    out += ["Drain: " + _drain_line(n), ""]
    if n.pods:
        out += table(_POD_HEADER, (_pod_row(p) for p in n.pods))
        out.append("")
    out += ["Images: " + _images_line(n), ""]
    if n.images is not None and n.images.largest:
        out += [
            "Largest: " + ", ".join(f"{code(ref)} ({human_bytes(size)})" for ref, size in n.images.largest),
            "",
        ]
    return out


def _group(g: NodeGroup, *, detail: bool) -> list[str]:
    count, listed = len(g.nodes), compact_names(g.names)
    if group_title(g) == listed:
        kind = g.role if count == 1 else f"{count:,} {g.role} nodes"
        out = [f"### {cell(listed)}: {g.status.value} ({kind})", ""]
    else:
        out = [f"### {count:,} {g.role} nodes: {g.status.value}", "", f"Nodes: {cell(listed)}.", ""]
    out += ["; ".join(_runtime_facts(g.first)) + ".", ""]
    out += _finding_lines(g.shared, with_node=False)
    if g.shared:
        out.append("")
    out += _files("containerd config and registry hosts", g.containerd)
    out += _files("kubelet", g.kubelet)
    if detail:
        for n in g.nodes:
            out += _node(g, n)
        return out
    out += [
        "#### Drain and images",
        "",
        f"{sum(n.drain.evict for n in g.nodes)} pod(s) evicted in all "
        f"({sum(n.drain.blocked_now for n in g.nodes)} blocked right now), "
        f"{sum(n.drain.refused for n in g.nodes)} refused; each node's pods, images and free disk in the "
        "Nodes table above, every pod and image figure in the JSON report (nodes[].pods, nodes[].images).",
        "",
    ]
    attention = pods_needing_attention(g.nodes)
    if attention:
        out += ["Pods that need attention:", ""]
        out += table(("Node", *_POD_HEADER), ((node, *_pod_row(p)) for node, p in attention))
        out.append("")
    return out


def wave_kind(wave: WavePlan) -> str:
    """The Kind column of the Waves table."""
    if wave.api_downtime:
        return f"{'control-plane node' if wave.control_plane else 'worker'}; {API_DOWNTIME}"
    if wave.runs_operator:
        return f"{'control-plane node' if wave.control_plane else 'worker'}; {RUNS_OPERATOR}"
    return "control plane" if wave.control_plane else "workers"


def render_markdown(report: PlanReport) -> str:
    s = report.summary
    out = [f"# shimshift plan: {cell(report.name or '(unnamed)')}", ""]
    out += [
        f"**{_VERDICT[s.verdict]}** ({s.blockers} blocker(s), {s.warnings} warning(s); "
        f"exit code {s.exit_code})",
        "",
    ]
    origin = f"Generated {cell(report.generated_at)}"
    if report.facts_taken_at:
        origin += f" from facts taken {cell(report.facts_taken_at)}"
    if report.source:
        origin += f" ({cell(report.source)})"
    out += [origin + ". Nothing was changed on the cluster or on any node.", ""]
    out += table(
        ["", ""],
        (
            (
                "Nodes",
                f"{s.nodes_selected} to migrate in {s.waves} wave(s), {s.nodes_skipped} skipped, "
                f"{s.nodes_blocked} blocked",
            ),
            ("Pods", f"{s.pods_to_evict} to evict, {s.evictions_blocked_now} blocked by a PDB right now"),
            ("Images", f"{s.images} ({human_bytes(s.image_bytes)} unpacked)"),
            ("Docker dependencies", str(s.docker_dependencies)),
            ("Estimated duration", format_duration(s.estimate_seconds)),
        ),
    )
    sp = report.spec
    out += [
        "",
        f"Spec: mode {sp.mode}; nodes {cell(sp.selector or '-')}"
        + (f" + {cell(', '.join(sp.node_names))}" if sp.node_names else "")
        + f"; maxUnavailable {cell(sp.max_unavailable)}; control plane {sp.control_plane}; pause "
        f"{format_duration(sp.pause_between_nodes_seconds)}; drain {cell(sp.drain)}; images "
        f"{cell(sp.images)}; Docker afterwards {sp.docker}; rollback {sp.rollback}.",
        "",
        f"Step order (staging {sp.staging}): {' → '.join(sp.step_order)}. {cell(sp.step_order_reason)}",
        "",
        *(f"- {cell(line)}" for line in gate_lines(report.rollout_gates)),
        "",
    ]
    groups = group_nodes(report)
    detail = detailed(report)
    notes, more = (report.notes, ()) if detail else cap_by_code(report.notes, NOTES_PER_CODE)
    for title, findings in (
        ("Blockers", report.blockers),
        ("Warnings", report.warnings),
        ("Notes", notes),
    ):
        out += [f"## {title}", ""]
        out += _finding_lines(findings) or ["None."]
        if title == "Notes":
            out += [f"- `{c}`: {n} more like these (all in notes[] of the JSON report)" for c, n in more]
        out.append("")
    out += ["## Waves", ""]
    out += table(
        ["Wave", "Nodes", "Kind", "Estimate"],
        (
            (
                w.index,
                compact_names(w.nodes),
                wave_kind(w),
                format_duration(w.estimate_seconds),
            )
            for w in report.waves
        ),
    )
    out += ["", "## Nodes", ""]
    out += table(
        ["Node", "Wave", "Role", "Status", "Evict", "Blocked now", "Images", "Free disk", "Estimate"],
        (
            (
                n.name,
                n.wave,
                n.role,
                n.status.value,
                n.drain.evict,
                n.drain.blocked_now,
                f"{n.images.count} / {human_bytes(n.images.bytes)}" if n.images else "?",
                human_bytes(n.images.free_bytes) if n.images else "?",
                format_duration(n.estimate_seconds),
            )
            for n in report.nodes
        ),
    )
    out.append("")
    if report.skipped:
        out += ["## Skipped nodes", ""]
        out += table(["Node", "Why"], ((s.node, s.message) for s in report.skipped))
        out.append("")
    out += ["## Docker dependencies", "", cell(report.docker_socket_note) + ".", ""]
    if report.docker_dependencies:
        out += table(
            ["Severity", "Workload", "Found", "Pods", "Nodes", "What to do"],
            (
                (d.severity.value, d.subject, d.evidence, d.pods, compact_names(d.nodes), d.advice)
                for d in report.docker_dependencies
            ),
        )
    else:
        out.append("None found in the pods on the planned nodes.")
    out += ["", "## Rollback window", "", cell(report.rollback_window) + "."]
    out += ["", "## PodDisruptionBudgets", ""]
    if report.pdbs:
        out += table(
            ["PDB", "Expected", "Healthy", "Needs", "Allows now", "Never allows"],
            (
                (
                    p.key,
                    p.expected,
                    p.healthy,
                    p.desired_healthy,
                    p.disruptions_allowed,
                    "YES" if p.never_allows else "no",
                )
                for p in report.pdbs
            ),
        )
    else:
        out.append("No PDB selects a pod on the planned nodes.")
    out += ["", "## Per node", ""]
    if report.nodes:
        out += [
            f"{len(report.nodes)} node(s) in {len(groups)} group(s) of the same role, status, runtime and "
            "files: each group's files and common findings are shown once."
            + ("" if detail else " Large fleet: only the pods that need attention are listed."),
            "",
        ]
    for g in groups:
        out += _group(g, detail=detail)
    out += ["## How the estimate is made", ""]
    out += [f"- {a}" for a in report.estimate_assumptions]
    out += ["", "## Questions people ask", ""]
    for q in report.faq:
        out += [f"**{q.question}**", "", q.answer, ""]
    return "\n".join(out).rstrip("\n") + "\n"
