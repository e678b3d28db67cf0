"""The plan report as one self-contained HTML page (inline CSS, no scripts, no external assets).

Rendered from `templates/report/plan.html.j2` with autoescaping, so names and messages that came from
the cluster or a node can never inject markup, and every value passes `visible` first, so their
control and bidi characters show as escapes (`\\x1b`, `\\u202e`) in a browser and in a terminal alike.
Pure: a PlanReport in, text out.
"""

from __future__ import annotations

from functools import cache, lru_cache

import jinja2
import markupsafe

from shimshift.model.durations import format_duration
from shimshift.model.text import visible
from shimshift.planning.drain import PodPlan
from shimshift.planning.gates import gate_lines
from shimshift.planning.report import API_DOWNTIME, RUNS_OPERATOR, NodeReport, PlanReport
from shimshift.planning.report_groups import (
    NOTES_PER_CODE,
    cap_by_code,
    compact_names,
    detailed,
    group_nodes,
    group_title,
    pods_needing_attention,
)
from shimshift.planning.report_markdown import action_text
from shimshift.resources import data_path
from shimshift.steps.images.fit import human_bytes

TEMPLATE = "plan.html.j2"


@lru_cache(maxsize=256)
def diff_lines(diff: str) -> tuple[tuple[str, str], ...]:
    """(css class, line) for each line of a unified diff; remembered, as look-alike nodes share diffs."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return tuple(out)


def _visible(value: object) -> object:
    """Data strings made visible; markup the template itself made (macros, includes) stays as it is."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible(value)
    return value


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_path("templates", "report"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_visible,
    )
    env.globals.update(
        human_bytes=human_bytes,
        duration=format_duration,
        action_text=action_text,
        diff_lines=diff_lines,
        compact_names=compact_names,
        group_title=group_title,
        pods_needing_attention=pods_needing_attention,
        all_pods=_all_pods,
        runs_operator=RUNS_OPERATOR,
        api_downtime=API_DOWNTIME,
    )
    return env


def _all_pods(node: NodeReport) -> list[tuple[str, PodPlan]]:
    return [(node.name, p) for p in node.pods]


def render_html(report: PlanReport) -> str:
    """Nodes with the same inputs and outcome are shown as one group (`report_groups`); small fleets
    list every pod per node, large ones only the pods that need attention."""
    groups = group_nodes(report)
    node_group = {n.name: g.index for g in groups for n in g.nodes}
    detail = detailed(report)
    notes, more = (report.notes, ()) if detail else cap_by_code(report.notes, NOTES_PER_CODE)
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            r=report,
            groups=groups,
            node_group=node_group,
            detail=detail,
            notes=notes,
            more_notes=more,
            gate_lines=gate_lines(report.rollout_gates),
        )
    )
