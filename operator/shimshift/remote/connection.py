"""One SSH connection per node: argv in, `CommandResult` out; atomic uploads; round trips counted.

`NodeConnection` puts three parts together: connecting (`shimshift.remote.connect`: the handshake,
host keys, authentication, the jump host), running commands (`shimshift.remote.exec`: argv joined
with `shlex.join` there and nowhere else, so a value from a user, a node or the API is always exactly
one argument; every command bounded on the node by coreutils `timeout` and here by a deadline;
`sudo -n` when the user is not root) and the upload protocol (`shimshift.remote.upload`).

`round_trips` counts command executions (each is one channel open + exec + exit status), `connects`
counts SSH handshakes, so the per-node cost of a migration can be reported as numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

import paramiko

from shimshift.playbooks import NodeFile
from shimshift.remote.connect import (
    AuthenticationFailed,
    ConnectFailed,
    PrivateKeyError,
    SshOptions,
    SshTarget,
    load_private_key,
    open_client,
    open_jump_channel,
)
from shimshift.remote.exec import (
    MAX_OUTPUT,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    OutputTooLarge,
    SudoPasswordRequired,
    check_status,
    exec_argv,
    wrap_argv,
)
from shimshift.remote.hostkeys import (
    HostKeyPin,
    HostKeyStore,
    LearnedHostKey,
    MemoryHostKeyStore,
    _Policy,
    parse_known_hosts,
)
from shimshift.remote.upload import UploadError, upload_args, upload_argv, upload_outcome
from shimshift.steps.runner import UPLOADED_MARKER, CommandResult, upload_then

__all__ = [
    "MAX_OUTPUT",
    "AuthenticationFailed",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "ConnectFailed",
    "ConnectionLost",
    "NodeConnection",
    "OutputTooLarge",
    "PrivateKeyError",
    "SshOptions",
    "SshTarget",
    "SudoPasswordRequired",
    "UploadError",
    "load_private_key",
]

log = logging.getLogger(__name__)


class NodeConnection:
    """A lazily opened, reused SSH connection to one node. Not for concurrent use by several threads.

    `host_keys` keeps the node's pinned key under `AcceptNew` (shimshift.remote.hostkeys); without one,
    the pin lives in this object, so at least its own reconnects verify the key it learned first. The
    jump host, which is no Node, always pins in memory: the node behind it is verified end to end.
    """

    def __init__(self, target: SshTarget, options: SshOptions, host_keys: HostKeyStore | None = None) -> None:
        self.target = target
        self.options = options
        self.round_trips = 0
        self.connects = 0
        self.host_key: HostKeyPin | None = None  # the node's key as verified at the last handshake
        self._client: paramiko.SSHClient | None = None
        self._jump: paramiko.SSHClient | None = None
        self._known = parse_known_hosts(options.known_hosts)
        self._store: HostKeyStore = host_keys if host_keys is not None else MemoryHostKeyStore()
        self._policy = _Policy(target.node, options.host_key_policy, self._known, self._store, self._verified)
        jump_node = options.jump.node if options.jump is not None else target.node
        self._jump_policy = _Policy(
            jump_node, options.host_key_policy, self._known, MemoryHostKeyStore(), lambda _pin: None
        )
        self._lock = threading.Lock()

    def _verified(self, pin: HostKeyPin) -> None:
        self.host_key = pin

    # ---- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> NodeConnection:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def node(self) -> str:
        return self.target.node

    @property
    def learned_host_keys(self) -> tuple[LearnedHostKey, ...]:
        """Keys this object pinned under AcceptNew (first use); the pin itself is in the HostKeyStore."""
        return tuple(self._policy.learned)

    @property
    def use_sudo(self) -> bool:
        return self.options.sudo if self.options.sudo is not None else self.target.user != "root"

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._client.get_transport() if self._client else None

    def connect(self) -> None:
        t = self.transport
        if t is not None and t.is_active():
            return
        self.close()
        sock = None
        if self.options.jump is not None:
            self._jump = open_client(
                self.node, self.options.jump, self.options, None, self._jump_policy, self._count_connect
            )
            sock = open_jump_channel(self.node, self._jump, self.target, self.options)
        self._client = open_client(
            self.node, self.target, self.options, sock, self._policy, self._count_connect
        )

    def _count_connect(self) -> None:
        self.connects += 1

    def close(self) -> None:
        for c in (self._client, self._jump):
            if c is not None:
                c.close()
        self._client = self._jump = None

    # ---- commands ---------------------------------------------------------------------------------
    def wrap(self, argv: Sequence[str], timeout: float) -> tuple[str, ...]:
        """The argv the node runs: the node-side `timeout`, under `sudo -n` when needed."""
        return wrap_argv(argv, timeout, sudo=self.use_sudo)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
        what: str = "",
    ) -> CommandResult:
        """Run `argv` on the node; with `check`, a non-zero exit raises CommandError."""
        return self._run(argv, stdin=stdin, timeout=timeout, check=check, what=what)

    def run_streaming(
        self,
        argv: Sequence[str],
        *,
        on_stdout: Callable[[bytes], None],
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """`run`, handing each chunk of stdout to `on_stdout` as it arrives (a batch's records as
        each command ends: `shimshift.steps.runner.StreamingRunner`)."""
        return self._run(argv, stdin=stdin, timeout=timeout, on_stdout=on_stdout)

    def _run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        timeout: float | None,
        check: bool = False,
        what: str = "",
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> CommandResult:
        if not argv or any(not isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings")
        timeout = self.options.command_timeout if timeout is None else timeout
        with self._lock:
            self.connect()
            transport = self.transport
            assert transport is not None
            self.round_trips += 1
            try:
                result = exec_argv(
                    transport,
                    self.node,
                    argv,
                    self.wrap(argv, timeout),
                    stdin=stdin,
                    timeout=timeout,
                    connect_timeout=self.options.connect_timeout,
                    what=what,
                    on_stdout=on_stdout,
                )
            except ConnectionLost:
                self.close()
                raise
        sudo_user = self.target.user if self.use_sudo else None
        return check_status(result, self.node, timeout=timeout, sudo_user=sudo_user, check=check, what=what)

    # ---- files ------------------------------------------------------------------------------------
    def upload(self, f: NodeFile, *, timeout: float = 60.0) -> bool:
        """Install `f` atomically (one round trip); True if the node's file changed."""
        return self.upload_many([f], timeout=timeout)[0]

    def upload_many(self, files: Sequence[NodeFile], *, timeout: float = 60.0) -> tuple[bool, ...]:
        """Install several files, each atomically, in one round trip; per file, whether it changed.

        On a failure the failing file (and every later one) is untouched, and earlier ones are installed.
        """
        if not files:
            return ()
        argv = upload_argv(self.node, files)
        names = ", ".join(f.path for f in files)
        result = self.run(
            argv, stdin=b"".join(f.content for f in files), timeout=timeout, what=f"upload {names}"
        )
        return upload_outcome(self.node, files, result)

    def upload_and_run(
        self, files: Sequence[NodeFile], argv: Sequence[str], *, timeout: float, what: str = ""
    ) -> tuple[tuple[bool, ...], CommandResult]:
        """Install `files` as `upload_many` does, then run node script `argv`, in one round trip: per
        file whether it changed, and the script's result. An upload that fails raises UploadError and
        the script does not run."""
        combined = upload_then(upload_args(self.node, files), argv)
        names = ", ".join(f.path for f in files)
        result = self.run(
            combined,
            stdin=b"".join(f.content for f in files),
            timeout=timeout,
            what=what or f"upload {names}",
        )
        head, marker, rest = result.stdout.partition(UPLOADED_MARKER)
        if not marker:  # the upload failed (or the connection printed nothing): its own status says why
            failed = dataclasses.replace(result, stdout=head, exit_status=result.exit_status or 1)
            upload_outcome(self.node, files, failed)
            raise UploadError(f"node {self.node}: upload of {names} did not finish")
        changed = upload_outcome(self.node, files, dataclasses.replace(result, stdout=head, exit_status=0))
        return changed, dataclasses.replace(result, argv=tuple(argv), stdout=rest)
