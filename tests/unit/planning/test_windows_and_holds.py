"""When a node may start: maintenance windows (with a fake clock: `now` is passed to `decide`), holds,
and pods that hold a node back from its wave."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.cron import parse_cron
from shimshift.model.spec import NodeMigrationSpec, Window, load_zone
from shimshift.model.status import ConditionReason, MigrationStatus, NodePhase, NodeRecord, Phase
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Node
from shimshift.planning.gates import gate_lines
from shimshift.planning.report_markdown import render_markdown
from shimshift.planning.rollout import Decision, decide
from shimshift.planning.selection import hold_of
from shimshift.planning.windows import human_wait, window_state
from tests.unit.conftest import minimal_manifest
from tests.unit.planning.factory import cluster, node, pod
from tests.unit.planning.factory import spec as make_spec

UTC = dt.UTC
BERLIN = "Europe/Berlin"


def problems_of(body: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(body, crd)
    return [str(p) for p in info.value.problems]


def at(text: str) -> dt.datetime:
    """An instant written in UTC, e.g. "2026-01-02T21:00"."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def migrate(**rollout: Any) -> NodeMigrationSpec:
    return make_spec(mode="Migrate", rollout=rollout)


def workers(*names: str, **labels: str) -> list[Node]:
    return [Node(name, labels={"pool": "w", **labels}, runtime_version="docker://20.10.24") for name in names]


def run(spec: NodeMigrationSpec, nodes: list[Node], now: dt.datetime, **kwargs: Any) -> Decision:
    return decide(spec, MigrationStatus(), nodes, now, **kwargs)


# --- windows ----------------------------------------------------------------------------------------

# 2026-01-02 is a Friday; Berlin is UTC+1 in winter.
FRIDAY_NIGHT = {"windows": [{"days": ["Fri"], "start": "22:00", "duration": "6h"}], "timeZone": BERLIN}


def test_a_node_starts_inside_a_window() -> None:
    decision = run(migrate(**FRIDAY_NIGHT), workers("a"), at("2026-01-02T21:30"))  # Fri 22:30 in Berlin
    assert decision.start == ("a",)
    assert decision.reason == ConditionReason.WAVE_STARTED


def test_outside_every_window_nothing_starts_and_the_message_says_when_the_next_opens() -> None:
    decision = run(migrate(**FRIDAY_NIGHT), workers("a", "b"), at("2026-01-02T18:00"))  # Fri 19:00 Berlin

    assert decision.start == ()
    assert decision.phase == Phase.PROGRESSING
    assert decision.reason == ConditionReason.WAITING_FOR_WINDOW
    assert decision.message.startswith("waiting for window (opens in 3h, Fri 2026-01-02 22:00 Europe/Berlin)")
    assert "2 node(s) pending" in decision.message
    assert decision.wait_seconds == 3 * 3600
    assert all(r.phase == NodePhase.PENDING for r in decision.nodes)


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    spec = migrate(**FRIDAY_NIGHT)
    assert run(spec, workers("a"), at("2026-01-03T02:59")).start == ("a",)  # Sat 03:59 Berlin: still open
    closed = run(spec, workers("a"), at("2026-01-03T03:00"))  # Sat 04:00: closed, next Friday
    assert closed.start == ()
    assert "opens in 6d18h, Fri 2026-01-09 22:00" in closed.message
    # Thursday night is not in it: the Friday window does not open on the evening before
    assert run(spec, workers("a"), at("2026-01-01T22:30")).start == ()


def test_several_windows_the_nearest_one_opens_next() -> None:
    spec = migrate(
        windows=[
            {"days": ["Sat", "Sun"], "start": "08:00", "duration": "2h"},
            {"start": "01:00", "duration": "30m"},  # every day
        ]
    )
    assert run(spec, workers("a"), at("2026-01-03T01:10")).start == ("a",)
    assert run(spec, workers("a"), at("2026-01-03T09:59")).start == ("a",)
    later = run(spec, workers("a"), at("2026-01-03T10:00"))
    assert later.start == () and later.wait_seconds == 15 * 3600  # Sunday 01:00 UTC


