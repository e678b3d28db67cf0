"""`shimshift snapshot` and a live `shimshift plan` against the API emulator: read-only, complete, and the
plan from the written snapshot agrees with the live plan."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.kubeapi.runner import KubeApi

from shimshift.entry.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "snapshot"
MANIFEST = REPO / "examples" / "fleet-plan.yaml"
NOW = "2026-01-15T10:00:00Z"


def example_objects(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())["items"]
    return items


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_snapshot_reads_the_cluster_without_writing_and_plans_the_same_offline(
    kubeapi: KubeApi, tmp_path: Path
) -> None:
    workers = [
        n
        for n in example_objects("nodes")
        if n["metadata"]["name"] in ("worker-01", "worker-02", "worker-03")
    ]
    names = {n["metadata"]["name"] for n in workers}
    pods = [p for p in example_objects("pods") if p["spec"]["nodeName"] in names]
    kubeapi.seed(workers)
    kubeapi.seed(pods)
    kubeapi.seed(example_objects("poddisruptionbudgets"))
    first = len(kubeapi.requests)

    status, out = run(
        "snapshot",
        "-o",
        str(tmp_path / "snap"),
        "--kubeconfig",
        str(kubeapi.kubeconfig),
        "--facts",
        str(EXAMPLE / "facts"),
    )
    assert status == 0, out
    assert f"3 nodes, {len(pods)} pods, 9 PDBs" in out
    live_status, live = run(
        "plan",
        "-f",
        str(MANIFEST),
        "--kubeconfig",
        str(kubeapi.kubeconfig),
        "--facts",
        str(EXAMPLE / "facts"),
        "--format",
        "json",
        "--now",
        NOW,
    )

    ours = list(kubeapi.requests)[first:]
    assert ours and {r.method for r in ours} == {"GET"}, "snapshot and plan must only read"
    offline_status, offline = run(
        "plan", "--snapshot", str(tmp_path / "snap"), "-f", str(MANIFEST), "--format", "json", "--now", NOW
    )
    assert live_status == offline_status
    live_report, offline_report = json.loads(live), json.loads(offline)
    for report in (live_report, offline_report):
        report.pop("source"), report.pop("factsTakenAt")
    assert live_report == offline_report
    assert [n["name"] for n in live_report["nodes"]] == ["worker-01", "worker-02", "worker-03"]
    assert live_report["summary"]["podsToEvict"] > 0
