"""Go-style durations ("90s", "1h30m", "250ms"), as Kubernetes users write them.

Bounded: at most 10 digits before and 9 after the point in each part, at most
8 parts, and no duration over one year (MAX_DURATION), so a value can never overflow to infinity. The
CRD's pattern says the same; `shimshift.model.semantics` reports the maximum with the field path.
"""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]{1,10}(?:\.[0-9]{1,9})?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_PARTS = 8
MAX_DURATION = 8760 * 3600.0  # one year, in seconds: no wait, timeout or pause in a migration is longer
MAX_DURATION_TEXT = "8760h"


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with the accepted format when it is not a duration, or says
    the maximum when it is longer than one year."""
    pos = 0
    total = 0.0
    for parts, match in enumerate(_PART.finditer(text)):
        if match.start() != pos or parts == MAX_PARTS:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        if re.fullmatch(r"([0-9]+(\.[0-9]+)?(ms|s|m|h))+", text):
            raise ValueError(
                f"{text[:40]!r}{'...' if len(text) > 40 else ''} is longer than the maximum of "
                f"{MAX_DURATION_TEXT} (one year); write at most 10 digits per number"
            )
        raise ValueError(f"{text[:40]!r} is not a duration; write e.g. 30s, 5m, 1h30m or 250ms")
    if total > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than the maximum of {MAX_DURATION_TEXT} (one year)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of `seconds` (whole seconds and up)."""
    whole = round(seconds)
    if whole == 0:
        return "0s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v)
