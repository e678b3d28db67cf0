"""Reports that stay readable and small at any fleet size: look-alike nodes grouped, names compacted,
and on a generated fleet the Markdown and HTML within their size goals while the JSON keeps everything."""

from __future__ import annotations

import datetime as dt
import json

from testbed import snapshot_gen

from shimshift.entry.plancli import read_migration
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import build_cluster
from shimshift.planning.report import PlanReport, report_to_json
from shimshift.planning.report_groups import cap_by_code, compact_names, group_nodes
from shimshift.planning.report_html import render_html
from shimshift.planning.report_markdown import render_markdown
from shimshift.planning.snapshot import CONTROLLER_KINDS
from tests.unit.planning.test_report import MANIFEST

NOW = dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC)
MIB = 1024 * 1024


def test_numbered_runs_become_ranges_and_everything_else_stays_as_it_is() -> None:
    names = ["node-01", "node-02", "node-03", "node-05", "cp-1", "cp-2", "web", "n9", "n10", "n11"]
    assert compact_names(names) == "node-01..node-03, node-05, cp-1, cp-2, web, n9..n11"
    assert compact_names(["a-08", "a-09", "a-10", "a-11"]) == "a-08..a-11"
    assert compact_names([f"w-{i}" for i in range(1, 101)]) == "w-1..w-100"
    assert compact_names([]) == ""


def test_at_most_the_first_notes_of_a_code_are_kept_and_the_rest_counted() -> None:
    report = _report(40, 600, 20)
    shown, more = cap_by_code(report.notes, 2)
    codes = [f.code for f in report.notes]
    for code in set(codes):
        assert sum(f.code == code for f in shown) == min(2, codes.count(code))
    assert dict(more) == {c: codes.count(c) - 2 for c in set(codes) if codes.count(c) > 2}


def _report(nodes: int, pods: int, pdbs: int) -> PlanReport:
    cluster, facts = snapshot_gen.fleet(nodes, pods, pdbs)
    objects = cluster.objects()
    controllers = [o for kind in CONTROLLER_KINDS for o in objects.get(kind, [])]
    planned = build_cluster(objects["nodes"], objects["pods"], objects["poddisruptionbudgets"], controllers)
    migration = read_migration(str(MANIFEST))
    return build_plan(
        migration.spec,
        planned,
        {f.node: f for f in facts},
        NOW,
        name=migration.name,
    )


def test_a_large_fleet_report_groups_look_alike_nodes_and_stays_within_its_size_goals() -> None:
    # 1,000 nodes and 30,000 pods, a fifth of the bench fleet (bench/plan_bench.py measures 5,000):
    # the goals of 4 MiB Markdown and 8 MiB HTML at 5,000 nodes, scaled down by five.
    report = _report(1000, 30_000, 400)
    groups = group_nodes(report)
    assert sorted(n.name for g in groups for n in g.nodes) == sorted(n.name for n in report.nodes)
    assert len(groups) < 20  # look-alike nodes share a group
    for g in groups:
        assert len({(n.containerd, n.kubelet, n.status, n.role) for n in g.nodes}) == 1

    md, html = render_markdown(report), render_html(report)
    assert len(md.encode()) <= 4 * MIB / 5, len(md)
    assert len(html.encode()) <= 8 * MIB / 5, len(html)
    # each group's diff is shown once, not once per node
    assert md.count("+++ /etc/containerd/config.toml") == len(groups)
    # every node still appears (a row in the Nodes table, and in its group's list)
    for n in report.nodes[:50]:
        assert f"| {n.name} |" in md and f'data-node="{n.name}"' in html
    # every pod that needs attention is listed; the JSON holds every pod and every finding
    blocked = [
        (n.name, p.key) for n in report.nodes for p in n.pods if p.verdict and p.verdict.value != "Allowed"
    ]
    assert blocked and all(f"| {node} | {pod} |" in md for node, pod in blocked)
    raw = json.loads(json.dumps(report_to_json(report)))
    assert sum(len(n["pods"]) for n in raw["nodes"]) == sum(len(n.pods) for n in report.nodes) > 25_000
    assert len(raw["notes"]) == len(report.notes) and len(raw["blockers"]) == len(report.blockers)
