"""Running one argv on a node over an open SSH transport: the node-side bound (coreutils `timeout`)
and `sudo -n` when the user is not root (`wrap_argv`), the argv joined with `shlex.join` here and
nowhere else, the output collected under a deadline (`exec_argv`), and the statuses that mean
something else than the command's own answer (a timeout, a sudo password prompt).

`NodeConnection` (`shimshift.remote.connection`) counts each call as one round trip.
"""

from __future__ import annotations

import math
import select
import shlex
import time
from collections.abc import Callable, Sequence

import paramiko

from shimshift.model.errors import RemoteError
from shimshift.steps.runner import CommandResult

#: Output beyond this is an error, not a memory problem: no node command of ours prints this much.
MAX_OUTPUT = 64 * 1024 * 1024
#: The node-side `timeout` fires first; this grace lets its exit status 124 arrive before our deadline.
_GRACE = 10.0
#: How long output may still arrive after the exit status before the channel is given up on.
_EOF_GRACE = 1.0


class CommandError(RemoteError):
    """A command exited with a status the caller did not accept."""

    transient = True  # node commands are idempotent, and a status may come from a passing state

    def __init__(self, node: str, result: CommandResult, what: str = "") -> None:
        self.node = node
        self.result = result
        label = what or shlex.join(result.argv[:1] + result.argv[1:4])[:120]
        super().__init__(
            f"node {node}: {label} exited {result.exit_status}"
            + (f": {result.stderr_tail()}" if result.stderr.strip() else "")
        )


class CommandTimeout(RemoteError):
    """A command did not finish in time; on the node it was killed by `timeout`."""

    transient = True


class ConnectionLost(RemoteError):
    """The SSH connection broke; the command may or may not have finished. Steps are idempotent: re-run."""

    transient = True


class SudoPasswordRequired(RemoteError):
    """`sudo -n` asks for a password: the node's sudo setup must change first."""

    transient = False


class OutputTooLarge(RemoteError):
    """A command printed more than MAX_OUTPUT bytes; the same command prints as much again."""

    transient = False


def wrap_argv(argv: Sequence[str], timeout: float, *, sudo: bool) -> tuple[str, ...]:
    """The argv the node runs: the node-side `timeout`, under `sudo -n` when needed."""
    bounded = ("timeout", "-k", "5", str(max(1, math.ceil(timeout))), *argv)
    return ("sudo", "-n", "--", *bounded) if sudo else bounded


def exec_argv(
    transport: paramiko.Transport,
    node: str,
    argv: Sequence[str],
    wrapped: Sequence[str],
    *,
    stdin: bytes | None,
    timeout: float,
    connect_timeout: float,
    what: str = "",
    on_stdout: Callable[[bytes], None] | None = None,
) -> CommandResult:
    """Run `wrapped` (the node-side form of `argv`) on one new channel; ConnectionLost when the
    transport breaks on the way (the caller drops the connection). `on_stdout` is given each chunk
    of stdout as it arrives (the result holds all of it too)."""
    command = shlex.join(wrapped)  # the one place argv becomes a string
    start = time.monotonic()
    try:
        chan = transport.open_session(timeout=connect_timeout)
        chan.settimeout(timeout + _GRACE)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = _collect(node, chan, start + timeout + _GRACE, argv, on_stdout)
        status = chan.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise ConnectionLost(
            f"node {node}: the SSH connection broke during {what or argv[0]!s}: {e}; "
            "re-run the step (steps are idempotent)"
        ) from e
    return CommandResult(tuple(argv), status, out, err, time.monotonic() - start)


def check_status(
    result: CommandResult, node: str, *, timeout: float, sudo_user: str | None, check: bool, what: str = ""
) -> CommandResult:
    """`result`, unless its status means a timeout, a sudo password prompt (`sudo_user` is who sudo
    ran for, None without sudo) or, with `check`, any failure."""
    status, err = result.exit_status, result.stderr
    if status == 124 and result.duration >= timeout * 0.9:
        raise CommandTimeout(f"node {node}: {what or result.argv[0]} did not finish within {timeout:g}s")
    if sudo_user is not None and status == 1 and b"sudo:" in err and b"password" in err:
        raise SudoPasswordRequired(
            f"node {node}: sudo asks {sudo_user} for a password; shimshift runs `sudo -n`: "
            "give that user passwordless sudo (NOPASSWD) or connect as root"
        )
    if check and not result.ok:
        raise CommandError(node, result, what)
    return result


def _collect(
    node: str,
    chan: paramiko.Channel,
    deadline: float,
    argv: Sequence[str],
    on_stdout: Callable[[bytes], None] | None = None,
) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    exited_at: float | None = None
    while True:
        while chan.recv_ready():
            chunk = chan.recv(65536)
            out += chunk
            if on_stdout is not None and chunk:
                on_stdout(chunk)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if len(out) + len(err) > MAX_OUTPUT:
            chan.close()
            raise OutputTooLarge(f"node {node}: {argv[0]} printed more than {MAX_OUTPUT} bytes")
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            if chan.eof_received:
                return bytes(out), bytes(err)
            # A daemon started by the command (an init script that leaks its stdout) can keep the
            # channel open after the command exited: give the output a moment, then stop waiting.
            exited_at = exited_at or time.monotonic()
            if time.monotonic() - exited_at > _EOF_GRACE:
                return bytes(out), bytes(err)
        if chan.closed and not chan.exit_status_ready():
            raise EOFError("channel closed before an exit status arrived")
        transport = chan.get_transport()
        if transport is None or not transport.is_active():
            raise EOFError("transport is no longer active")
        if time.monotonic() > deadline:
            chan.close()
            raise CommandTimeout(f"node {node}: {argv[0]} did not answer before its deadline")
        select.select([chan], [], [], 0.05)
