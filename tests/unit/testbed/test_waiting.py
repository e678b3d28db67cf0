from __future__ import annotations

import time

import pytest
from testbed.waiting import WaitTimeout, wait_until


def test_wait_until_returns_the_first_truthy_value_of_the_predicate() -> None:
    answers = iter([None, 0, "", ["ready"]])
    assert wait_until(lambda: next(answers), 5, what="the list", interval=0) == ["ready"]


def test_wait_until_raises_on_timeout_with_what_was_awaited_and_the_detail() -> None:
    calls: list[float] = []
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as raised:
        wait_until(
            lambda: calls.append(time.monotonic()),
            0.2,
            what="the sky to fall",
            interval=0.05,
            detail=lambda: "last seen: blue",
        )
    assert str(raised.value) == "timed out after 0.2s waiting for the sky to fall; last seen: blue"
    assert isinstance(raised.value, AssertionError)
    assert time.monotonic() - started >= 0.2 and calls[-1] - started >= 0.2, "it polls until the deadline"


def test_wait_until_raises_the_callers_error_type_when_given() -> None:
    class Refused(RuntimeError):
        pass

    with pytest.raises(Refused, match=r"^timed out after 0s waiting for nothing$"):
        wait_until(lambda: False, 0, what="nothing", error=Refused)


def test_wait_until_looks_once_more_after_the_sleep_that_crosses_the_deadline() -> None:
    calls: list[int] = []

    def late() -> bool:
        calls.append(1)
        return len(calls) == 2

    assert wait_until(late, 0.05, what="the second call", interval=0.2) is True
