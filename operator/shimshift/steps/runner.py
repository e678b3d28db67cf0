"""The command-runner interface every node step runs over: run an argv (a node script is an argv too,
`script_argv`), upload files, get a `CommandResult` back. Pure: no SSH here.

`shimshift.remote.connection.NodeConnection` is the production runner (one SSH connection per node);
tests may bring any object with these methods. Values reach the node only as whole arguments: the
script text is fixed (`playbooks/scripts/`, loaded by `shimshift.playbooks.node_script`), its
arguments are positional parameters.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shimshift.model.errors import NodeError, RemoteError
from shimshift.playbooks import NodeFile, node_script


class CommandOutput(Protocol):
    """What a command left behind (a `CommandResult` is one)."""

    @property
    def exit_status(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...


class Runner(Protocol):
    """Runs one argv on the node (quoted argument by argument at the SSH boundary), bounded."""

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandOutput: ...


@runtime_checkable
class StreamingRunner(Protocol):
    """A Runner that can also hand over a command's stdout as it arrives (the SSH runner): `run_batch`
    reports each command's result as its record comes, not at the batch's end."""

    def run_streaming(
        self,
        argv: Sequence[str],
        *,
        on_stdout: Callable[[bytes], None],
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandOutput: ...


class CommandRunner(Protocol):
    """A node's runner as the playbook steps use it: argv runs and uploads, with the SSH cost counted."""

    @property
    def node(self) -> str: ...
    @property
    def round_trips(self) -> int: ...
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
        what: str = "",
    ) -> CommandResult: ...
    def upload_many(self, files: Sequence[NodeFile], *, timeout: float = 60.0) -> tuple[bool, ...]: ...
    def upload_and_run(
        self, files: Sequence[NodeFile], argv: Sequence[str], *, timeout: float, what: str = ""
    ) -> tuple[tuple[bool, ...], CommandResult]:
        """Install `files` (as `upload_many`), then run the script `argv` (a `script_argv`), in one round
        trip: per file whether it changed, and the script's result (it does not run when an upload failed,
        which raises as `upload_many` does)."""
        ...


def script_argv(name: str, *args: str) -> tuple[str, ...]:
    """The argv that runs node script `name` (with lib.sh) under POSIX sh, `args` as "$1"...: the one
    way a node script runs."""
    return ("/bin/sh", "-c", node_script(name), f"shimshift-{name}", *args)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def stderr_tail(self, lines: int = 8) -> str:
        tail = self.stderr.decode("utf-8", errors="replace").strip().splitlines()[-lines:]
        return " | ".join(tail)[-800:]


class BatchCommandTimeout(RemoteError):
    """A command of a batch did not finish within its bound; on the node `timeout` killed it (the
    commands before it ran, and every one is idempotent: the step runs again)."""

    transient = True


@dataclass(frozen=True)
class Command:
    """One command of a batch (`run_batch`): its argv, its bound, its stdin, and whether the batch
    goes on when it fails (`may_fail`) or stops there."""

    argv: Sequence[str]
    timeout: float = 60.0
    stdin: bytes | None = None
    may_fail: bool = False


def batch_argv(commands: Sequence[Command]) -> tuple[str, ...]:
    """The argv of node script `batch` running `commands` one after another."""
    args: list[str] = []
    for c in commands:
        args += [str(len(c.argv)), str(max(1, math.ceil(c.timeout))), "1" if c.stdin is not None else "0"]
        args += ["1" if c.may_fail else "0", *c.argv]
    return script_argv("batch", *args)


class _RecordFeed:
    """Cuts a batch's stdout, as it arrives, into its records, and hands each well-formed one over
    (`on_result`) as soon as its line is complete; the batch's end checks every record again."""

    def __init__(self, commands: Sequence[Command], on_result: Callable[[int, CommandResult], None]) -> None:
        self.commands = commands
        self.on_result = on_result
        self.pending = b""
        self.count = 0

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            result = _parse_record(line.decode("utf-8", errors="replace"), self.commands, self.count)
            if result is not None:
                self.on_result(self.count, result)
                self.count += 1


def _parse_record(line: str, commands: Sequence[Command], index: int) -> CommandResult | None:
    """The result of the batch's record `line` if it is the well-formed record of command `index`."""
    parts = line.split("\t")
    if (
        len(parts) != 6
        or parts[0] != "shimshift-batch"
        or parts[1] != str(index)
        or index >= len(commands)
        or not (parts[2].isdigit() and parts[3].isdigit())
    ):
        return None
    try:
        out, err = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except binascii.Error:
        return None
    return CommandResult(tuple(commands[index].argv), int(parts[2]), out, err, float(parts[3]))


