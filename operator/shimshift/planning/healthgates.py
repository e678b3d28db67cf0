"""Health gates judged: what a Prometheus answer or an object's conditions say about a gate, and what
the gates' readings mean for the next wave (wait, retry after an error, or pause after the timeout).
Pure: the answers are read by the caller (`shimshift.entry.gateport`), `now` is passed in.

- A closed gate holds the wave back (phase Progressing, reason WaitingForGate, the GateClosed condition
  True); it is read again every `spec.rollout.gates.interval`.
- A gate that cannot be read is not a "no": it is its own condition (GateError, reason GateError) and
  is read again with a backoff that grows with the time it has been failing (5s, then as long as it
  has failed so far, at most `ERROR_BACKOFF_MAX`), never at once in a loop.
- Closed or unreadable for longer than `spec.rollout.gates.timeout` (counted from when it closed, or
  from the end of the last pause, whichever is later): the rollout pauses (phase Paused, reason
  GateTimeout) until the spec changes (a new generation arms the timer again).
- A node in flight is never interrupted: the gates are read only when a wave could start.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shimshift.model.durations import format_duration
from shimshift.model.gates import ConditionGate, GateReading, Gates, GateState, PrometheusGate
from shimshift.model.status import Condition, ConditionReason, ConditionType, EventReason
from shimshift.model.timestamps import iso, parse_iso

#: The first retry after a gate could not be read, and the longest wait between retries.
ERROR_BACKOFF_MIN = 5.0
ERROR_BACKOFF_MAX = 300.0
#: Series named in a closed gate's reason; the rest are counted.
SERIES_NAMED = 3
#: The longest reason kept from one gate (a reason quotes Prometheus labels or an object's message).
REASON_MAX = 300


def _clip(text: str) -> str:
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 3] + "..."


def _series(metric: Mapping[str, Any]) -> str:
    name = str(metric.get("__name__", ""))
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}"


def _value(sample: Any) -> float | None:
    """The number in a Prometheus `[time, "value"]` pair; None if it is not one."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return None if math.isnan(value) else value


def judge_prometheus(gate: PrometheusGate, answer: Any) -> GateReading:
    """What an /api/v1/query answer (decoded JSON) says about `gate`."""
    name = gate.name
    if not isinstance(answer, Mapping) or answer.get("status") != "success":
        error = answer.get("error", "") if isinstance(answer, Mapping) else ""
        return GateReading(name, GateState.ERROR, _clip(f"Prometheus refused the query: {error or answer!r}"))
    data = answer.get("data")
    kind = data.get("resultType") if isinstance(data, Mapping) else None
    result = data.get("result") if isinstance(data, Mapping) else None
    if kind == "scalar":
        value = _value(result)
        if gate.threshold is None or value is None:
            return GateReading(
                name, GateState.ERROR, "the query returns a scalar: set threshold (it must be under it)"
            )
        if value < gate.threshold:
            return GateReading(name, GateState.OPEN)
        return GateReading(
            name, GateState.CLOSED, f"query returned {value:g}, not under threshold {gate.threshold:g}"
        )
    if kind != "vector" or not isinstance(result, list):
        return GateReading(
            name, GateState.ERROR, f"the query returns a {kind or 'malformed answer'}, not an instant vector"
        )
    series = [s for s in result if isinstance(s, Mapping) and isinstance(s.get("metric"), Mapping)]
    if gate.alerts is not None:
        alerts = gate.alerts
        firing = sorted(
            {str(s["metric"].get("alertname", "?")) for s in series if not alerts.ignores(s["metric"])}
        )
        if not firing:
            return GateReading(name, GateState.OPEN)
        more = f", +{len(firing) - SERIES_NAMED}" if len(firing) > SERIES_NAMED else ""
        state = "firing" if alerts.firing_only else "pending or firing"
        return GateReading(
            name,
            GateState.CLOSED,
            _clip(f"{len(firing)} alert(s) {state}: {', '.join(firing[:SERIES_NAMED])}{more}"),
        )
    if gate.threshold is None:
        over = [(s, _value(s.get("value"))) for s in series]
        what = "must return nothing"
    else:
        threshold = gate.threshold
        over = [(s, v) for s in series if (v := _value(s.get("value"))) is None or v >= threshold]
        what = f"values must be under {threshold:g}"
    if not over:
        return GateReading(name, GateState.OPEN)
    shown = "; ".join(
        f"{_series(s['metric'])} {v:g}" if v is not None else _series(s["metric"])
        for s, v in over[:SERIES_NAMED]
    )
    more = f" and {len(over) - SERIES_NAMED} more" if len(over) > SERIES_NAMED else ""
    return GateReading(
        name, GateState.CLOSED, _clip(f"query returned {len(over)} series ({what}): {shown}{more}")
    )


