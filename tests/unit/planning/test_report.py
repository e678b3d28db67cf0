"""The report in its three formats on the example snapshot (golden files), its JSON schema, and the CLI.

Regenerate the golden files and docs/plan-report-schema.json with SHIMSHIFT_REGEN_GOLDEN=1 and review
the diff.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from testbed import snapshot_gen

from shimshift.entry.cli import main
from shimshift.planning.report_schema import report_json_schema

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "snapshot"
MANIFEST = REPO / "examples" / "fleet-plan.yaml"
GOLDEN = REPO / "tests" / "golden" / "report"
SCHEMA = REPO / "docs" / "plan-report-schema.json"
REGEN = os.environ.get("SHIMSHIFT_REGEN_GOLDEN") == "1"
NOW = "2026-01-15T10:00:00Z"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out)
    return status, out.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with SHIMSHIFT_REGEN_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} differs from its golden file: review, then SHIMSHIFT_REGEN_GOLDEN=1"
    )


@pytest.mark.parametrize("fmt,suffix", [("markdown", "md"), ("json", "json"), ("html", "html")])
def test_the_example_plan_matches_its_golden_file(fmt: str, suffix: str) -> None:
    status, text = run("plan", "--snapshot", str(EXAMPLE), "-f", str(MANIFEST), "--format", fmt, "--now", NOW)
    assert status == 3
    check_golden(f"fleet-plan.{suffix}", text)


def example_json() -> dict[str, Any]:
    _, text = run("plan", "--snapshot", str(EXAMPLE), "-f", str(MANIFEST), "--format", "json", "--now", NOW)
    report: dict[str, Any] = json.loads(text)
    return report


def test_the_json_schema_is_documented_and_the_example_report_follows_it() -> None:
    schema = report_json_schema()
    if REGEN:
        SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")
    assert json.loads(SCHEMA.read_text()) == schema, (
        "docs/plan-report-schema.json is stale: SHIMSHIFT_REGEN_GOLDEN=1"
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(example_json(), schema, cls=jsonschema.Draft202012Validator)


def test_the_example_report_predicts_what_the_issue_example_contains() -> None:
    report = example_json()
    blockers = {(f["code"], f["node"]) for f in report["blockers"]}
    assert ("ImagesExceedDisk", "worker-05") in blockers  # the node short on disk
    assert ("DrainRefusedUnmanaged", "worker-04") in blockers  # the hand-started debug pod
    assert {c for c, _ in blockers} >= {"PdbNeverAllows"}  # shop/payments: minAvailable == replicas
    warnings = {f["code"] for f in report["warnings"]}
    assert {"DockerDockerSocket", "PdbBlocksNow", "ContainerdRenderWarning"} <= warnings
    assert [s["node"] for s in report["skipped"]] == ["worker-09"]  # already on containerd
    waves = [(w["nodes"], w["controlPlane"]) for w in report["waves"]]
    assert waves[-3:] == [(["cp-1"], True), (["cp-2"], True), (["cp-3"], True)]
    assert all(len(nodes) == 2 for nodes, cp in waves if not cp)  # 25% of 8 workers
    w3 = next(n for n in report["nodes"] if n["name"] == "worker-03")
    hosts = next(c for c in w3["containerd"]["changes"] if "registry.internal" in c["path"])
    assert hosts["action"] == "create" and "skip_verify = true" in hosts["diff"]
    assert any(
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in c["diff"]
        for c in w3["kubelet"]["changes"]
    )


def test_the_html_page_is_self_contained_and_escapes_what_came_from_the_cluster(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(EXAMPLE, snap)
    pods = yaml.safe_load((snap / "pods.yaml").read_text())
    pods["items"][0]["metadata"]["name"] = '"><script>alert(1)</script>'
    (snap / "pods.yaml").write_text(yaml.safe_dump(pods))
    status, html = run("plan", "--snapshot", str(snap), "-f", str(MANIFEST), "--format", "html", "--now", NOW)
    assert status == 3
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must not load anything"
    assert "<link" not in html and "@import" not in html


def _clean_snapshot(tmp_path: Path, *, unready: bool = False) -> Path:
    cluster, facts = snapshot_gen.example()
    keep = {"worker-01"}
    cluster.nodes = [n for n in cluster.nodes if n["metadata"]["name"] in keep]
    cluster.pods = [
        p
        for p in cluster.pods
        if p["spec"]["nodeName"] in keep
        and p["metadata"]["namespace"] in ("tenants", "kube-system")
        and "image-janitor" not in p["metadata"]["name"]
    ]
    cluster.pdbs = []  # their other replicas are gone with the other nodes: the budgets would block
    if unready:
        cluster.nodes[0]["status"]["conditions"][0]["status"] = "False"
    # a node whose every Docker setting is carried over or means nothing under containerd (the
    # example's log-opts rotation is not carried: a warning of its own)
    facts = [
        replace(f, daemon_json={k: v for k, v in (f.daemon_json or {}).items() if k != "log-opts"})
        for f in facts
        if f.node in keep
    ]
    snapshot_gen.write(cluster, facts, tmp_path / "snap", source="test", fmt="json")
    return tmp_path / "snap"


def test_exit_code_is_0_for_a_clean_plan_2_for_warnings_and_3_for_blockers(tmp_path: Path) -> None:
    clean = _clean_snapshot(tmp_path / "a")
    status, text = run(
        "plan", "--snapshot", str(clean), "-f", str(MANIFEST), "--format", "json", "--now", NOW
    )
    report = json.loads(text)
    assert (status, report["summary"]["verdict"], report["blockers"], report["warnings"]) == (
        0,
        "Clean",
        [],
        [],
    )
    warn = _clean_snapshot(tmp_path / "b", unready=True)
    status, _ = run("plan", "--snapshot", str(warn), "-f", str(MANIFEST), "--now", NOW)
    assert status == 2
    status, _ = run("plan", "--snapshot", str(EXAMPLE), "-f", str(MANIFEST), "--now", NOW)
    assert status == 3


def test_invalid_inputs_exit_1_without_a_report(tmp_path: Path) -> None:
    status, out = run("plan", "--snapshot", str(tmp_path), "-f", str(MANIFEST))
    assert status == 1 and "nodes.json: missing" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST.read_text().replace("maxUnavailable: 25%", "maxUnavailable: 250%"))
    status, out = run("plan", "--snapshot", str(EXAMPLE), "-f", str(bad))
    assert status == 1 and "spec.rollout.maxUnavailable" in out


def test_output_goes_to_a_file_with_a_one_line_summary(tmp_path: Path) -> None:
    target = tmp_path / "plan.html"
    status, out = run(
        "plan", "--snapshot", str(EXAMPLE), "-f", str(MANIFEST), "--format", "html", "-o", str(target)
    )
    assert status == 3
    assert out.startswith(f"wrote {target}: Blocked (")
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_the_plan_computes_the_file_sections_from_the_configure_and_switch_steps_own_plans() -> None:
    import datetime as dt

    from shimshift.entry.plancli import read_migration
    from shimshift.planning.build import build_plan
    from shimshift.planning.report_markdown import render_markdown
    from shimshift.planning.snapshot import load_snapshot
    from shimshift.steps.configure import containerd_files

    snap = load_snapshot(EXAMPLE)
    spec = read_migration(str(MANIFEST)).spec
    report = build_plan(spec, snap.cluster, snap.facts, dt.datetime(2026, 1, 15, tzinfo=dt.UTC))
    with_facts = [n for n in report.nodes if n.name in snap.facts]
    assert with_facts
    for n in with_facts:
        assert n.containerd.computed and n.kubelet.computed, n.name
        assert n.containerd == containerd_files(spec, snap.facts[n.name])
    assert "planner wired" not in render_markdown(report)


def test_plan_operator_node_puts_that_node_last_as_the_operators_own_plan_does() -> None:
    plain = [tuple(w["nodes"]) for w in example_json()["waves"]]
    chosen = plain[0][0]
    _, text = run(
        "plan", "--snapshot", str(EXAMPLE), "-f", str(MANIFEST), "--format", "json", "--now", NOW,
        "--operator-node", chosen,
    )  # fmt: skip
    waves = json.loads(text)["waves"]
    assert (waves[-1]["nodes"], waves[-1]["runsOperator"]) == ([chosen], True)
    assert sorted(n for w in waves for n in w["nodes"]) == sorted(n for w in plain for n in w)