def run_batch(
    runner: Runner,
    node: str,
    commands: Sequence[Command],
    *,
    on_result: Callable[[int, CommandResult], None] | None = None,
) -> tuple[CommandResult, ...]:
    """Run `commands` on the node in one round trip (`playbooks/scripts/batch.sh`), in order, each
    bounded on the node by its own timeout; the batch stops after the first failing command that may
    not fail. The results of the commands that ran, in order (fewer than `commands` after such a stop).

    `on_result(index, result)` is told of each command that ran: as it ends, over a runner that
    streams (`StreamingRunner`), else once the batch is over (before this returns).
    At most one command may read stdin. NodeError when the batch itself did not run to its end."""
    if not commands:
        return ()
    given = [c.stdin for c in commands if c.stdin is not None]
    if len(given) > 1:
        raise ValueError("at most one command of a batch reads stdin")
    timeout = sum(c.timeout + 5 for c in commands)
    argv, stdin = batch_argv(commands), given[0] if given else None
    feed = _RecordFeed(commands, on_result) if on_result is not None else None
    if feed is not None and isinstance(runner, StreamingRunner):
        got = runner.run_streaming(argv, on_stdout=feed.feed, stdin=stdin, timeout=timeout)
    else:
        got = runner.run(argv, stdin=stdin, timeout=timeout)
    lines = got.stdout.decode("utf-8", errors="replace").splitlines()
    if got.exit_status != 0 or not lines or lines[-1] != "shimshift-batch\tend":
        tail = got.stderr.decode("utf-8", errors="replace").strip()[-400:]
        raise NodeError(
            node, f"a batch of node commands did not run to its end (exit {got.exit_status}): {tail}"
        )
    results: list[CommandResult] = []
    for line in lines[:-1]:
        parts = line.split("\t")
        if (
            len(parts) != 6
            or parts[0] != "shimshift-batch"
            or parts[1] != str(len(results))
            or len(results) >= len(commands)
            or not (parts[2].isdigit() and parts[3].isdigit())
        ):
            raise NodeError(node, f"a batch of node commands printed a malformed record: {line[:80]!r}")
        try:
            out, err = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
        except binascii.Error as e:
            raise NodeError(node, "a batch of node commands printed a record that is not base64") from e
        command = commands[len(results)]
        status, seconds = int(parts[2]), float(parts[3])
        if status == 124 and seconds >= math.floor(command.timeout * 0.9):
            script = tuple(command.argv[:2]) == ("/bin/sh", "-c") and len(command.argv) > 3
            what = command.argv[3] if script else command.argv[0]
            raise BatchCommandTimeout(f"node {node}: {what} did not finish within {command.timeout:g}s")
        results.append(CommandResult(tuple(command.argv), status, out, err, seconds))
    if feed is not None:
        for index in range(feed.count, len(results)):  # not streamed: told now
            feed.on_result(index, results[index])
    return tuple(results)


#: What `upload_then` prints between the upload's lines and the script's output.
UPLOADED_MARKER = b"shimshift-uploaded\n"


def upload_then(upload_args: Sequence[str], argv: Sequence[str]) -> tuple[str, ...]:
    """One argv that runs node script `upload` with `upload_args` (the files' bytes on stdin), prints
    UPLOADED_MARKER once every file is installed, then runs the node script `argv` (a `script_argv`)
    with its own arguments; an upload that fails exits with its own status before the script runs."""
    if len(argv) < 4 or tuple(argv[:2]) != ("/bin/sh", "-c"):
        raise ValueError("upload_then runs a node script (script_argv) after the upload")
    marker = UPLOADED_MARKER.decode().strip()
    text = (
        "_shimshift_upload() (\n"
        + node_script("upload")
        + "\n)\n"
        + "_n=$1\nshift\n"
        + "_refs= _k=1\n"
        + 'while [ "$_k" -le "$_n" ]; do _refs="$_refs \\"\\${$_k}\\""; _k=$((_k + 1)); done\n'
        + 'eval "_shimshift_upload $_refs" || exit\n'
        + 'shift "$_n"\n'
        + f"echo {marker}\n"
        + argv[2]
    )
    return ("/bin/sh", "-c", text, argv[3], str(len(upload_args)), *upload_args, *argv[4:])
