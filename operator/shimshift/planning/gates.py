"""What decides, besides the waves, when a planned node may start: the maintenance windows (and whether
one is open at the plan's `now`), the nodes an admin holds (`shimshift.io/hold`), and the selected
nodes a blocking pod (`spec.rollout.blockingPodSelector`) would keep waiting right now, and the health
gates (`spec.rollout.gates`) with their state right now when the operator read them. For the plan
report; the rollout applies the same rules (`planning.rollout`). Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from shimshift.model import keys
from shimshift.model.durations import format_duration
from shimshift.model.gates import GateReading, GateState
from shimshift.model.selectors import parse_label_selector
from shimshift.model.spec import WEEKDAYS, NodeMigrationSpec, load_zone
from shimshift.planning.cluster import Cluster
from shimshift.planning.healthgates import describe_gates
from shimshift.planning.selection import NodeSkipReason, Selection
from shimshift.planning.waves import zone_of
from shimshift.planning.windows import describe_opening, window_state

#: Nodes listed by name in `held` and `heldBack`; the report says how many more.
GATES_LISTED = 50


@dataclass(frozen=True)
class RolloutGates:
    windows: tuple[str, ...]  # e.g. "Fri 22:00 for 6h"; empty: nodes start at any time
    time_zone: str
    window_now: str  # "open now, until ..." or "closed now: opens in 3h, ..."; empty without windows
    held: tuple[str, ...]  # "node: reason" (or "node") of the nodes held by shimshift.io/hold
    blocking_pod_selector: str
    held_back: tuple[str, ...]  # "node (namespace/pod, ...)": selected nodes a blocking pod holds back now
    held_count: int  # all of them; `held` and `held_back` list the first GATES_LISTED
    held_back_count: int
    #: selected nodes that already carry the cluster autoscaler's scale-down-disabled (kept as it is)
    autoscaler_kept: int = 0
    #: spec.rollout.maxUnavailablePerZone as given ("" without one), its zoneLabel, and how many zones
    #: the selected workers are in (nodes without the label count as one zone)
    zone_limit: str = ""
    zone_label: str = ""
    zones: int = 0
    #: spec.rollout.gates, one line per gate ("prometheus at http://...: ... returns nothing"), then its
    #: state now ("open", "closed: ...", "error: ...", or "not read" offline); empty without gates
    health_gates: tuple[str, ...] = ()
    health_gates_timeout: str = ""


def _window_now(spec: NodeMigrationSpec, now: dt.datetime) -> str:
    rollout = spec.rollout
    if not rollout.windows:
        return ""
    state = window_state(rollout.windows, rollout.time_zone, now)
    if state.at is None:
        return "closed now: none opens in the next 4 years"
    if state.open:
        local = state.at.astimezone(load_zone(rollout.time_zone))
        return f"open now, until {WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} {rollout.time_zone}"
    return f"closed now: {describe_opening(state.at, rollout.time_zone, now)}"


def _health_gates(spec: NodeMigrationSpec, readings: Sequence[GateReading] | None) -> tuple[str, ...]:
    by_gate = {r.gate: r for r in readings or ()}
    names = [
        *([spec.rollout.gates.prometheus.name] if spec.rollout.gates.prometheus else []),
        *(c.gate_name for c in spec.rollout.gates.conditions),
    ]
    out = []
    for name, line in zip(names, describe_gates(spec.rollout.gates), strict=True):
        reading = by_gate.get(name)
        if reading is None:
            state = "not read (the operator's plan and shimshift plan --probe-namespace read them)"
        elif reading.state == GateState.OPEN:
            state = "open now"
        elif reading.state == GateState.CLOSED:
            state = f"closed now: {reading.reason}"
        else:
            state = f"error now: {reading.reason}"
        out.append(f"{line}; {state}")
    return tuple(out)


def rollout_gates(
    spec: NodeMigrationSpec,
    cluster: Cluster,
    selection: Selection,
    now: dt.datetime,
    gate_readings: Sequence[GateReading] | None = None,
) -> RolloutGates:
    held = [
        f"{s.node}: {s.detail}" if s.detail else s.node
        for s in selection.skipped
        if s.reason == NodeSkipReason.HELD
    ]
    back: list[str] = []
    selector_text = spec.rollout.blocking_pod_selector
    if selector_text:
        selector = parse_label_selector(selector_text)
        selected = {n.name for n in selection.selected}
        by_node: dict[str, list[str]] = {}
        for pod in cluster.pods:
            if pod.node in selected and not pod.phase.terminal and selector.matches(pod.labels):
                by_node.setdefault(pod.node, []).append(pod.key)
        for node in sorted(by_node):
            pods = sorted(by_node[node])
            more = f", +{len(pods) - 3}" if len(pods) > 3 else ""
            back.append(f"{node} ({', '.join(pods[:3])}{more})")
    return RolloutGates(
        windows=tuple(str(w) for w in spec.rollout.windows),
        time_zone=spec.rollout.time_zone,
        window_now=_window_now(spec, now),
        held=tuple(held[:GATES_LISTED]),
        blocking_pod_selector=selector_text,
        held_back=tuple(back[:GATES_LISTED]),
        held_count=len(held),
        held_back_count=len(back),
        autoscaler_kept=sum(
            1
            for n in selection.selected
            if keys.SCALE_DOWN_DISABLED_ANNOTATION in n.annotations
            and keys.SCALE_DOWN_DISABLED_BY_ANNOTATION not in n.annotations
        ),
        zone_limit=str(limit) if (limit := spec.rollout.max_unavailable_per_zone) is not None else "",
        zone_label=spec.rollout.zone_label,
        zones=len({zone_of(spec.rollout, n) for n in selection.selected if not n.control_plane}),
        health_gates=_health_gates(spec, gate_readings),
        health_gates_timeout=format_duration(spec.rollout.gates.timeout)
        if spec.rollout.gates.configured
        else "",
    )


def gate_lines(g: RolloutGates) -> list[str]:
    """One line each, plain text for every report format: the windows, the holds, the blocking pods, the
    cluster autoscaler, the per-zone limit, the health gates."""
    if g.windows:
        windows = (
            f"Windows ({g.time_zone}): {'; '.join(g.windows)}; {g.window_now}. Nodes start only inside a "
            "window; a node in flight when it closes finishes."
        )
    else:
        windows = "Windows: none (spec.rollout.windows): nodes start at any time."
    if g.held:
        more = f" and {g.held_count - len(g.held)} more" if g.held_count > len(g.held) else ""
        holds = f"Holds: {g.held_count} node(s) held by {keys.HOLD_KEY}, skipped: {', '.join(g.held)}{more}."
    else:
        holds = f"Holds: no node carries {keys.HOLD_KEY}."
    selector = g.blocking_pod_selector
    if not selector:
        blocking = "Blocking pods: none (spec.rollout.blockingPodSelector is not set)."
    elif g.held_back:
        more = (
            f" and {g.held_back_count - len(g.held_back)} more"
            if g.held_back_count > len(g.held_back)
            else ""
        )
        blocking = (
            f"Blocking pods ({selector}): {g.held_back_count} node(s) would wait now (others go first): "
            f"{', '.join(g.held_back)}{more}."
        )
    else:
        blocking = f"Blocking pods ({selector}): no selected node has one now."
    kept = f"; {g.autoscaler_kept} selected node(s) already carry it and keep it" if g.autoscaler_kept else ""
    autoscaler = (
        f"Cluster autoscaler: a node in flight carries {keys.SCALE_DOWN_DISABLED_ANNOTATION}=true, "
        f"removed after{kept}."
    )
    if g.zone_limit:
        zones = (
            f"Zones ({g.zone_label}): at most {g.zone_limit} of a zone's workers in one wave "
            f"(spec.rollout.maxUnavailablePerZone), besides spec.rollout.maxUnavailable; the selected "
            f"workers are in {g.zones} zone(s) (nodes without the label count as one); the waves keep to it."
        )
    else:
        zones = "Zones: no per-zone limit (spec.rollout.maxUnavailablePerZone is not set)."
    if g.health_gates:
        health = (
            f"Health gates (spec.rollout.gates, read before each wave; a wave waits while one is closed or "
            f"cannot be read, and the rollout pauses after {g.health_gates_timeout}): "
            + "; ".join(g.health_gates)
            + "."
        )
    else:
        health = "Health gates: none (spec.rollout.gates is not set)."
    return [windows, holds, blocking, autoscaler, zones, health]