def test_a_start_time_in_the_spring_forward_gap_opens_at_the_first_valid_instant_after() -> None:
    # 2026-03-29, Europe/Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day
    spec = migrate(windows=[{"days": ["Sun"], "start": "02:30", "duration": "1h"}], timeZone=BERLIN)
    before = run(spec, workers("a"), at("2026-03-29T00:59"))  # 01:59 CET
    assert before.start == () and before.wait_seconds == 60
    assert "Sun 2026-03-29 03:00 Europe/Berlin" in before.message
    assert run(spec, workers("a"), at("2026-03-29T01:00")).start == ("a",)  # 03:00 CEST
    assert run(spec, workers("a"), at("2026-03-29T02:00")).start == ()  # one elapsed hour later


def test_a_start_time_that_occurs_twice_at_fall_back_uses_the_first_and_lasts_elapsed_time() -> None:
    # 2026-10-25, Europe/Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 occurs twice
    spec = migrate(windows=[{"start": "02:30", "duration": "1h"}], timeZone=BERLIN)
    assert run(spec, workers("a"), at("2026-10-25T00:29")).start == ()  # 02:29 CEST
    assert run(spec, workers("a"), at("2026-10-25T00:30")).start == ("a",)  # the first 02:30 (CEST)
    state = window_state(spec.rollout.windows, BERLIN, at("2026-10-25T00:30"))
    assert state.open and state.at == at("2026-10-25T01:30")  # 1h elapsed: 02:30 CET
    # the second 02:30 (CET) is the end of the window, not a second one
    assert run(spec, workers("a"), at("2026-10-25T01:45")).start == ()


def test_a_duration_is_elapsed_time_across_a_dst_change() -> None:
    # Sat 23:00 CET for 5h on the spring-forward night: open until 05:00 CEST (04:00 local wall hours)
    spec = migrate(windows=[{"days": ["Sat"], "start": "23:00", "duration": "5h"}], timeZone=BERLIN)
    assert run(spec, workers("a"), at("2026-03-29T02:59")).start == ("a",)  # 04:59 CEST
    assert run(spec, workers("a"), at("2026-03-29T03:00")).start == ()


def test_a_node_in_flight_when_the_window_closes_finishes_and_no_new_node_starts() -> None:
    spec = migrate(maxUnavailable=2, **FRIDAY_NIGHT)
    status = MigrationStatus(nodes=(NodeRecord("a", phase=NodePhase.IN_PROGRESS),))
    decision = decide(spec, status, workers("a", "b"), at("2026-01-03T12:00"))  # Sat noon: closed

    assert decision.start == ()
    assert decision.reason == ConditionReason.NODES_IN_FLIGHT
    assert [(r.name, r.phase) for r in decision.nodes] == [
        ("a", NodePhase.IN_PROGRESS),
        ("b", NodePhase.PENDING),
    ]


def test_without_windows_a_rollout_is_always_open() -> None:
    assert window_state((), "UTC", at("2026-01-01T00:00")).open
    assert run(migrate(), workers("a"), at("2026-01-01T03:00")).start == ("a",)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3 * 3600, "3h"),
        (2 * 3600 + 1, "3h"),
        (5400, "2h"),
        (3570, "1h"),
        (35 * 3600, "1d11h"),
        (48 * 3600, "2d"),
        (600, "10m"),
        (61, "2m"),
        (45, "45s"),
        (0.2, "1s"),
    ],
)
def test_the_wait_is_said_in_whole_hours_from_an_hour_on_and_rounded_up(seconds: float, text: str) -> None:
    assert human_wait(seconds) == text


# --- holds ------------------------------------------------------------------------------------------


