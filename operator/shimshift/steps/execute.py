"""Run a playbook's tasks on one node over its `CommandRunner`, and their undo in reverse.

For each task: skip it when its `when` is false; run `run` (an argv, a script, atomic uploads, or uploads
and then a script in the same round trip) and require exit 0. Every action is bounded by the task's
timeout. The result says what changed and how many SSH round trips each task cost. Shared by the steps
that run a playbook (backup, configure, switch, verify, finish); nothing here knows a step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.model.errors import NodeError, Problem
from shimshift.playbooks import (
    Action,
    NodeFile,
    Playbook,
    PlaybookError,
    Task,
    missing_vars,
    render_argv,
    task_enabled,
)
from shimshift.steps.runner import CommandResult, CommandRunner

log = logging.getLogger(__name__)


class TaskStatus(StrEnum):
    SKIPPED = "Skipped"  # `when` was false
    CHANGED = "Changed"
    UNCHANGED = "Unchanged"  # ran, and reported that nothing needed changing


@dataclass(frozen=True)
class TaskOutcome:
    task: str
    status: TaskStatus
    round_trips: int
    duration: float
    output: str = ""


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    tasks: tuple[TaskOutcome, ...]

    @property
    def changed(self) -> bool:
        return any(t.status is TaskStatus.CHANGED for t in self.tasks)

    @property
    def round_trips(self) -> int:
        return sum(t.round_trips for t in self.tasks)

    @property
    def output(self) -> str:
        return "".join(t.output for t in self.tasks)


class TaskFailed(NodeError):
    """A task's run or undo failed; carries the command result (argv, exit status, stderr tail)."""

    def __init__(self, node: str, playbook: str, task: str, phase: str, result: CommandResult) -> None:
        self.playbook = playbook
        self.task = task
        self.phase = phase
        self.result = result
        detail = result.stderr_tail() or result.text.strip()[-400:]
        super().__init__(node, f"{playbook}: {task!r} {phase} exited {result.exit_status}: {detail}")


_UNCHANGED = "unchanged"


def run_playbook(conn: CommandRunner, playbook: Playbook, variables: Mapping[str, Any]) -> PlaybookResult:
    _require_vars(playbook, variables)
    outcomes = []
    for task in playbook.tasks:
        outcomes.append(_run_task(conn, playbook, task, variables))
    return PlaybookResult(playbook.name, tuple(outcomes))


def undo_playbook(conn: CommandRunner, playbook: Playbook, variables: Mapping[str, Any]) -> PlaybookResult:
    """Every task's undo, last task first. Undo actions are idempotent, so this is safe after a crash
    at any point of the playbook (including before it ran at all)."""
    _require_vars(playbook, variables)
    outcomes = []
    for task in reversed(playbook.tasks):
        if task.undo is None or not task_enabled(task, variables, playbook.source):
            continue
        start, trips = time.monotonic(), conn.round_trips
        changed, output = _act(conn, playbook, task, task.undo, variables, "undo")
        outcomes.append(
            TaskOutcome(
                f"undo: {task.name}",
                TaskStatus.CHANGED if changed else TaskStatus.UNCHANGED,
                conn.round_trips - trips,
                time.monotonic() - start,
                output,
            )
        )
    return PlaybookResult(f"undo {playbook.name}", tuple(outcomes))


def _require_vars(playbook: Playbook, variables: Mapping[str, Any]) -> None:
    missing = missing_vars(playbook, variables)
    if missing:
        raise PlaybookError(
            [Problem("vars", f"missing variables: {', '.join(missing)}")], source=playbook.source
        )


def _run_task(
    conn: CommandRunner, playbook: Playbook, task: Task, variables: Mapping[str, Any]
) -> TaskOutcome:
    start, trips = time.monotonic(), conn.round_trips
    if not task_enabled(task, variables, playbook.source):
        return TaskOutcome(task.name, TaskStatus.SKIPPED, 0, 0.0)
    changed, output = _act(conn, playbook, task, task.run, variables, "run")
    log.info(
        "node %s: %s: %s: %s", conn.node, playbook.name, task.name, "changed" if changed else "unchanged"
    )
    return TaskOutcome(
        task.name,
        TaskStatus.CHANGED if changed else TaskStatus.UNCHANGED,
        conn.round_trips - trips,
        time.monotonic() - start,
        output,
    )


def _act(
    conn: CommandRunner,
    playbook: Playbook,
    task: Task,
    action: Action,
    variables: Mapping[str, Any],
    phase: str,
) -> tuple[bool, str]:
    """Run one action; (changed, stdout)."""
    uploaded = False
    if action.upload is not None:
        files = variables.get(action.upload)
        if not isinstance(files, Sequence) or not all(isinstance(f, NodeFile) for f in files):
            raise PlaybookError(
                [Problem(task.name, f"upload: {action.upload} must be a list of NodeFile")],
                source=playbook.source,
            )
        if action.script is None:
            return any(conn.upload_many(list(files), timeout=task.timeout)), ""
    if action.upload is not None and files:
        # the files and the script that uses them in one round trip
        argv = render_argv(playbook, task, action, variables)
        changes, result = conn.upload_and_run(
            list(files), argv, timeout=task.timeout, what=f"{playbook.name}: {task.name}"
        )
        uploaded = any(changes)
    else:
        result = _command(conn, playbook, task, action, variables)
    if not result.ok:
        raise TaskFailed(conn.node, playbook.name, task.name, phase, result)
    # Tasks say what they did, one line per thing: silence or lines starting with "unchanged" mean nothing
    # changed; a read-only playbook never changes anything.
    lines = [ln for ln in result.text.splitlines() if ln.strip()]
    changed = not playbook.read_only and (uploaded or any(not ln.startswith(_UNCHANGED) for ln in lines))
    return changed, result.text


def _command(
    conn: CommandRunner, playbook: Playbook, task: Task, action: Action, variables: Mapping[str, Any]
) -> CommandResult:
    argv = render_argv(playbook, task, action, variables)
    return conn.run(argv, timeout=task.timeout, what=f"{playbook.name}: {task.name}")
