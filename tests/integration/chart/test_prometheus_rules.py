"""promtool (Prometheus' own checker, Debian package prometheus) on the chart's alerts and dashboard.

We test these aspects:
- `promtool check rules` accepts the rule groups of the PrometheusRule the chart renders;
- `promtool test rules` (rules_test.yaml): each alert fires on synthetic series that should fire it,
  with its labels and expanded annotations, and stays silent on series that should not;
- every PromQL expression of the Grafana dashboard parses, with Grafana's variables filled in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart import helm

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
PROMTOOL = shutil.which("promtool")
#: What Grafana puts in place of its variables before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$migration": ".*"}


@pytest.fixture
def promtool() -> str:
    if PROMTOOL is None:
        pytest.skip(
            "promtool is not installed (scripts/setup installs the Debian package prometheus as root)"
        )
    return PROMTOOL


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=helm.TIMEOUT, cwd=cwd, check=False
    )


def rendered_groups() -> list[dict[str, Any]]:
    result = helm.template(
        "--set", "prometheusRule.enabled=true", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"
    )
    assert result.returncode == 0, result.stderr
    rule = helm.only(helm.documents(result.stdout), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_promtool_accepts_the_rendered_rules(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rendered_groups()}))
    result = run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_each_alert_fires_on_the_series_it_is_about_and_only_then(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rendered_groups()}))
    shutil.copy(HERE / "rules_test.yaml", tmp_path / "rules_test.yaml")
    tests = yaml.safe_load((HERE / "rules_test.yaml").read_text())["tests"]
    firing = {a["alertname"] for t in tests for a in t["alert_rule_test"] if a["exp_alerts"]}
    silent = {a["alertname"] for t in tests for a in t["alert_rule_test"] if not a["exp_alerts"]}
    assert firing == silent == {"ShimshiftNodeRolledBack", "ShimshiftNodesFailed", "ShimshiftDrainBlocked"}
    result = run(promtool, "test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_dashboard_expression_parses(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads((helm.CHART / "files" / "dashboards" / "shimshift.json").read_text())
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr})
    assert len(rules) >= 15
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    result = run(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
