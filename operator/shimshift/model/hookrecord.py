"""What a node's record keeps of its hooks (`spec.rollout.hooks`): which hook, its Job, how it ended and
when. Apart from `shimshift.model.hooks` so the status model can hold it. Pure: values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class HookKind(StrEnum):
    PRE = "pre"
    POST = "post"


class HookResult(StrEnum):
    """How a hook ended: the `result` label of its metric, and its record's result."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


@dataclass(frozen=True)
class HookRecord:
    """What a node's record keeps of one hook: its Job, how it ended, and when."""

    hook: HookKind
    job: str  # "<namespace>/<name>"
    started_at: str = ""
    result: HookResult | None = None  # None: running
    message: str = ""
    finished_at: str = ""

    @classmethod
    def from_storage(cls, raw: Mapping[str, Any]) -> HookRecord:
        return cls(
            hook=HookKind(raw["hook"]),
            job=str(raw.get("job", "")),
            started_at=str(raw.get("startedAt", "")),
            result=HookResult(raw["result"]) if raw.get("result") else None,
            message=str(raw.get("message", "")),
            finished_at=str(raw.get("finishedAt", "")),
        )

    def for_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hook": str(self.hook), "job": self.job}
        for key, value in (
            ("startedAt", self.started_at),
            ("result", str(self.result) if self.result else ""),
            ("message", self.message[:1000]),
            ("finishedAt", self.finished_at),
        ):
            if value:
                out[key] = value
        return out
