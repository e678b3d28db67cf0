"""A plan report as the text of one format, the same for `shimshift plan` and the operator's Plan
mode (which stores all of them, see shimshift.kube.reportstore). Pure."""

from __future__ import annotations

import json

from shimshift.planning.report import PlanReport, report_to_json
from shimshift.planning.report_html import render_html
from shimshift.planning.report_markdown import render_markdown

#: Above this many nodes the JSON is written compact (json encodes it in C; indenting a 5,000-node
#: report takes several times longer), below it indented for people.
COMPACT_JSON_ABOVE = 300
#: The stored file of each format.
FILES = {"markdown": "report.md", "json": "report.json", "html": "report.html"}


def render_report(report: PlanReport, fmt: str) -> str:
    """`fmt` is one of "markdown", "json", "html"."""
    if fmt == "json":
        if len(report.nodes) <= COMPACT_JSON_ABOVE:
            return json.dumps(report_to_json(report), indent=2) + "\n"
        return json.dumps(report_to_json(report), separators=(",", ":")) + "\n"
    if fmt == "html":
        return render_html(report)
    return render_markdown(report)


def report_files(report: PlanReport) -> dict[str, str]:
    """Every format, by the name it is stored under (report.md, report.json, report.html)."""
    return {file: render_report(report, fmt) for fmt, file in FILES.items()}
