"""What a step's plan shows of the files it writes on a node: each file's before and after, notes,
Docker settings carried over, warnings; or why it could not be computed. Pure.

The configure step (`steps.configure.containerd_files`) and the switch step
(`steps.switch.kubelet_files`) compute their sections; the plan report (`planning.report`) shows them.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol


class PlannedNode(Protocol):
    """What a step's plan reads of a Node object (`shimshift.planning.cluster.Node` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def kubelet_version(self) -> str: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str | None  # None: the file does not exist yet
    after: str | None  # None: the file is removed
    secret: bool = False  # shown by hash only

    @cached_property
    def diff(self) -> str:
        if self.secret:
            old = hashlib.sha256(self.before.encode()).hexdigest()[:12] if self.before is not None else "none"
            new = hashlib.sha256(self.after.encode()).hexdigest()[:12] if self.after is not None else "none"
            return f"--- {self.path}\n+++ {self.path}\n@@ secret file: sha256 {old} -> {new} @@\n"
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=self.path if self.before is not None else "/dev/null",
            tofile=self.path if self.after is not None else "/dev/null",
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
        )

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class Carryover:
    """A Docker setting and what becomes of it under containerd."""

    source: str  # e.g. "daemon.json insecure-registries"
    value: str
    outcome: str  # where it goes, or what replaces it
    carried: bool


@dataclass(frozen=True)
class FileSection:
    """The files one part of the migration writes on a node, or why they could not be computed."""

    computed: bool
    reason: str = ""  # when not computed: why (no renderer in this build, no facts, a render error)
    changes: tuple[FileChange, ...] = ()
    notes: tuple[str, ...] = ()
    carryover: tuple[Carryover, ...] = ()
    warnings: tuple[str, ...] = ()  # risks the planner saw in these files (e.g. TLS verification off)

    @classmethod
    def not_computed(cls, reason: str) -> FileSection:
        return cls(False, reason)