def judge_condition(gate: ConditionGate, obj: Mapping[str, Any]) -> GateReading:
    """What `obj` (the object `gate` names, as read) says: open when its condition `type` has `status`."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    found = next(
        (c for c in conditions or () if isinstance(c, Mapping) and c.get("type") == gate.type),
        None,
    )
    if found is None:
        return GateReading(
            gate.gate_name, GateState.CLOSED, f"{gate.object} has no condition {gate.type} yet"
        )
    if str(found.get("status")) == gate.status:
        return GateReading(gate.gate_name, GateState.OPEN)
    why = ": ".join(str(found[k]) for k in ("reason", "message") if found.get(k))
    return GateReading(
        gate.gate_name,
        GateState.CLOSED,
        _clip(
            f"{gate.object} condition {gate.type} is {found.get('status')}, not {gate.status}"
            + (f" ({why})" if why else "")
        ),
    )


@dataclass(frozen=True)
class GateHold:
    """The gates hold the next wave back: how the status says so, and when to read them again."""

    reason: ConditionReason  # WaitingForGate, GateError, GateTimeout
    message: str
    wait: float | None  # None: paused, read again only when the spec changes
    paused: bool = False


def _true_since(previous: Sequence[Condition], type_: ConditionType) -> dt.datetime | None:
    old = next((c for c in previous if c.type == type_), None)
    return parse_iso(old.last_transition_time) if old is not None and old.status == "True" else None


def _armed_at(previous: Sequence[Condition]) -> dt.datetime | None:
    """When the rollout last stopped being paused: a wait counts from then at the earliest."""
    old = next((c for c in previous if c.type == ConditionType.PAUSED), None)
    return parse_iso(old.last_transition_time) if old is not None and old.status == "False" else None


def _since(previous: Sequence[Condition], type_: ConditionType, now: dt.datetime) -> dt.datetime:
    since = _true_since(previous, type_) or now
    armed = _armed_at(previous)
    return max(since, armed) if armed is not None and armed <= now else since


def timed_out(previous: Sequence[Condition], generation: int | None) -> bool:
    """Whether this generation of the spec was paused by a gate timeout (it stays paused)."""
    old = next((c for c in previous if c.type == ConditionType.PAUSED), None)
    return (
        old is not None
        and old.status == "True"
        and old.reason == ConditionReason.GATE_TIMEOUT
        and (generation is None or old.observed_generation == generation)
    )


def gate_hold(
    gates: Gates,
    readings: Sequence[GateReading],
    previous: Sequence[Condition],
    now: dt.datetime,
    pending: int,
    counting_from: dt.datetime | None = None,
) -> GateHold | None:
    """None when every gate is open; else how the wave waits. `counting_from`: the wait towards the
    timeout counts from then at the earliest (the opening of the maintenance window open now: a gate
    last read closed before the previous window closed has not been waited on since)."""
    errors = [r for r in readings if r.state == GateState.ERROR]
    closed = [r for r in readings if r.state == GateState.CLOSED]
    if not errors and not closed:
        return None
    timeout = format_duration(gates.timeout)
    first = errors[0] if errors else closed[0]
    kind = ConditionType.GATE_ERROR if errors else ConditionType.GATE_CLOSED
    since = _since(previous, kind, now)
    if counting_from is not None and since < counting_from <= now:
        since = counting_from
    waited = (now - since).total_seconds()
    also = len(errors) + len(closed) - 1
    text = f"{first}" + (f" (and {also} more gate(s) not open)" if also else "")
    if waited >= gates.timeout:
        return GateHold(
            ConditionReason.GATE_TIMEOUT,
            f"paused: gate not open for more than spec.rollout.gates.timeout ({timeout}): {text}; "
            f"{pending} node(s) pending; fix the cause, then change the spec (raise the timeout, or set "
            "spec.rollout.paused to true and back to false) to resume",
            None,
            paused=True,
        )
    if errors:
        backoff = min(ERROR_BACKOFF_MAX, max(ERROR_BACKOFF_MIN, waited))
        return GateHold(
            ConditionReason.GATE_ERROR,
            f"waiting for gate: cannot read {text}; {pending} node(s) pending; retrying with backoff, the "
            f"rollout pauses after spec.rollout.gates.timeout ({timeout})",
            backoff,
        )
    return GateHold(
        ConditionReason.WAITING_FOR_GATE,
        f"waiting for gate: {text}; {pending} node(s) pending; the rollout pauses if it stays closed past "
        f"spec.rollout.gates.timeout ({timeout})",
        gates.interval,
    )


def gate_conditions(
    previous: Sequence[Condition], readings: Sequence[GateReading], now: dt.datetime, generation: int
) -> tuple[Condition, Condition]:
    """GateClosed and GateError after a reading of every gate (lastTransitionTime kept while a status
    stays)."""
    out = []
    for type_, state, reason in (
        (ConditionType.GATE_CLOSED, GateState.CLOSED, ConditionReason.WAITING_FOR_GATE),
        (ConditionType.GATE_ERROR, GateState.ERROR, ConditionReason.GATE_ERROR),
    ):
        hits = [r for r in readings if r.state == state]
        status = "True" if hits else "False"
        old = next((c for c in previous if c.type == type_), None)
        since = old.last_transition_time if old is not None and old.status == status else iso(now)
        message = "; ".join(str(r) for r in hits)[:1000]
        out.append(
            Condition(
                type_, status, reason if hits else ConditionReason.GATES_OPEN, message, since, generation
            )
        )
    return out[0], out[1]


def gate_events(
    previous: Sequence[Condition], updated: Sequence[Condition]
) -> list[tuple[bool, EventReason, str]]:
    """(warning, reason, message) of the Events a change in GateClosed / GateError calls for: a gate
    closed or its reason changed, one could not be read (or its error changed), all opened again."""
    old = {c.type: c for c in previous}
    events: list[tuple[bool, EventReason, str]] = []
    was_holding = False
    holding = False
    for cond in updated:
        before = old.get(ConditionType(cond.type))
        was = before is not None and before.status == "True"
        was_holding = was_holding or was
        holding = holding or cond.status == "True"
        if cond.status == "True" and (not was or (before is not None and before.message != cond.message)):
            reason = (
                EventReason.GATE_ERROR if cond.type == ConditionType.GATE_ERROR else EventReason.GATE_CLOSED
            )
            events.append((True, reason, f"gate not open: {cond.message}"))
    if was_holding and not holding:
        events.append((False, EventReason.GATE_OPENED, "every gate of spec.rollout.gates is open"))
    return events


def describe_gates(gates: Gates) -> list[str]:
    """One line per gate, for the plan report."""
    lines = []
    if gates.prometheus is not None:
        p = gates.prometheus
        if p.alerts is not None:
            ignore = []
            if p.alerts.ignore_names:
                ignore.append(f"alertname ~ {p.alerts.ignore_names}")
            ignore.extend(f"{k} =~ {v}" for k, v in p.alerts.ignore_labels)
            rule = f"no alert in {p.alerts.query}" + (
                f" but those with {', '.join(ignore)}" if ignore else ""
            )
        elif p.threshold is not None:
            rule = f"{p.query} under {p.threshold:g}"
        else:
            rule = f"{p.query} returns nothing"
        lines.append(f"{p.name} at {p.url}: {rule}")
    lines.extend(
        f"{c.gate_name}: {c.object} ({c.api_version}) has {c.type}={c.status}" for c in gates.conditions
    )
    return lines
