"""The command-runner interface every node step runs over: run an argv (a node script is an argv too,
`script_argv`), upload files, get a `CommandResult` back. Pure: no SSH here.

`shimshift.remote.connection.NodeConnection` is the production runner (one SSH connection per node);
tests may bring any object with these methods. Values reach the node only as whole arguments: the
script text is fixed (`playbooks/scripts/`, loaded by `shimshift.playbooks.node_script`), its
arguments are positional parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
