"""The Grafana dashboard and the PrometheusRule the chart ships name only what the operator exports.

We test these aspects:
- the dashboard ConfigMap carries files/dashboards/shimshift.json unchanged, with the sidecar's label,
  only when dashboards.enabled;
- every PromQL expression of the dashboard and of the rule names only metrics `shimshift.metrics`
  really exports, with labels those metrics carry and label values the operator writes;
- the dashboard decodes through Grafana's own schema types (grafana-foundation-sdk, generated from
  Grafana's dashboard schema) without losing a field: every panel a known panel type, every query a
  Prometheus query; its panels cover what an SRE asks of a migration and do not overlap;
- the PrometheusRule exists only where the cluster serves its API, holds the alerts docs/metrics.md
  describes (the same expressions), each with a summary, a description and a runbook section of
  docs/troubleshooting.md that exists.
(promtool checks and unit-tests the rules in tests/integration/chart/test_prometheus_rules.py.)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import Runtime, UnknownDataquery
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
from grafana_foundation_sdk.models.prometheus import Dataquery
from prometheus_client.core import Metric

from shimshift.metrics import Metrics
from shimshift.model.keys import StepId
from shimshift.model.status import ImageCounts, MigrationStatus, NodePhase
from tests.unit.chart import helm
from tests.unit.chart.promql import metric_names, selectors

DASHBOARD_FILE = helm.CHART / "files" / "dashboards" / "shimshift.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
ALERTS = {"ShimshiftNodeRolledBack", "ShimshiftNodesFailed", "ShimshiftDrainBlocked"}

#: The values the operator writes for each bounded label (docs/metrics.md).
LABEL_VALUES: dict[str, set[str]] = {
    "step": {str(s) for s in StepId},
    "phase": {str(p) for p in NodePhase},
    "outcome": {"ok", "error"},
    "how": {"transferred", "pulled", "skipped"},
}


@cache
def exported() -> dict[str, set[str]]:
    """Sample name -> label names, of a `Metrics` whose every metric has been written once."""
    m = Metrics()
    m.step_finished(StepId.DRAIN, 1.0, ok=True)
    m.drain_waited(1.0, blocked=True)
    m.images_migrated(ImageCounts(transferred=1, pulled=1, skipped=1, bytes=10))
    m.rolled_back()
    m.canary_finished(3.0, "passed")
    m.hook_finished("pre", 4.0, "Succeeded")
    m.node_uncordoned("workers", 95.0)
    m.nodes_by_phase("workers", MigrationStatus())
    m.notification_sent("Finished", "sent")
    m.gate_evaluated("prometheus", "open")
    m.count_api_requests(lambda: Counter({"GET nodes": 1}))
    families: list[Metric] = list(m.registry.collect())
    return {s.name: set(s.labels) for f in families for s in f.samples}


def expressions_of_the_dashboard() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", ())
    ]


def problems_of(expr: str) -> list[str]:
    """What in `expr` the operator does not export: unknown metrics, labels, or label values."""
    found = []
    names = exported()
    for selector in selectors(expr):
        if selector.metric not in names:
            found.append(f"{selector.metric} is not exported")
            continue
        for matcher in selector.matchers:
            if matcher.label not in names[selector.metric]:
                found.append(f"{selector.metric} has no label {matcher.label}")
            elif matcher.label in LABEL_VALUES and not matcher.value.startswith("$"):
                values = set(matcher.value.split("|")) if matcher.op.endswith("~") else {matcher.value}
                found += [
                    f"{selector.metric}{{{matcher.label}}} is never {v!r}"
                    for v in sorted(values - LABEL_VALUES[matcher.label])
                ]
    return found


def test_the_exported_metrics_are_the_ones_docs_metrics_md_lists() -> None:
    table = set(re.findall(r"^\| `(shimshift_\w+)`", (helm.REPO / "docs" / "metrics.md").read_text(), re.M))
    families = {re.sub(r"_(bucket|sum|count|created|total)$", "", n) for n in exported()}
    assert {re.sub(r"_total$", "", n) for n in table} == families


@pytest.mark.parametrize(("title", "expr"), expressions_of_the_dashboard())
def test_every_dashboard_expression_names_only_exported_metrics(title: str, expr: str) -> None:
    assert metric_names(expr), f"{title}: no metric in {expr}"
    assert problems_of(expr) == [], f"panel {title!r}"


def test_the_check_notices_what_the_operator_does_not_export() -> None:
    assert problems_of("sum(rate(shimshift_rollbacks_total[5m]))") == []
    assert problems_of("rate(shimshift_node_unschedulable_seconds_total[5m])") == [
        "shimshift_node_unschedulable_seconds_total is not exported"
    ]
    assert problems_of('shimshift_nodes{node="a"}') == ["shimshift_nodes has no label node"]
    assert problems_of('shimshift_step_duration_seconds_count{step=~"drain|uncordon"}') == [
        "shimshift_step_duration_seconds_count{step} is never 'uncordon'"
    ]
    assert problems_of('shimshift_nodes{phase="Done", migration=~"$migration"}') == [
        "shimshift_nodes{phase} is never 'Done'"
    ]


def test_the_dashboard_shows_what_an_sre_asks_of_a_migration() -> None:
    used = {
        re.sub(r"_(bucket|sum|count|total)$", "", n)
        for _, e in expressions_of_the_dashboard()
        for n in metric_names(e)
    }
    assert {
        "shimshift_nodes",
        "shimshift_step_duration_seconds",
        "shimshift_drain_wait_seconds",
        "shimshift_drain_blocked_seconds",
        "shimshift_images_migrated",
        "shimshift_image_bytes_migrated",
        "shimshift_rollbacks",
        "shimshift_node_unschedulable_seconds",
    } <= used
    titles = " / ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for topic in (
        "fleet progress",
        "nodes by phase",
        "time cordoned",
        "blocked",
        "step duration",
        "images",
        "bytes",
        "rollbacks",
    ):
        assert topic in titles, topic


def grafana_json(dashboard: Dashboard) -> Any:
    return json.loads(json.dumps(dashboard, cls=JSONEncoder))


def dropped(shipped: Any, decoded: Any, path: str = "") -> list[str]:
    """Paths of `shipped` that `decoded` lost or changed (fields it adds, as defaults, are fine)."""
    if isinstance(shipped, dict) and isinstance(decoded, dict):
        return [
            p
            for k, v in shipped.items()
            for p in (dropped(v, decoded[k], f"{path}.{k}") if k in decoded else [f"{path}.{k}"])
        ]
    if isinstance(shipped, list) and isinstance(decoded, list) and len(shipped) == len(decoded):
        return [
            p
            for i, (a, b) in enumerate(zip(shipped, decoded, strict=True))
            for p in dropped(a, b, f"{path}[{i}]")
        ]
    return [] if shipped == decoded else [path]


def test_the_dashboard_decodes_through_grafanas_schema_types_without_losing_a_field() -> None:
    plugins.register_default_plugins()
    dashboard = Dashboard.from_json(DASHBOARD)
    assert dropped(DASHBOARD, grafana_json(dashboard)) == []
    assert dashboard.uid and dashboard.title and dashboard.schema_version
    panels = dashboard.panels or []
    assert len(panels) == len(DASHBOARD["panels"])
    for panel in panels:
        if isinstance(panel, RowPanel):
            continue
        assert isinstance(panel, Panel)
        assert Runtime().panelcfg_config(panel.type_val) is not None, f"{panel.title}: {panel.type_val}"
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, Dataquery) and not isinstance(target, UnknownDataquery), panel.title
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(set(ids)) == len(ids)
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "label_values(shimshift_nodes, migration)" in json.dumps(variables["migration"]["query"])


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_dashboard_configmap_carries_the_json_with_the_sidecar_label() -> None:
    docs = helm.rendered("dashboards-and-rules")
    config_map = helm.only(docs, "ConfigMap", "shimshift-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard_platform"] == "yes"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["labels"]["example.com/team"] == "platform"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    assert json.loads(config_map["data"]["shimshift.json"]) == DASHBOARD
    assert not [d for d in helm.rendered("default") if d["kind"] == "ConfigMap"]
    usual = helm.template("--set", "dashboards.enabled=true")
    assert usual.returncode == 0, usual.stderr
    labels = helm.only(helm.documents(usual.stdout), "ConfigMap")["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"


def rule(*args: str) -> dict[str, Any] | None:
    result = helm.template("--set", "prometheusRule.enabled=true", *args)
    assert result.returncode == 0, result.stderr
    found = [d for d in helm.documents(result.stdout) if d["kind"] == "PrometheusRule"]
    return found[0] if found else None


def alerts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in doc["spec"]["groups"] for r in g["rules"]}


def test_the_rule_exists_only_where_the_cluster_serves_its_api() -> None:
    assert rule() is None
    assert rule("--api-versions", RULE_API) is not None
    assert not [d for d in helm.rendered("dashboards-and-rules") if d["kind"] == "PrometheusRule"]
    off = helm.template("--api-versions", RULE_API)
    assert not [d for d in helm.documents(off.stdout) if d["kind"] == "PrometheusRule"]
    refused = helm.template("--set", "prometheusRule.enabled=true", "--set", "metrics.enabled=false")
    assert refused.returncode != 0
    assert "prometheusRule.enabled needs metrics.enabled=true" in refused.stderr


def test_the_rule_holds_the_alerts_docs_metrics_md_describes() -> None:
    doc = rule("--api-versions", RULE_API)
    assert doc is not None and doc["apiVersion"] == "monitoring.coreos.com/v1"
    found = alerts(doc)
    assert set(found) == ALERTS
    block = re.search(
        r"Alerts worth having.*?```promql\n(.*?)```", (helm.REPO / "docs" / "metrics.md").read_text(), re.S
    )
    assert block
    documented = {line for line in block.group(1).splitlines() if line and not line.startswith("#")}
    assert {r["expr"] for r in found.values()} == documented
    for name, r in found.items():
        assert problems_of(r["expr"]) == [], name
        assert r["labels"]["severity"], name


def test_each_alert_has_a_summary_a_description_and_a_runbook_section_that_exists() -> None:
    doc = rule("--api-versions", RULE_API)
    assert doc is not None
    headings = re.findall(r"^#+ (.+)$", (helm.REPO / "docs" / "troubleshooting.md").read_text(), re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    for name, r in alerts(doc).items():
        notes = r["annotations"]
        assert notes["summary"] and notes["description"], name
        base, _, anchor = notes["runbook_url"].partition("#")
        assert base == "docs/troubleshooting.md" and anchor == name.lower(), notes["runbook_url"]
        assert anchor in anchors, f"docs/troubleshooting.md has no section {name}"


def test_rule_labels_severity_and_runbook_base_follow_values() -> None:
    doc = rule("--api-versions", RULE_API, "-f", str(helm.VALUE_SETS_DIR / "dashboards-and-rules.yaml"))
    assert doc is not None
    assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    found = alerts(doc)
    assert found["ShimshiftNodesFailed"]["labels"]["severity"] == "page"
    assert found["ShimshiftDrainBlocked"]["labels"]["severity"] == "warning"
    assert found["ShimshiftDrainBlocked"]["annotations"]["runbook_url"] == (
        "https://git.example.com/platform/shimshift/-/blob/main/docs/troubleshooting.md#shimshiftdrainblocked"
    )
