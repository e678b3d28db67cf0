"""Maintenance windows: whether one is open at an instant, and when the next one opens. Pure: `now`
is always passed in (an aware datetime), never read from the clock.

A window opens on each of its days at its local start time (or at each local time its cron expression
matches, `shimshift.model.cron`) in the rollout's IANA time zone and stays open for its duration,
measured as elapsed time; one that crosses midnight belongs to the day it starts on (Fri 22:00 for 6h
is open until Sat 04:00). Around a DST change:

- a start time that does not exist that day (the clock springs forward over it) opens the window at
  the first instant after the gap (02:30 in Europe/Berlin on the last Sunday of March opens at 03:00
  CEST);
- a start time that occurs twice (the clock falls back) opens the window at the first of the two;
- the duration is elapsed time, so a 4h window across a change is open for 4 real hours (its local
  closing time moves by the hour the clock jumped).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from shimshift.model.spec import WEEKDAYS, Window, load_zone

#: Days looked back: a window lasts at most 7 days (and a DST day is 25 hours long).
_BACK_DAYS = 8
#: Days looked ahead for the next opening: a days+start window opens within a week, a cron window may
#: match only in some months, or only on 29 February (validation refuses one that never matches).
AHEAD_DAYS = 4 * 366


@dataclass(frozen=True)
class WindowState:
    open: bool
    #: When the open window closes (open), or when the next one opens (closed); None with no windows,
    #: or when none opens within AHEAD_DAYS.
    at: dt.datetime | None = None
    #: When the open window opened (the earliest opening of those open now); None when closed or with
    #: no windows. A health gate's wait counts from it (time outside every window is no wait).
    opened: dt.datetime | None = None


def local_start(day: dt.date, start: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) a window starting at `start` local time on `day` opens, as the module says."""
    wall = dt.datetime.combine(day, start)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the first of two when it occurs twice)
    # In a gap, fold=0 reads the wall time with the offset before the change and fold=1 with the one
    # after, so the change lies between the two readings; find its instant to the second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    high = first
    low, high = min(low, high), max(low, high)
    after = high.astimezone(zone).utcoffset()
    while high - low > dt.timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == after:
            high = mid
        else:
            low = mid
    return high


def occurrences(
    windows: Sequence[Window], zone: dt.tzinfo, now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """(opens, closes) of the occurrences of `windows` that may be open at `now` (those that started
    up to their longest duration before it) and of the days after, up to the first day one opens after
    `now`; sorted. Days are local days in `zone`."""
    today = now.astimezone(zone).date()
    back = math.ceil(max(w.duration for w in windows) / 86400) + 1  # + 1: a DST day is 25 hours long
    out = []
    for offset in range(-min(back, _BACK_DAYS), AHEAD_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        later = False
        for window in windows:
            for start in window.start_times(day):
                opens = local_start(day, start, zone)
                out.append((opens, opens + dt.timedelta(seconds=window.duration)))
                later = later or opens > now
        if later:
            break  # every later day opens later still
    return sorted(out)


def window_state(windows: Sequence[Window], time_zone: str, now: dt.datetime) -> WindowState:
    """Whether a node may start at `now`; with no windows, always."""
    if not windows:
        return WindowState(True)
    zone = load_zone(time_zone)
    spans = occurrences(windows, zone, now)
    open_now = [(opens, closes) for opens, closes in spans if opens <= now < closes]
    if open_now:
        return WindowState(True, max(c for _, c in open_now), min(o for o, _ in open_now))
    return WindowState(False, min((opens for opens, _ in spans if opens > now), default=None))


def human_wait(seconds: float) -> str:
    """`1d11h`, `3h`, `45m`, `20s`, rounded up: whole hours from one hour on, so a message saying it
    (and the status that holds it) changes once an hour while a window is far off, not every pass."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = -(-whole // 60)
    if minutes < 60:
        return f"{minutes}m"
    days, hours = divmod(-(-whole // 3600), 24)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    return f"{hours}h"


def describe_opening(at: dt.datetime, time_zone: str, now: dt.datetime) -> str:
    """`opens in 3h, Sat 22:00 Europe/Berlin`."""
    local = at.astimezone(load_zone(time_zone))
    return (
        f"opens in {human_wait((at - now).total_seconds())}, "
        f"{WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} {time_zone}"
    )
