"""The one bounded wait of the tests and the testbed: poll a predicate until it holds or time runs out.

``wait_until(predicate, timeout, what=...)`` returns the predicate's first truthy value; on timeout it raises
``WaitTimeout`` (an ``AssertionError``, so a test fails with the message) that says what was awaited, or the
caller's own error type (``error=TestbedError``) for code that is not a test. ``detail`` adds what the
caller knows at that moment (the last output, a log tail)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A bounded wait ran out of time; the message names what was awaited."""


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float,
    *,
    what: str,
    interval: float = 0.05,
    error: Callable[[str], BaseException] = WaitTimeout,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy and return that.

    The predicate is called at least once, and once more after the deadline has passed, so a condition
    that became true during the last sleep is not missed. After ``timeout`` seconds raise
    ``error("timed out after <timeout>s waiting for <what>[; <detail()>]")``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; {detail()}" if detail is not None else ""
            raise error(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)
