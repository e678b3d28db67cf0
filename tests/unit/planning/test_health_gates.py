"""Health gates (`spec.rollout.gates`): what a Prometheus answer and an object's conditions say, and
what the readings do to the next wave: wait, retry with backoff after an error, pause after the timeout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.gates import GateReading, GateState
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import (
    Condition,
    ConditionReason,
    ConditionType,
    EventReason,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
)
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Node
from shimshift.planning.gates import gate_lines
from shimshift.planning.healthgates import (
    ERROR_BACKOFF_MAX,
    ERROR_BACKOFF_MIN,
    gate_conditions,
    gate_events,
    judge_condition,
    judge_prometheus,
)
from shimshift.planning.rollout import decide, may_start
from shimshift.resources import load_crd
from tests.unit.conftest import minimal_manifest
from tests.unit.planning.factory import cluster, node
from tests.unit.planning.factory import spec as make_spec

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
URL = "http://127.0.0.1:9090"
NODES = [
    Node("a", labels={}, runtime_version="docker://20.10.24"),
    Node("b", labels={}, runtime_version="docker://20.10.24"),
]


def gated(**gates: Any) -> NodeMigrationSpec:
    return make_spec(mode="Migrate", rollout={"maxUnavailable": 1, "gates": gates})


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1700000000, v]} for m, v in series],
        },
    }


def prom_gate(**fields: Any) -> Any:
    gate = gated(prometheus={"url": URL, **fields}).rollout.gates.prometheus
    assert gate is not None
    return gate


# --- the spec ---------------------------------------------------------------------------------------


def test_gates_are_parsed_with_the_schema_defaults() -> None:
    spec = gated(
        prometheus={
            "url": URL,
            "alerts": {"alertFilterRegexp": "^Watchdog$"},
            "bearerTokenSecretRef": {"name": "prom"},
        },
        conditions=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "namespace": "web",
                "name": "front",
                "type": "Available",
            }
        ],
    )
    g = spec.rollout.gates
    assert g.timeout == 7200 and g.interval == 60
    assert g.prometheus is not None and g.prometheus.alerts is not None
    assert g.prometheus.expression == 'ALERTS{alertstate="firing"}'
    assert g.prometheus.bearer_token is not None and g.prometheus.bearer_token.key == "token"
    assert g.conditions[0].status == "True" and g.conditions[0].gate_name == "Deployment/web/front:Available"


@pytest.mark.parametrize(
    ("prometheus", "path"),
    [
        ({"url": URL}, "spec.rollout.gates.prometheus"),
        ({"url": URL, "query": "up", "alerts": {}}, "spec.rollout.gates.prometheus"),
        ({"url": "ftp://prom", "query": "up"}, "spec.rollout.gates.prometheus.url"),
        ({"url": "http://u:secret@prom:9090", "query": "up"}, "spec.rollout.gates.prometheus.url"),
        (
            {"url": URL, "alerts": {"alertFilterRegexp": "("}},
            "spec.rollout.gates.prometheus.alerts.alertFilterRegexp",
        ),
        ({"url": URL, "alerts": {}, "threshold": 1}, "spec.rollout.gates.prometheus.threshold"),
    ],
)
def test_a_prometheus_gate_the_checks_refuse_names_its_field(prometheus: dict[str, Any], path: str) -> None:
    manifest = minimal_manifest(rollout={"gates": {"prometheus": prometheus}})
    with pytest.raises(ValidationError) as refused:
        parse_nodemigration(manifest, load_crd())
    assert path in [p.path for p in refused.value.problems]
    assert "secret" not in str(refused.value)  # the credential in the URL is never echoed


# --- judging Prometheus -----------------------------------------------------------------------------


def test_an_empty_vector_opens_a_query_gate_and_any_sample_closes_it() -> None:
    gate = prom_gate(query="up == 0")
    assert judge_prometheus(gate, vector()).state == GateState.OPEN
    closed = judge_prometheus(gate, vector(({"__name__": "up", "job": "node"}, "0")))
    assert closed.state == GateState.CLOSED
    assert 'up{job="node"}' in closed.reason


def test_a_threshold_opens_the_gate_only_while_every_value_is_under_it() -> None:
    gate = prom_gate(query="rate(errors[5m])", threshold=0.5)
    assert (
        judge_prometheus(gate, vector(({"job": "a"}, "0.1"), ({"job": "b"}, "0.49"))).state == GateState.OPEN
    )
    closed = judge_prometheus(gate, vector(({"job": "a"}, "0.1"), ({"job": "b"}, "0.5")))
    assert closed.state == GateState.CLOSED and 'job="b"' in closed.reason and 'job="a"' not in closed.reason
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "0.7"]}}
    assert judge_prometheus(gate, scalar).state == GateState.CLOSED


def test_firing_alerts_close_the_gate_unless_filtered_by_name_or_labels() -> None:
    gate = prom_gate(
        alerts={"alertFilterRegexp": "^(Watchdog|InfoInhibitor)$", "ignoreLabels": {"severity": "info|none"}}
    )
    watchdog = ({"alertname": "Watchdog", "severity": "none"}, "1")
    info = ({"alertname": "CPUThrottling", "severity": "info"}, "1")
    assert judge_prometheus(gate, vector(watchdog, info)).state == GateState.OPEN
    real = ({"alertname": "KubeNodeNotReady", "severity": "critical"}, "1")
    closed = judge_prometheus(gate, vector(watchdog, info, real))
    assert closed.state == GateState.CLOSED and closed.reason == "1 alert(s) firing: KubeNodeNotReady"


def test_a_refused_query_or_a_strange_answer_is_an_error_not_a_no() -> None:
    gate = prom_gate(query="up{")
    bad = judge_prometheus(gate, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    assert bad.state == GateState.ERROR and "parse error" in bad.reason
    assert (
        judge_prometheus(gate, {"status": "success", "data": {"resultType": "matrix", "result": []}}).state
        == GateState.ERROR
    )
    assert judge_prometheus(gate, "not json").state == GateState.ERROR
    unthresholded_scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "0"]}}
    assert judge_prometheus(gate, unthresholded_scalar).state == GateState.ERROR


# --- judging conditions -----------------------------------------------------------------------------


def test_a_condition_gate_is_open_only_with_the_wanted_status() -> None:
    gate = gated(
        conditions=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "namespace": "web",
                "name": "f",
                "type": "Available",
            }
        ]
    ).rollout.gates.conditions[0]
    ok = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    assert judge_condition(gate, ok).state == GateState.OPEN
    down = {
        "status": {
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]
        }
    }
    closed = judge_condition(gate, down)
    assert closed.state == GateState.CLOSED and "MinimumReplicasUnavailable" in closed.reason
    assert judge_condition(gate, {"status": {}}).state == GateState.CLOSED  # not reported yet: not open


# --- the rollout ------------------------------------------------------------------------------------

CLOSED = (GateReading("prometheus", GateState.CLOSED, "1 alert(s) firing: TargetDown"),)
ERROR = (GateReading("prometheus", GateState.ERROR, "Prometheus at http://127.0.0.1:9 is unreachable"),)
OPEN = (GateReading("prometheus", GateState.OPEN),)


def since(type_: ConditionType, minutes: float, status: str = "True") -> Condition:
    at = (NOW - dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return Condition(type_, status, ConditionReason.WAITING_FOR_GATE, "", at, 1)


def test_a_closed_gate_starts_nothing_and_says_why_in_the_message() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}}, interval="30s")
    decision = decide(spec, MigrationStatus(), NODES, NOW, gates=CLOSED, generation=1)
    assert decision.start == ()
    assert decision.phase == Phase.PROGRESSING and decision.reason == ConditionReason.WAITING_FOR_GATE
    assert decision.message.startswith("waiting for gate: prometheus: 1 alert(s) firing: TargetDown")
    assert decision.wait_seconds == 30


def test_an_open_gate_lets_the_wave_start() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}})
    assert decide(spec, MigrationStatus(), NODES, NOW, gates=OPEN, generation=1).start == ("a",)


def test_an_unreadable_gate_is_a_gate_error_retried_with_a_growing_backoff() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}})
    first = decide(spec, MigrationStatus(), NODES, NOW, gates=ERROR, generation=1)
    assert (
        first.start == () and first.reason == ConditionReason.GATE_ERROR and first.phase == Phase.PROGRESSING
    )
    assert first.wait_seconds == ERROR_BACKOFF_MIN
    later = MigrationStatus(conditions=(since(ConditionType.GATE_ERROR, 1),))
    assert decide(spec, later, NODES, NOW, gates=ERROR, generation=1).wait_seconds == 60
    long = MigrationStatus(conditions=(since(ConditionType.GATE_ERROR, 100),))
    assert decide(spec, long, NODES, NOW, gates=ERROR, generation=1).wait_seconds == ERROR_BACKOFF_MAX


def test_a_gate_closed_past_the_timeout_pauses_this_generation_until_the_spec_changes() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}}, timeout="30m")
    status = MigrationStatus(conditions=(since(ConditionType.GATE_CLOSED, 31),))
    paused = decide(spec, status, NODES, NOW, gates=CLOSED, generation=1)
    assert paused.phase == Phase.PAUSED and paused.reason == ConditionReason.GATE_TIMEOUT
    assert "TargetDown" in paused.message and paused.start == ()
    stored = Condition(
        ConditionType.PAUSED, "True", ConditionReason.GATE_TIMEOUT, paused.message, "2026-01-02T12:00:00Z", 1
    )
    after = MigrationStatus(conditions=(since(ConditionType.GATE_CLOSED, 31), stored))
    # same generation: stays paused, the gates are not read again, even were they open
    assert not may_start(spec, after, NODES, NOW, stopping=False, generation=1)
    assert decide(spec, after, NODES, NOW, gates=OPEN, generation=1).phase == Phase.PAUSED
    # an edit (a new generation) arms it again
    assert may_start(spec, after, NODES, NOW, stopping=False, generation=2)
    assert decide(spec, after, NODES, NOW, gates=OPEN, generation=2).start == ("a",)


def test_the_timeout_counts_from_the_end_of_the_last_pause() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}}, timeout="30m")
    resumed = since(ConditionType.PAUSED, 5, status="False")
    status = MigrationStatus(conditions=(since(ConditionType.GATE_CLOSED, 300), resumed))
    assert (
        decide(spec, status, NODES, NOW, gates=CLOSED, generation=2).reason
        == ConditionReason.WAITING_FOR_GATE
    )


def test_a_node_in_flight_is_never_stopped_by_a_gate_and_gates_are_not_read_meanwhile() -> None:
    spec = gated(prometheus={"url": URL, "alerts": {}})
    flying = MigrationStatus(nodes=(NodeRecord(name="a", phase=NodePhase.IN_PROGRESS),))
    assert not may_start(spec, flying, NODES, NOW, stopping=False, generation=1)
    decision = decide(spec, flying, NODES, NOW, gates=CLOSED, generation=1)
    assert decision.reason == ConditionReason.NODES_IN_FLIGHT
    assert next(r for r in decision.nodes if r.name == "a").phase == NodePhase.IN_PROGRESS


def test_gate_conditions_and_events_follow_the_changes_not_every_reading() -> None:
    closed, error = gate_conditions((), CLOSED, NOW, 1)
    assert (closed.status, error.status) == ("True", "False")
    events = gate_events((), (closed, error))
    assert [(w, r) for w, r, _ in events] == [(True, EventReason.GATE_CLOSED)]
    later = NOW + dt.timedelta(minutes=1)
    again = gate_conditions((closed, error), CLOSED, later, 1)
    assert again[0].last_transition_time == closed.last_transition_time
    assert gate_events((closed, error), again) == []
    broken = gate_conditions(again, ERROR, later, 1)
    assert (broken[0].status, broken[1].status) == ("False", "True")
    assert [r for _, r, _ in gate_events(again, broken)] == [EventReason.GATE_ERROR]
    opened = gate_conditions(broken, OPEN, later, 1)
    assert [(w, r) for w, r, _ in gate_events(broken, opened)] == [(False, EventReason.GATE_OPENED)]


# --- the plan report --------------------------------------------------------------------------------


def test_the_plan_report_lists_each_gate_and_its_state_now() -> None:
    spec = gated(
        prometheus={"url": URL, "query": "up == 0"},
        conditions=[
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "namespace": "web",
                "name": "f",
                "type": "Available",
            }
        ],
    )
    readings = (
        GateReading("prometheus", GateState.OPEN),
        GateReading("Deployment/web/f:Available", GateState.ERROR, "Deployment web/f does not exist"),
    )
    report = build_plan(spec, cluster([node("n1")]), {}, NOW, gate_readings=readings)
    line = gate_lines(report.rollout_gates)[-1]
    assert "prometheus at http://127.0.0.1:9090: up == 0 returns nothing; open now" in line
    assert "Deployment/web/f:Available" in line and "error now: Deployment web/f does not exist" in line
    offline = gate_lines(build_plan(spec, cluster([node("n1")]), {}, NOW).rollout_gates)[-1]
    assert "not read" in offline
    assert gate_lines(build_plan(make_spec(), cluster([node("n1")]), {}, NOW).rollout_gates)[-1] == (
        "Health gates: none (spec.rollout.gates is not set)."
    )