def test_a_held_node_is_skipped_with_the_hold_as_its_reason() -> None:
    nodes = [
        *workers("a"),
        Node(
            "b",
            labels={"pool": "w", "shimshift.io/hold": "raid-rebuild"},
            runtime_version="docker://20.10.24",
        ),
        Node(
            "c",
            labels={"pool": "w"},
            annotations={"shimshift.io/hold": "waiting for   the vendor's firmware"},
            runtime_version="docker://20.10.24",
        ),
        Node("d", labels={"pool": "w", "shimshift.io/hold": ""}, runtime_version="docker://20.10.24"),
    ]
    decision = run(migrate(maxUnavailable=4), nodes, at("2026-01-01T00:00"))

    assert decision.start == ("a",)
    reasons = {r.name: (r.phase, r.skip_reason) for r in decision.nodes}
    assert reasons["b"] == (NodePhase.SKIPPED, "held by shimshift.io/hold: raid-rebuild")
    assert reasons["c"] == (NodePhase.SKIPPED, "held by shimshift.io/hold: waiting for the vendor's firmware")
    assert reasons["d"] == (NodePhase.SKIPPED, "held by shimshift.io/hold")


def test_a_hold_reason_is_one_bounded_line_with_control_characters_made_visible() -> None:
    long = Node("a", annotations={"shimshift.io/hold": "x" * 1000}, labels={"pool": "w"})
    escape = Node(
        "b", annotations={"shimshift.io/hold": "ok\x1b]8;;http://x\x07\nnext"}, labels={"pool": "w"}
    )
    assert len(hold_of(long) or "") == 200
    assert hold_of(escape) == "ok\\x1b]8;;http://x\\x07 next"


def test_a_hold_put_on_a_node_in_flight_does_not_interrupt_it() -> None:
    held = Node("a", labels={"pool": "w", "shimshift.io/hold": "x"}, runtime_version="docker://20.10.24")
    status = MigrationStatus(nodes=(NodeRecord("a", phase=NodePhase.IN_PROGRESS),))
    decision = decide(migrate(), status, [held], at("2026-01-01T00:00"))
    assert decision.nodes[0].phase == NodePhase.IN_PROGRESS
    assert decision.reason == ConditionReason.NODES_IN_FLIGHT


def test_a_rollout_with_only_held_nodes_left_says_so_when_it_finishes() -> None:
    held = Node("b", labels={"pool": "w", "shimshift.io/hold": "x"}, runtime_version="docker://20.10.24")
    status = MigrationStatus(nodes=(NodeRecord("a", phase=NodePhase.SUCCEEDED),))
    decision = decide(migrate(), status, [*workers("a"), held], at("2026-01-01T00:00"))
    assert decision.phase == Phase.SUCCEEDED
    assert "1 held by shimshift.io/hold (b)" in decision.message


def test_a_held_node_already_on_containerd_is_skipped_for_that_not_for_the_hold() -> None:
    node = Node("a", labels={"pool": "w", "shimshift.io/hold": "x"}, runtime_version="containerd://1.6.20")
    decision = run(migrate(), [node], at("2026-01-01T00:00"))
    assert decision.nodes[0].skip_reason.startswith("already runs containerd")
    assert decision.message == "every selected node runs containerd"


def test_removing_the_hold_puts_the_node_back_in_the_rollout() -> None:
    status = MigrationStatus(nodes=(NodeRecord("a", phase=NodePhase.SKIPPED, skip_reason="held by x"),))
    assert decide(migrate(), status, workers("a"), at("2026-01-01T00:00")).start == ("a",)


# --- blocking pods ----------------------------------------------------------------------------------


def test_a_node_with_a_blocking_pod_is_passed_over_and_the_wave_fills_from_the_rest() -> None:
    spec = migrate(maxUnavailable=2, blockingPodSelector="app=batch")
    decision = run(
        spec, workers("a", "b", "c", "d"), at("2026-01-01T00:00"), blocked={"a": ("jobs/nightly",)}
    )

    assert decision.start == ("b", "c")
    assert "1 node(s) held back by pods matching spec.rollout.blockingPodSelector: a (jobs/nightly)" in (
        decision.message
    )
    assert {r.name: r.phase for r in decision.nodes}["a"] == NodePhase.PENDING


def test_when_every_pending_node_is_held_back_nothing_starts_and_the_pods_are_named() -> None:
    spec = migrate(blockingPodSelector="app=batch")
    blocked = {"a": ("jobs/p1", "jobs/p2", "jobs/p3"), "b": ("jobs/q",)}
    decision = run(spec, workers("a", "b"), at("2026-01-01T00:00"), blocked=blocked)

    assert decision.start == ()
    assert decision.phase == Phase.PROGRESSING
    assert decision.reason == ConditionReason.BLOCKED_BY_PODS
    assert decision.message == (
        "waiting: 2 node(s) held back by pods matching spec.rollout.blockingPodSelector: "
        "a (jobs/p1, jobs/p2, +1), b (jobs/q)"
    )


