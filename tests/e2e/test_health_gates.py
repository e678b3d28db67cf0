"""Health gates end to end: the operator process against the API emulator and a real Prometheus on
loopback (`testbed.prometheus`). A firing alert holds the rollout (no node started, "waiting for gate"
in status.message, GateClosed), switching the rule off lets it complete; an unreachable Prometheus is
GateError, read again with backoff, and starts nothing; a condition gate names a missing object as an
error and opens once the object reports its condition."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.ports import free_port
from testbed.prometheus import ALERT, Prometheus, prometheus_binary

from shimshift.model.status import Phase
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.simnodes import read_state

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(prometheus_binary() is None, reason="prometheus is not installed (scripts/setup)"),
]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path / "gates-prometheus", firing=True).start()
    yield prom
    prom.stop()


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def evaluations(port: int, gate: str, result: str) -> float:
    pattern = rf'shimshift_gate_evaluations_total\{{gate="{re.escape(gate)}",result="{result}"\}} ([0-9.]+)'
    found = re.search(pattern, scrape(port))
    return float(found.group(1)) if found else 0.0


def condition(cluster: KubeApi, type_: str) -> dict[str, Any]:
    status = (cluster.get("nodemigrations.shimshift.io", "m") or {}).get("status") or {}
    return next((c for c in status.get("conditions") or () if c["type"] == type_), {})


def started(cluster: KubeApi, sim_dir: Path, nodes: tuple[str, ...]) -> bool:
    """Whether any node was started: a NodeMigrationNode exists or a node saw a change."""
    return bool(cluster.list("nodemigrationnodes.shimshift.io")) or any(
        read_state(sim_dir, n)["changes"] for n in nodes
    )


def start_operator(operator_factory: Callable[..., Operator]) -> int:
    operator = operator_factory()
    port = free_port()
    operator.extra_args = ["--metrics-port", str(port)]
    operator.start()
    return port


def deployment(available: str | None) -> dict[str, Any]:
    conditions = [] if available is None else [{"type": "Available", "status": available}]
    labels = {"app": "front"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "front", "namespace": "default"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
        "status": {"conditions": conditions},
    }


def test_a_firing_alert_holds_the_rollout_and_switching_it_off_lets_it_complete(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path, prometheus: Prometheus
) -> None:
    cluster.seed([node("w1"), node("w2"), deployment("True")])
    port = start_operator(operator_factory)
    gates = {
        "interval": "1s",
        "prometheus": {"url": prometheus.url, "alerts": {"alertFilterRegexp": "^Watchdog$"}},
        "conditions": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "namespace": "default",
                "name": "front",
                "type": "Available",
            }
        ],
    }
    cluster.seed(migration(rollout={"maxUnavailable": 1, "gates": gates}))

    eventually(
        lambda: status_of(cluster).message.startswith(
            f"waiting for gate: prometheus-alerts: 1 alert(s) firing: {ALERT}"
        ),
        60,
        "the rollout waiting for the gate",
    )
    # read again and again (every spec.rollout.gates.interval), never a start meanwhile
    eventually(lambda: evaluations(port, "prometheus-alerts", "closed") >= 3, 30, "three closed readings")
    assert not started(cluster, sim_dir, ("w1", "w2"))
    assert condition(cluster, "GateClosed")["status"] == "True"
    assert condition(cluster, "GateError")["status"] == "False"
    assert evaluations(port, "Deployment/default/front:Available", "open") >= 3
    assert status_of(cluster).phase == Phase.PROGRESSING

    prometheus.set_firing(False)
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to complete")
    assert condition(cluster, "GateClosed")["status"] == "False"
    assert evaluations(port, "prometheus-alerts", "open") >= 2  # before each of the two waves
    reasons = [e["reason"] for e in cluster.list("events", namespace="default")]
    assert "GateClosed" in reasons and "GateOpened" in reasons


def test_an_unreachable_prometheus_is_a_gate_error_retried_with_backoff_and_starts_nothing(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1")])
    port = start_operator(operator_factory)
    url = f"http://127.0.0.1:{free_port()}"  # reserved for this test, nobody listens on it
    gates = {"prometheus": {"url": url, "query": "up == 0", "requestTimeout": "2s"}}
    cluster.seed(migration(rollout={"gates": gates}))

    eventually(lambda: condition(cluster, "GateError").get("status") == "True", 60, "GateError")
    eventually(lambda: evaluations(port, "prometheus", "error") >= 3, 60, "three retries")
    error = condition(cluster, "GateError")
    assert error["reason"] == "GateError" and "unreachable" in error["message"]
    assert condition(cluster, "GateClosed")["status"] == "False"  # an error is not a "no"
    assert status_of(cluster).message.startswith("waiting for gate: cannot read prometheus")
    assert status_of(cluster).phase == Phase.PROGRESSING
    assert not started(cluster, sim_dir, ("w1",))
    reasons = [e["reason"] for e in cluster.list("events", namespace="default")]
    assert reasons.count("GateError") == 1  # one Event for the change, not one per retry


#: A custom resource no controller touches: its condition is what the test writes.
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def widget(ready: str) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "db", "namespace": "default"},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Rebuilding"}]},
    }


def test_a_condition_gate_on_a_missing_object_is_an_error_until_it_exists_and_reports_it(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1"), WIDGET_CRD])
    start_operator(operator_factory)
    gate = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "namespace": "default",
        "name": "db",
        "type": "Ready",
    }
    cluster.seed(migration(rollout={"gates": {"interval": "1s", "conditions": [gate]}}))

    eventually(
        lambda: "does not exist" in condition(cluster, "GateError").get("message", ""), 60, "GateError"
    )
    cluster.seed([widget("False")])
    eventually(lambda: condition(cluster, "GateClosed").get("status") == "True", 60, "GateClosed")
    assert "condition Ready is False, not True (Rebuilding)" in condition(cluster, "GateClosed")["message"]
    assert condition(cluster, "GateError")["status"] == "False"
    assert not started(cluster, sim_dir, ("w1",))
    cluster.patch(
        "widgets.example.com",
        "db",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        "default",
        "status",
    )
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to complete")
