"""The engine with health gates (`spec.rollout.gates`) against fake ports and a fake clock: a closed gate
starts nothing, an unreadable one is GateError retried with backoff, the gates are read before each
wave, a gate not open past its timeout pauses the rollout; Events and the metric follow."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from shimshift.engine import Engine
from shimshift.model.gates import GateReading, Gates, GateState
from shimshift.model.status import ConditionReason, ConditionType, EventReason, NodePhase, Phase
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

GATES = {"prometheus": {"url": "http://127.0.0.1:9090", "alerts": {}}, "interval": "20s", "timeout": "10m"}


class Gate:
    """A GatePort whose one gate says what `state` is; counts its readings."""

    def __init__(self) -> None:
        self.state = GateState.CLOSED
        self.then: GateState | None = None  # the state after the next reading
        self.reads = 0

    def read_gates(self, gates: Gates) -> tuple[GateReading, ...]:
        self.reads += 1
        reading = self._reading()
        if self.then is not None:
            self.state, self.then = self.then, None
        return reading

    def _reading(self) -> tuple[GateReading, ...]:
        reason = {GateState.CLOSED: "1 alert(s) firing: TargetDown", GateState.ERROR: "unreachable"}
        return (GateReading("prometheus-alerts", self.state, reason.get(self.state, "")),)


class Observed:
    def __init__(self) -> None:
        self.gates: Counter[tuple[str, str]] = Counter()

    def gate_evaluated(self, gate: str, result: str) -> None:
        self.gates[(gate, result)] += 1

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


def setup(clock: Clock, count: int = 2) -> tuple[FakeCluster, FakeNodes, Gate, Observed, Engine]:
    cluster = FakeCluster(workers(count), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 1, "gates": GATES}))
    gate, observed = Gate(), Observed()
    engine = Engine(
        cluster,
        lambda m: nodes,
        config=EngineConfig(drain_pass_wait=5.0),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
        observer=observed,  # type: ignore[arg-type]
        gates=gate,
    )
    return cluster, nodes, gate, observed, engine


def condition(cluster: FakeCluster, type_: ConditionType) -> tuple[str, str, str]:
    c = next(c for c in cluster.stored_status().conditions if c.type == type_)
    return c.status, c.reason, c.message


def gate_events(cluster: FakeCluster) -> list[str]:
    gate_reasons = (EventReason.GATE_CLOSED, EventReason.GATE_OPENED, EventReason.GATE_ERROR)
    return [reason for _, _, _, reason, _ in cluster.events if reason in gate_reasons]


def test_a_closed_gate_starts_nothing_then_the_open_gate_lets_the_rollout_finish(clock: Clock) -> None:
    cluster, nodes, gate, observed, engine = setup(clock)

    for _ in range(3):
        result = engine.reconcile(cluster.get("m"))
        assert result.in_flight == 0 and result.delay == 20  # read again after spec.rollout.gates.interval
        clock.advance(result.delay)

    assert nodes.changes == {} and all(r.phase == NodePhase.PENDING for r in cluster.status().nodes)
    stored = cluster.stored_status()
    assert stored.message.startswith("waiting for gate: prometheus-alerts: 1 alert(s) firing: TargetDown")
    assert condition(cluster, ConditionType.GATE_CLOSED)[0] == "True"
    assert condition(cluster, ConditionType.GATE_ERROR)[0] == "False"
    assert condition(cluster, ConditionType.PROGRESSING)[1] == ConditionReason.WAITING_FOR_GATE
    assert gate_events(cluster) == [EventReason.GATE_CLOSED]  # once, not on every reading
    assert observed.gates == {("prometheus-alerts", "closed"): 3}

    gate.state = GateState.OPEN
    for _ in range(100):
        result = engine.reconcile(cluster.get("m"))
        if result.phase == Phase.SUCCEEDED and result.in_flight == 0:
            break
        clock.advance(max(result.delay, 1.0))
    assert [r.phase for r in cluster.status().nodes] == [NodePhase.SUCCEEDED] * 2
    assert condition(cluster, ConditionType.GATE_CLOSED)[0] == "False"
    assert gate_events(cluster) == [EventReason.GATE_CLOSED, EventReason.GATE_OPENED]
    assert observed.gates[("prometheus-alerts", "open")] == 2  # read before each of the two waves


def test_a_gate_closing_after_the_first_wave_holds_the_second_and_never_the_node_in_flight(
    clock: Clock,
) -> None:
    cluster, nodes, gate, _, engine = setup(clock)
    gate.state, gate.then = GateState.OPEN, GateState.CLOSED  # open for w1's wave, closed after
    engine.reconcile(cluster.get("m"))  # w1 starts; the node in flight goes on whatever the gate says
    assert gate.reads == 2  # before w1's wave, and before the next one, in the same pass
    reads = gate.reads
    for _ in range(30):
        result = engine.reconcile(cluster.get("m"))
        clock.advance(max(result.delay, 1.0))
    phases = {r.name: r.phase for r in cluster.status().nodes}
    assert phases == {"w1": NodePhase.SUCCEEDED, "w2": NodePhase.PENDING}
    assert gate.reads > reads and cluster.stored_status().message.startswith("waiting for gate:")
    assert nodes.changes and not any(key.startswith("w2:") for key in nodes.changes)


def test_an_unreadable_gate_is_a_gate_error_with_growing_retries_and_starts_nothing(clock: Clock) -> None:
    cluster, nodes, gate, observed, engine = setup(clock)
    gate.state = GateState.ERROR
    delays = []
    for _ in range(5):
        result = engine.reconcile(cluster.get("m"))
        delays.append(result.delay)
        clock.advance(result.delay)
    assert nodes.changes == {}
    assert delays == [5.0, 5.0, 10.0, 20.0, 40.0]  # backoff, never at once in a loop
    status, reason, message = condition(cluster, ConditionType.GATE_ERROR)
    assert (status, reason, message) == (
        "True",
        ConditionReason.GATE_ERROR,
        "prometheus-alerts: error: unreachable",
    )
    assert condition(cluster, ConditionType.GATE_CLOSED)[0] == "False"  # not a "no"
    assert condition(cluster, ConditionType.PROGRESSING)[1] == ConditionReason.GATE_ERROR
    assert gate_events(cluster) == [EventReason.GATE_ERROR]
    assert observed.gates == {("prometheus-alerts", "error"): 5}


def test_a_gate_closed_past_its_timeout_pauses_until_the_spec_changes(clock: Clock) -> None:
    cluster, nodes, gate, _, engine = setup(clock)
    for _ in range(40):
        result = engine.reconcile(cluster.get("m"))
        if result.phase == Phase.PAUSED:
            break
        clock.advance(result.delay)
    assert result.phase == Phase.PAUSED and nodes.changes == {}
    status, reason, message = condition(cluster, ConditionType.PAUSED)
    assert status == "True" and reason == ConditionReason.GATE_TIMEOUT and "TargetDown" in message
    assert any(r == EventReason.PAUSED for _, _, _, r, _ in cluster.events)

    gate.state = GateState.OPEN
    reads = gate.reads
    clock.advance(60)
    assert engine.reconcile(cluster.get("m")).phase == Phase.PAUSED  # stays paused: a person looks first
    assert gate.reads == reads

    cluster.set_spec("m", rollout={"maxUnavailable": 1, "gates": {**GATES, "timeout": "1h"}})
    cluster.objects["m"]["metadata"]["generation"] = 2
    result = engine.reconcile(cluster.get("m"))  # the new generation reads the gates again: open
    assert result.phase == Phase.SUCCEEDED and gate.reads == reads + 2  # before each of the two waves
    assert [r.phase for r in cluster.status().nodes] == [NodePhase.SUCCEEDED] * 2


def test_without_a_gate_reader_the_gates_are_errors_never_open(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"gates": GATES}))
    engine = Engine(cluster, lambda m: nodes, clock=clock, monotonic=lambda: clock.now.timestamp())
    engine.reconcile(cluster.get("m"))
    assert nodes.changes == {}
    assert condition(cluster, ConditionType.GATE_ERROR)[0] == "True"


def test_plan_mode_reads_the_gates_into_the_report_and_starts_nothing(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(mode="Plan", rollout={"gates": GATES}))
    gate = Gate()
    engine = Engine(
        cluster, lambda m: nodes, clock=clock, monotonic=lambda: clock.now.timestamp(), gates=gate
    )

    assert engine.reconcile(cluster.get("m")).phase == Phase.PLANNED

    assert gate.reads == 1 and set(nodes.changes) == {"w1:facts", "w2:facts"}  # the read-only probe only
    report = next(iter(cluster.reports.values()))["report.md"]
    assert "prometheus-alerts at http://127.0.0.1:9090" in report
    assert "closed now: 1 alert(s) firing: TargetDown" in report


def test_time_outside_every_window_does_not_count_towards_the_gate_timeout(clock: Clock) -> None:
    """A gate closed when the day's window closes is read again when the next one opens; the wait
    counts from that opening, so the rollout is not paused at once for the night it spent waiting."""
    opens = clock.now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    window = {"start": f"{opens:%H:%M}", "duration": "10m"}
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    gates = {**GATES, "timeout": "15m"}
    cluster.create(manifest(rollout={"maxUnavailable": 1, "gates": gates, "windows": [window]}))
    gate = Gate()
    engine = Engine(
        cluster, lambda m: nodes, clock=clock, monotonic=lambda: clock.now.timestamp(), gates=gate
    )

    def run_until(deadline: dt.datetime) -> None:
        while clock.now < deadline:
            result = engine.reconcile(cluster.get("m"))
            assert result.phase == Phase.PROGRESSING, cluster.stored_status().message
            clock.advance(min(result.delay, max(1.0, (deadline - clock.now).total_seconds())))

    run_until(opens + dt.timedelta(minutes=12))  # the window: 10 minutes closed, then it closes
    assert gate.reads >= 10 and nodes.changes == {}
    assert cluster.stored_status().message.startswith("waiting for window (opens in 1d, ")
    assert condition(cluster, ConditionType.GATE_CLOSED)[0] == "True"  # as last read

    clock.now = opens + dt.timedelta(days=1, seconds=1)  # the next day's window has just opened
    reads = gate.reads
    result = engine.reconcile(cluster.get("m"))
    assert gate.reads == reads + 1
    assert result.phase == Phase.PROGRESSING, cluster.stored_status().message
    assert cluster.stored_status().message.startswith("waiting for gate: prometheus-alerts")
    run_until(opens + dt.timedelta(days=1, minutes=9))  # still inside its 15 minutes: waiting
    gate.state = GateState.OPEN
    clock.advance(30)
    assert engine.reconcile(cluster.get("m")).phase == Phase.SUCCEEDED
