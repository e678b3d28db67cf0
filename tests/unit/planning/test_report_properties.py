"""Whatever text comes from the cluster, the Markdown and HTML renderers keep their structure."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.planning.build import build_plan
from shimshift.planning.report import PlanReport
from shimshift.planning.report_html import render_html
from shimshift.planning.report_markdown import cell, render_markdown
from tests.unit.planning.factory import cluster, node, pod, spec

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(value=text)
def test_a_markdown_table_cell_stays_one_cell_on_one_line(value: str) -> None:
    out = cell(value)
    assert "\n" not in out and "<" not in out
    assert "|" not in out.replace("\\|", "").replace("\\\\", "")


def report_for(name: str) -> PlanReport:
    c = cluster([node("n1")], [pod(name, owner=None, image=name, host_paths={"s": "/var/run/docker.sock"})])
    return build_plan(spec(), c, {}, NOW, name="m")


@settings(max_examples=40, deadline=None)
@given(value=text)
def test_cluster_text_never_changes_the_html_structure(value: str) -> None:
    benign, hostile = render_html(report_for("x")), render_html(report_for(value))
    assert hostile.count("<") == benign.count("<")
    assert hostile.count(">") == benign.count(">")


@settings(max_examples=40, deadline=None)
@given(value=text)
def test_cluster_text_never_adds_markdown_table_columns(value: str) -> None:
    def widths(md: str) -> list[int]:
        return [line.replace("\\|", "").count("|") for line in md.splitlines() if line.startswith("| ")]

    assert widths(render_markdown(report_for(value))) == widths(render_markdown(report_for("x")))
