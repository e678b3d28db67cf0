"""Five-field cron expressions (`minute hour day-of-month month day-of-week`) for maintenance windows.

The fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and comma lists; months and
weekdays also take names (`JAN`, `MON`; any case). Day of week 0 and 7 are Sunday. As in cron, when
both day of month and day of week are restricted (neither is `*`), a day matching either is a match.
No `@daily`-style macros, no `L`, `W` or `#`. Pure; `parse_cron` raises ValueError naming the field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (name, lowest, highest, names for lowest..)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
HELP = (
    'write five fields, "minute hour day-of-month month day-of-week", e.g. "0 22 * * FRI" or "30 1 1-7 * *"'
)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day_of_month: bool
    any_day_of_week: bool
    text: str

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.isoweekday() % 7) in self.days_of_week
        if self.any_day_of_month and self.any_day_of_week:
            return True
        if self.any_day_of_month:
            return dow
        if self.any_day_of_week:
            return dom
        return dom or dow

    def times(self) -> list[dt.time]:
        """Every start time of a matching day, in order."""
        return [dt.time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]

    def __str__(self) -> str:
        return self.text


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if names and upper in names:
        return low + names.index(upper)
    if not text.isdigit():
        raise ValueError(f"{name} {text[:20]!r} is not a number{' or a name' if names else ''}; {HELP}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}; {HELP}")
    return value


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} step {step_text[:20]!r} must be a whole number above 0; {HELP}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"{name} range {base[:20]!r} runs backwards; {HELP}")
        else:
            first = _value(base, name, low, high, names)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def parse_cron(text: str) -> Cron:
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"{text[:60]!r} has {len(parts)} field(s), not 5; {HELP}")
    minutes, hours, doms, months, dows = (
        _field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)
    )
    return Cron(
        minutes=minutes,
        hours=hours,
        days_of_month=doms,
        months=months,
        days_of_week=frozenset(d % 7 for d in dows),
        any_day_of_month=parts[2] == "*",
        any_day_of_week=parts[4] == "*",
        text=" ".join(parts),
    )


#: A span of days every possible (month, day, weekday) falls in: four years from a leap year.
_ALL_DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(4 * 366)]


def never_matches(cron: Cron) -> bool:
    """True when no calendar day matches (e.g. "0 1 31 4 *": April has 30 days)."""
    return not any(cron.matches_day(day) for day in _ALL_DAYS)
