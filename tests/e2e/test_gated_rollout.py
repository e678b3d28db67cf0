"""A gated rollout does what its plan said, on the real API server (behind the fault proxy, the operator
as the chart's ServiceAccount) with simulated node steps and a real Prometheus on loopback.

Eight nodes in three zones, one held by an admin (`shimshift.io/hold`), `maxUnavailablePerZone: 1`
(the zone of four is the one at its limit), a maintenance window that opens a few seconds after the
test starts (the operator's clock is moved, `SHIMSHIFT_SIM_CLOCK_OFFSET`, so the window is seconds
away instead of up to a minute: windows start on the minute) and a Prometheus gate whose alert fires
until the test switches it off after the window has opened. One NodeMigration is planned (Plan mode)
and then migrated (Migrate mode), and the plan report's JSON form is held against what happened:

- the held node is Skipped with the reason the plan gave, and never touched (no request names it,
  no NodeMigrationNode, no change on the node);
- no node started before the window opened or while the gate was closed (the proxy's request log
  and the NodeMigrationNodes' step timestamps);
- the waves are the plan's waves, in the plan's order, each started saying the zone of four is at its
  limit (every status write recorded from a watch), and never more than one node of a zone in flight;
- every other node Succeeded.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.prometheus import ALERT, Prometheus, prometheus_binary

from shimshift.entry.cli import main
from shimshift.model import keys
from shimshift.model.status import NodePhase, NodeRecord, Phase
from shimshift.model.timestamps import parse_iso
from tests.e2e.conftest import (
    Operator,
    eventually,
    migration,
    node,
    operator_namespace,
    raw_status,
    status_of,
)
from tests.e2e.realapi import RealCluster, Recorder
from tests.e2e.simnodes import read_state

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.realapi,
    pytest.mark.timeout(150),
    pytest.mark.skipif(prometheus_binary() is None, reason="prometheus is not installed (scripts/setup)"),
]

ZONE = "topology.kubernetes.io/zone"
ZONES = {"a1": "zone-a", "a2": "zone-a", "a3": "zone-a", "a4": "zone-a"} | {
    "b1": "zone-b",
    "b2": "zone-b",
    "c1": "zone-c",
    "c2": "zone-c",
}
HELD = "b2"
HOLD_TEXT = "disk replacement on Friday"
#: real seconds from the test's start to the window's opening
WINDOW_LEAD = 25.0
#: how long each simulated node step takes (eight of them per node)
STEP_SECONDS = 0.3


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path / "gated-prometheus", firing=True).start()
    yield prom
    prom.stop()


def _report(cluster: KubeApi, tmp_path: Path) -> dict[str, Any]:
    """The stored plan report's JSON form, as `shimshift report` gives it."""
    target = tmp_path / "plan.json"
    argv = ["report", "m", "-n", operator_namespace(cluster), "--kubeconfig", str(cluster.kubeconfig)]
    out = io.StringIO()
    assert main([*argv, "--format", "json", "-o", str(target)], out) == 0, out.getvalue()
    report: dict[str, Any] = json.loads(target.read_text())
    return report


def _at(text: str) -> dt.datetime:
    parsed = parse_iso(text)
    assert parsed is not None, text
    return parsed


def _starts(records: list[NodeRecord]) -> list[list[str]]:
    """The waves as they ran: the nodes grouped by the instant they were started, in that order."""
    by_start: dict[str, list[str]] = {}
    for r in records:
        by_start.setdefault(r.started_at, []).append(r.name)
    return [sorted(by_start[t]) for t in sorted(by_start)]