def test_control_plane_nodes_wait_for_held_back_workers() -> None:
    cp = Node(
        "cp", labels={"pool": "w", "node-role.kubernetes.io/control-plane": ""}, runtime_version="docker://x"
    )
    decision = run(migrate(), [*workers("a"), cp], at("2026-01-01T00:00"), blocked={"a": ("jobs/p",)})
    assert decision.start == ()
    assert decision.reason == ConditionReason.BLOCKED_BY_PODS


# --- the spec ---------------------------------------------------------------------------------------


def test_windows_parse_into_days_start_and_elapsed_seconds() -> None:
    spec = migrate(
        windows=[{"days": ["Sat", "Mon"], "start": "22:15", "duration": "1h30m"}, FRIDAY_NIGHT["windows"][0]]
    )
    first = spec.rollout.windows[0]
    assert first.days == frozenset({0, 5})
    assert first.start == dt.time(22, 15)
    assert first.duration == 5400
    assert str(first) == "Mon,Sat 22:15 for 1h30m"
    assert spec.rollout.time_zone == "UTC"  # the default
    assert (
        str(migrate(windows=[{"start": "01:00", "duration": "1h"}]).rollout.windows[0])
        == "daily 01:00 for 1h"
    )


BAD_WINDOWS = [
    (
        {"timeZone": "Mars/Olympus_Mons"},
        "spec.rollout.timeZone: 'Mars/Olympus_Mons' is not a known IANA time zone",
    ),
    (
        {"timeZone": "../../etc/passwd"},
        "spec.rollout.timeZone: '../../etc/passwd' is not a known IANA time zone",
    ),
    (
        {"windows": [{"days": ["Mon", "Funday"], "start": "01:00", "duration": "1h"}]},
        'spec.rollout.windows[0].days[1]: Unsupported value: "Funday"',
    ),
    (
        {"windows": [{"start": "01:00", "duration": "1h"}, {"start": "02:00", "duration": "0s"}]},
        "spec.rollout.windows[1].duration: must be longer than 0s",
    ),
    (
        {"windows": [{"start": "01:00", "duration": "169h"}]},
        "spec.rollout.windows[0].duration: 169h is longer than 168h (7 days)",
    ),
    (
        {"windows": [{"start": "24:00", "duration": "1h"}]},
        "spec.rollout.windows[0].start: invalid value '24:00'",
    ),
    ({"windows": [{"start": "01:00"}]}, "spec.rollout.windows[0].duration: Required value"),
    (
        {"blockingPodSelector": "app in batch"},
        "spec.rollout.blockingPodSelector: cannot parse 'app in batch'",
    ),
]


@pytest.mark.parametrize(("rollout", "expected"), BAD_WINDOWS, ids=[b[1].split(":")[0] for b in BAD_WINDOWS])
def test_bad_windows_are_rejected_naming_the_field(
    crd: dict[str, Any], rollout: dict[str, Any], expected: str
) -> None:
    messages = problems_of(minimal_manifest(rollout=rollout), crd)
    assert any(m.startswith(expected) for m in messages), messages


# --- the plan report --------------------------------------------------------------------------------


