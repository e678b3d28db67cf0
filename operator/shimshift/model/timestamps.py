"""The one timestamp format shimshift writes into status, conditions and reports: RFC 3339, UTC, seconds.

Kubernetes writes `metav1.Time` the same way ("2024-05-01T12:00:00Z"), so a status field and a
condition's lastTransitionTime read alike in `kubectl get -o yaml`.
"""

from __future__ import annotations

import datetime as dt

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso(now: dt.datetime) -> str:
    """`now` in UTC as "YYYY-MM-DDTHH:MM:SSZ" (sub-seconds dropped)."""
    return now.astimezone(dt.UTC).strftime(_FORMAT)


def parse_iso(text: str) -> dt.datetime | None:
    """The UTC instant `iso` wrote, or None for any other text (an empty field, a hand edit)."""
    try:
        return dt.datetime.strptime(text, _FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
