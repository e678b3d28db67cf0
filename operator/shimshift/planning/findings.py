"""What a plan found: blockers (the run would fail), warnings (it would run, with a risk) and notes.

Every finding has a stable `code` (CI gates and tests match on it), says what and where, and what to
do. Pure values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    BLOCKER = "blocker"  # the run would fail or stop here: fix before migrating
    WARNING = "warning"  # the run would go through, but something breaks or waits: read and decide
    INFO = "info"  # worth knowing; nothing to fix


@dataclass(frozen=True)
class Finding:
    code: str
    level: Level
    message: str
    advice: str = ""
    node: str = ""  # empty for fleet-wide findings
    subject: str = ""  # what it is about: a pod, a PDB, a workload, a file

    def sort_key(self) -> tuple[int, str, str, str]:
        order = {Level.BLOCKER: 0, Level.WARNING: 1, Level.INFO: 2}
        return (order[self.level], self.node, self.code, self.subject)


def sorted_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=Finding.sort_key))


def name_some(items: Iterable[str], limit: int = 5) -> str:
    """`a, b, c and 4 more`: enough to act on without flooding a report."""
    listed = list(items)
    head = ", ".join(listed[:limit])
    return f"{head} and {len(listed) - limit} more" if len(listed) > limit else head