def test_the_plan_report_says_the_windows_the_holds_and_the_nodes_blocking_pods_hold_back() -> None:

    held = node("n2", labels={"shimshift.io/hold": "vendor-ticket-42"})
    c = cluster(
        [node("n1"), held, node("n3")],
        pods=[
            pod("nightly", "n1", ns="jobs", labels={"app": "batch"}),
            pod("finished", "n3", ns="jobs", labels={"app": "batch"}, phase="Succeeded"),
        ],
    )
    spec = make_spec(rollout={**FRIDAY_NIGHT, "blockingPodSelector": "app=batch"})
    report = build_plan(spec, c, {}, at("2026-01-02T18:00"))

    assert gate_lines(report.rollout_gates) == [
        "Windows (Europe/Berlin): Fri 22:00 for 6h; closed now: opens in 3h, Fri 2026-01-02 22:00 Europe/Berlin. "
        "Nodes start only inside a window; a node in flight when it closes finishes.",
        "Holds: 1 node(s) held by shimshift.io/hold, skipped: n2: vendor-ticket-42.",
        "Blocking pods (app=batch): 1 node(s) would wait now (others go first): n1 (jobs/nightly).",
        "Cluster autoscaler: a node in flight carries cluster-autoscaler.kubernetes.io/scale-down-disabled=true, "
        "removed after.",
        "Zones: no per-zone limit (spec.rollout.maxUnavailablePerZone is not set).",
        "Health gates: none (spec.rollout.gates is not set).",
    ]
    assert "- Holds: 1 node(s) held by shimshift.io/hold, skipped: n2: vendor-ticket-42." in render_markdown(
        report
    )
    inside = build_plan(spec, c, {}, at("2026-01-02T22:00")).rollout_gates  # Sat 23:00 Berlin
    assert inside.window_now == "open now, until Sat 2026-01-03 04:00 Europe/Berlin"


def test_the_plan_report_counts_the_nodes_that_keep_an_admins_autoscaler_annotation() -> None:
    admin = node("n2")
    admin["metadata"]["annotations"] = {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}
    ours = node("n3")  # an earlier run's value, still marked: shimshift's, removed after
    ours["metadata"]["annotations"] = {
        "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true",
        "shimshift.io/scale-down-disabled-by": "old",
    }
    report = build_plan(make_spec(), cluster([node("n1"), admin, ours]), {}, at("2026-01-02T18:00"))

    line = gate_lines(report.rollout_gates)[3]
    assert line == (
        "Cluster autoscaler: a node in flight carries cluster-autoscaler.kubernetes.io/scale-down-disabled=true, "
        "removed after; 1 selected node(s) already carry it and keep it."
    )
    assert f"- {line}" in render_markdown(report)


# --- properties of the window math ------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    days=st.sets(st.integers(0, 6), min_size=1),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    duration=st.integers(1, 7 * 24 * 3600),
    offset=st.integers(0, 366 * 24 * 3600),
)
def test_a_closed_window_opens_exactly_when_it_says_and_an_open_one_is_open_until_it_closes(
    zone: str, days: set[int], hour: int, minute: int, duration: int, offset: int
) -> None:
    windows = (Window(start=dt.time(hour, minute), duration=float(duration), days=frozenset(days)),)
    now = at("2026-01-01T00:00") + dt.timedelta(seconds=offset)
    state = window_state(windows, zone, now)
    assert state.at is not None and state.at > now
    second = dt.timedelta(seconds=1)
    if state.open:
        assert state.at - now <= dt.timedelta(seconds=duration)
        assert window_state(windows, zone, state.at - second).open
    else:
        assert state.at - now <= dt.timedelta(days=7)
        assert window_state(windows, zone, state.at).open
        assert not window_state(windows, zone, state.at - second).open
        local = state.at.astimezone(load_zone(zone))
        assert local.weekday() in days
        # the local start time, or the first instant after a DST gap that swallowed it
        assert (local.hour, local.minute) == (hour, minute) or local.utcoffset() != (
            local - dt.timedelta(hours=3)
        ).utcoffset()


# --- cron windows -----------------------------------------------------------------------------------


def test_a_cron_window_opens_at_every_time_it_matches() -> None:
    spec = migrate(windows=[{"cron": "30 1,13 * * MON-FRI", "duration": "1h"}], timeZone=BERLIN)
    # Friday 2026-01-02: 01:30 and 13:30 Berlin (00:30 and 12:30 UTC)
    assert run(spec, workers("a"), at("2026-01-02T00:45")).start == ("a",)
    assert run(spec, workers("a"), at("2026-01-02T12:30")).start == ("a",)
    closed = run(spec, workers("a"), at("2026-01-02T14:00"))
    assert closed.start == () and "Mon 2026-01-05 01:30 Europe/Berlin" in closed.message  # not the weekend
    assert str(spec.rollout.windows[0]) == "cron 30 1,13 * * MON-FRI for 1h"