def test_a_gated_windowed_zoned_rollout_with_a_held_node_does_what_its_plan_said(
    cluster: KubeApi,
    operator_factory: Callable[..., Operator],
    sim_dir: Path,
    prometheus: Prometheus,
    tmp_path: Path,
) -> None:
    held_meta = {"annotations": {keys.HOLD_KEY: HOLD_TEXT}}
    nodes = [node(name, labels={ZONE: zone}) for name, zone in ZONES.items()]
    for n in nodes:
        if n["metadata"]["name"] == HELD:
            n["metadata"].update(held_meta)
    cluster.seed(nodes)

    # the operator's clock: the window opens WINDOW_LEAD real seconds from now, on its minute
    real_start, mono_start = dt.datetime.now(dt.UTC), time.monotonic()  # the proxy logs monotonic times
    ahead = real_start + dt.timedelta(seconds=WINDOW_LEAD)
    opens = ahead.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    offset = (opens - ahead).total_seconds()  # the operator's clock runs this much ahead of the real one
    # each node step takes a while, so a node is in flight for seconds and the waves' start times
    # (recorded to the second) tell them apart
    operator = operator_factory(
        SHIMSHIFT_SIM_CLOCK_OFFSET=f"{offset:.6f}", SHIMSHIFT_SIM_STEP_SECONDS=str(STEP_SECONDS)
    )
    operator.start()
    opens_real = opens - dt.timedelta(seconds=offset)

    gates = {
        "interval": "1s",
        "prometheus": {"url": prometheus.url, "alerts": {"alertFilterRegexp": "^Watchdog$"}},
    }
    rollout = {
        "maxUnavailable": 3,
        "maxUnavailablePerZone": 1,
        "windows": [{"start": f"{opens:%H:%M}", "duration": "1h"}],
        "gates": gates,
    }
    cluster.seed(migration(mode="Plan", rollout=rollout))
    eventually(lambda: status_of(cluster).phase == Phase.PLANNED, 30, "the plan")
    assert dt.datetime.now(dt.UTC) < opens_real, "planning took longer than the window's lead"
    plan = _report(cluster, tmp_path)
    planned_status = raw_status(cluster, "m")

    # what the plan says
    assert plan["summary"]["nodesSelected"] == 7 and plan["summary"]["nodesSkipped"] == 1, plan["summary"]
    skipped = {s["node"]: s for s in plan["skipped"]}
    assert skipped == {HELD: {"node": HELD, "reason": "Held", "detail": HOLD_TEXT}}, plan["skipped"]
    gates_now = plan["rolloutGates"]
    assert gates_now["held"] == [f"{HELD}: {HOLD_TEXT}"]
    assert gates_now["windowNow"].startswith("closed now: opens in "), gates_now["windowNow"]
    opening = gates_now["windowNow"].split(", ", 1)[1]  # "Mon 2026-12-07 12:15 UTC"
    assert opening == f"{opens:%a %Y-%m-%d %H:%M} UTC", (gates_now["windowNow"], opens)
    assert len(gates_now["healthGates"]) == 1
    assert f"closed now: 1 alert(s) firing: {ALERT}" in gates_now["healthGates"][0], gates_now["healthGates"]
    assert (gates_now["zoneLimit"], gates_now["zoneLabel"], gates_now["zones"]) == ("1", ZONE, 3)
    planned_waves = [w["nodes"] for w in plan["waves"]]
    assert planned_waves == [["a1", "b1", "c1"], ["a2", "c2"], ["a3"], ["a4"]], planned_waves
    wave_of = {n["name"]: n["wave"] for n in plan["nodes"]}
    assert set(wave_of) == set(ZONES) - {HELD}
    held_reason = f"{keys.HOLD_REASON}: {HOLD_TEXT}"
    assert planned_status["heldNodes"] == [{"name": HELD, "reason": held_reason}], planned_status
    counts = {k: planned_status["summary"][k] for k in ("total", "pending", "skipped")}
    assert counts == {"total": 8, "pending": 7, "skipped": 1}, planned_status["summary"]

    # the rollout: waits for the window, then for the gate; every status it writes is recorded
    before = len(cluster.requests)
    assert isinstance(cluster, RealCluster)
    statuses = Recorder(
        cluster.api.http, "/apis/shimshift.io/v1alpha1/nodemigrations", cluster.api.resource_version
    )
    statuses.start()
    cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"mode": "Migrate"}})
    waiting = eventually(
        lambda: (m := status_of(cluster).message).startswith("waiting for window (opens in ") and m,
        20,
        "the rollout waiting for the window",
    )
    # the same opening as the plan's, and the plan's selection pending
    assert waiting.endswith(f", {opening}); 7 node(s) pending"), (waiting, gates_now["windowNow"])
    eventually(
        lambda: status_of(cluster).message.startswith(
            f"waiting for gate: prometheus-alerts: 1 alert(s) firing: {ALERT}"
        ),
        WINDOW_LEAD + 30,
        "the rollout waiting for the gate once the window opened",
    )
    assert dt.datetime.now(dt.UTC) >= opens_real
    assert not cluster.list("nodemigrationnodes.shimshift.io")
    gate_opened = dt.datetime.now(dt.UTC)  # the alert fires until set_firing below has reloaded the rule
    prometheus.set_firing(False)
    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to complete")
    status = status_of(cluster)
    stored = raw_status(cluster, "m")

    # every node but the held one Succeeded; the held one is Skipped with the plan's reason
    phases = {r.name: r.phase for r in status.nodes}
    assert phases == {n: NodePhase.SUCCEEDED for n in wave_of}, phases
    assert stored["heldNodes"] == [{"name": HELD, "reason": held_reason}], stored["heldNodes"]
    counts = {k: stored["summary"][k] for k in ("total", "succeeded", "skipped", "failed", "rolledBack")}
    assert counts == {"total": 8, "succeeded": 7, "skipped": 1, "failed": 0, "rolledBack": 0}, stored
    assert f"held by {keys.HOLD_KEY} ({HELD})" in status.message, status.message

    # the held node was never touched: no request named it, no record, no change on the node
    during = list(cluster.requests)[before:]
    assert not [r for r in during if r.name in (HELD, f"m.{HELD}")], [
        (r.method, r.resource, r.name) for r in during if HELD in r.name
    ]
    assert read_state(sim_dir, HELD)["changes"] == {}
    held_node = cluster.must_get("nodes", HELD)
    assert not held_node["spec"].get("unschedulable")
    assert keys.RUNTIME_LABEL not in held_node["metadata"]["labels"]
    assert held_node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")

    # nothing started before the window opened, nor while the gate was closed: the first request
    # that changes a node or creates its record comes after both (real time, the proxy's log) ...
    changes = [
        r
        for r in during
        if (r.resource == "nodes" and r.method in ("PATCH", "PUT"))
        or (r.resource == "nodemigrationnodes" and r.method == "POST")
    ]
    assert changes
    first = real_start + dt.timedelta(seconds=min(r.time for r in changes) - mono_start)
    assert first >= max(opens_real, gate_opened), (first, opens_real, gate_opened)
    # ... and each node's recorded start and first step (the operator's clock) too
    gate_opened_operator = (gate_opened + dt.timedelta(seconds=offset)).replace(microsecond=0)
    records = list(status.nodes)
    # every start is on the operator's clock (ahead by `offset`), the child's creation included: the
    # API server's creationTimestamp (the real clock) is never a record's start, so the waves below,
    # grouped by start, compare like with like
    for r in records:
        assert r.steps, r
        for when in (r.started_at, r.steps[0].started_at):
            assert _at(when) >= opens and _at(when) >= gate_opened_operator, (r.name, when, opens)

    # the waves ran as planned, each started with the plan's zone at its limit, and never two nodes of
    # one zone at once
    statuses.stopping.set()
    statuses.join(timeout=10)
    said = [
        m
        for e in statuses.snapshot()
        if (m := ((e.obj.get("status") or {}).get("message") or "")).startswith("starting ")
    ]
    limit = "; zone zone-a at its limit (1/1)"
    assert list(dict.fromkeys(said)) == [
        f"starting a1, b1, c1{limit}",
        f"starting a2, c2{limit}",
        f"starting a3{limit}",
        "starting a4",
    ], said
    ran = _starts(records)
    assert ran == planned_waves, (ran, planned_waves)
    assert {n: i for i, wave in enumerate(ran, 1) for n in wave} == wave_of
    spans = [(_at(r.started_at), _at(r.finished_at), ZONES[r.name], r.name) for r in records]
    for start, _, zone, name in spans:
        flying = [n for s, f, z, n in spans if z == zone and s <= start < f]
        assert len(flying) <= 1, (name, zone, flying)
    for name in wave_of:
        changes_on = read_state(sim_dir, name)["changes"]
        assert changes_on.get("switch") == 1 and changes_on.get("finish") == 1, (name, changes_on)
