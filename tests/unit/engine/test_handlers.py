"""`shimshift run` settings, the kopf error mapping, and the metrics the engine reports into."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import kopf
import pytest
from prometheus_client import generate_latest

from shimshift.engine import Busy
from shimshift.entry.handlers import RunSettings, to_kopf_error
from shimshift.kube.api import ApiStatusError
from shimshift.metrics import Metrics
from shimshift.model.errors import NodeError, ValidationError
from shimshift.model.keys import StepId
from shimshift.model.status import ImageCounts, MigrationStatus, NodePhase, NodeRecord
from shimshift.stepexec import StepFailed

ROOT = Path(__file__).resolve().parents[3]


def test_flags_win_over_the_environment_which_wins_over_defaults() -> None:
    env = {"SHIMSHIFT_NAMESPACE": "ops", "SHIMSHIFT_METRICS_PORT": "9100", "SHIMSHIFT_PEERING": "shimshift"}

    settings = RunSettings.from_flags({"namespace": "from-flag", "metrics_port": None}, env)

    assert settings.namespace == "from-flag"
    assert settings.metrics_port == 9100
    assert settings.peering == "shimshift"
    assert settings.log_format == "full"
    assert settings.identity  # defaults to the pod name or the hostname


@pytest.mark.parametrize(
    ("flags", "field"),
    [({"metrics_port": "http"}, "--metrics-port"), ({"log_format": "xml"}, "--log-format")],
)
def test_a_bad_setting_is_rejected_naming_its_flag_and_variable(flags: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RunSettings.from_flags(flags, {})


def test_settings_are_logged_with_secret_looking_values_redacted() -> None:
    settings = RunSettings(kubeconfig="/etc/kube/config?token=abc123", namespace="ops")

    logged = settings.redacted()

    assert logged["kubeconfig"] == "<redacted>"
    assert logged["namespace"] == "ops"
    assert "abc123" not in str(logged)


def test_transient_errors_become_temporary_and_the_rest_permanent() -> None:
    busy = to_kopf_error(Busy("a pass is running"))
    throttled = to_kopf_error(ApiStatusError(429, "TooManyRequests", "slow down", what="GET /", body={}))
    forbidden = to_kopf_error(ApiStatusError(403, "Forbidden", "no", what="GET /", body={}))

    assert isinstance(busy, kopf.TemporaryError) and busy.delay == 1.0
    assert isinstance(throttled, kopf.TemporaryError)
    assert isinstance(forbidden, kopf.PermanentError)
    assert isinstance(to_kopf_error(StepFailed("drain timed out")), kopf.PermanentError)
    assert isinstance(to_kopf_error(NodeError("n1", "no CRI")), kopf.PermanentError)


def test_metrics_expose_nodes_by_phase_steps_drain_images_and_rollbacks() -> None:
    metrics = Metrics()
    status = MigrationStatus(nodes=(NodeRecord("a", NodePhase.SUCCEEDED), NodeRecord("b", NodePhase.PENDING)))

    metrics.nodes_by_phase("m", status)
    metrics.step_finished(StepId.DRAIN, 2.5, True)
    metrics.drain_waited(4.0, blocked=True)
    metrics.images_migrated(ImageCounts(transferred=3, pulled=1, bytes=4096))
    metrics.rolled_back()
    text = generate_latest(metrics.registry).decode()

    assert 'shimshift_nodes{migration="m",phase="Succeeded"} 1.0' in text
    assert 'shimshift_nodes{migration="m",phase="Pending"} 1.0' in text
    assert 'shimshift_step_duration_seconds_count{outcome="ok",step="drain"} 1.0' in text
    assert "shimshift_drain_blocked_seconds_total 4.0" in text
    assert 'shimshift_images_migrated_total{how="transferred"} 3.0' in text
    assert "shimshift_image_bytes_migrated_total 4096.0" in text
    assert "shimshift_rollbacks_total 1.0" in text


def test_metrics_expose_the_engines_api_requests_by_method_and_resource_as_counted_at_scrape_time() -> None:
    metrics = Metrics()
    calls: Counter[str] = Counter({"PATCH nodemigrations/status": 3})
    metrics.count_api_requests(lambda: Counter(calls))

    first = generate_latest(metrics.registry).decode()
    calls["POST pods/eviction"] += 2
    second = generate_latest(metrics.registry).decode()

    assert 'shimshift_api_requests_total{method="PATCH",resource="nodemigrations/status"} 3.0' in first
    assert "pods/eviction" not in first
    assert 'shimshift_api_requests_total{method="POST",resource="pods/eviction"} 2.0' in second


def test_docs_metrics_lists_exactly_the_metrics_the_operator_exposes() -> None:
    metrics = Metrics()
    metrics.count_api_requests(Counter)
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in metrics.registry.collect()}
    doc = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(shimshift_[a-z_]+)`", doc, re.MULTILINE))
    assert documented == exposed


def test_the_node_the_pod_runs_on_comes_from_the_downward_api_variable_and_the_flag_wins() -> None:
    assert RunSettings.from_flags({}, {"SHIMSHIFT_NODE_NAME": "w3"}).node_name == "w3"
    assert RunSettings.from_flags({"node_name": "cp1"}, {"SHIMSHIFT_NODE_NAME": "w3"}).node_name == "cp1"
    assert RunSettings.from_flags({}, {}).node_name == ""  # outside a pod: no node is put last


def test_an_older_replica_outranks_a_newer_one_whatever_the_tiebreak() -> None:
    from shimshift.entry.handlers import PRIORITY_TIEBREAK, peering_priority

    first = peering_priority(1_800_000_000.000, PRIORITY_TIEBREAK - 1)
    later = peering_priority(1_800_000_000.001, 0)  # a millisecond later, the best draw
    assert first > later > 0
    assert peering_priority(1_800_000_000.0, 1) != peering_priority(1_800_000_000.0, 2)