def test_a_cron_with_both_day_fields_matches_either_as_cron_does() -> None:
    cron = parse_cron("0 1 1-7 * SUN")
    assert cron.matches_day(dt.date(2026, 1, 3))  # the 3rd, a Saturday
    assert cron.matches_day(dt.date(2026, 1, 11))  # a Sunday, the 11th
    assert not cron.matches_day(dt.date(2026, 1, 12))
    assert parse_cron("0 1 * * 7").days_of_week == frozenset({0})  # 7 is Sunday too
    assert parse_cron("*/20 0 * JAN,dec *").minutes == frozenset({0, 20, 40})
    assert parse_cron("0 0 10/10 * *").days_of_month == frozenset({10, 20, 30})


def test_a_cron_time_in_the_spring_forward_gap_follows_the_same_rule_as_start() -> None:
    spec = migrate(windows=[{"cron": "30 2 * * *", "duration": "1h"}], timeZone=BERLIN)
    assert run(spec, workers("a"), at("2026-03-29T00:59")).wait_seconds == 60  # opens 03:00 CEST


BAD_CRON = [
    (
        {"cron": "0 22 * *", "duration": "1h"},
        "spec.rollout.windows[0].cron: '0 22 * *' has 4 field(s), not 5",
    ),
    ({"cron": "0 24 * * *", "duration": "1h"}, "spec.rollout.windows[0].cron: hour 24 is out of range 0-23"),
    (
        {"cron": "0 1 * * FUN", "duration": "1h"},
        "spec.rollout.windows[0].cron: day of week 'FUN' is not a number",
    ),
    ({"cron": "*/0 1 * * *", "duration": "1h"}, "spec.rollout.windows[0].cron: minute step '0' must be"),
    (
        {"cron": "0 1 * * *", "start": "01:00", "duration": "1h"},
        "spec.rollout.windows[0].cron: a window takes cron",
    ),
    ({"duration": "1h"}, "spec.rollout.windows[0]: give the window a start"),
    ({"cron": "0 1 31 4 *", "duration": "1h"}, "spec.rollout.windows[0].cron: '0 1 31 4 *' matches no day"),
]


@pytest.mark.parametrize(
    ("window", "expected"), BAD_CRON, ids=[b[1].split(": ", 1)[1][:30] for b in BAD_CRON]
)
def test_bad_cron_windows_are_rejected_naming_the_field(
    crd: dict[str, Any], window: dict[str, Any], expected: str
) -> None:
    messages = problems_of(minimal_manifest(rollout={"windows": [window]}), crd)
    assert any(m.startswith(expected) for m in messages), messages


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    days=st.sets(st.integers(0, 6), min_size=1),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    duration=st.integers(1, 7 * 24 * 3600),
    offset=st.integers(0, 366 * 24 * 3600),
)
def test_a_cron_window_and_the_same_days_and_start_open_and_close_together(
    zone: str, days: set[int], hour: int, minute: int, duration: int, offset: int
) -> None:
    cron_days = ",".join(str((d + 1) % 7) for d in sorted(days))  # cron counts from Sunday = 0
    by_cron = (
        Window(start=None, duration=float(duration), cron=parse_cron(f"{minute} {hour} * * {cron_days}")),
    )
    by_days = (Window(start=dt.time(hour, minute), duration=float(duration), days=frozenset(days)),)
    now = at("2026-01-01T00:00") + dt.timedelta(seconds=offset)
    assert window_state(by_cron, zone, now) == window_state(by_days, zone, now)


def test_a_cron_window_months_away_is_waited_for_and_said() -> None:
    spec = migrate(windows=[{"cron": "0 0 29 FEB *", "duration": "1h"}])  # leap days only
    decision = run(spec, workers("a"), at("2026-01-01T00:00"))
    assert decision.start == ()
    assert "Tue 2028-02-29 00:00 UTC" in decision.message
    assert decision.wait_seconds == (at("2028-02-29T00:00") - at("2026-01-01T00:00")).total_seconds()
