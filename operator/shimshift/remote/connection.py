"""One SSH connection per node: argv in, `CommandResult` out; atomic uploads; round trips counted.

Commands are argv lists. They are joined with `shlex.join` here, at the SSH boundary, and nowhere
else, so a value from a user, a node or the API is always exactly one argument. Every command is
bounded twice: on the node by coreutils `timeout` (so a hung command dies there too) and here by a
deadline. When the user is not root, commands run under `sudo -n` (never a password prompt).

`round_trips` counts command executions (each is one channel open + exec + exit status), `connects`
counts SSH handshakes, so the per-node cost of a migration can be reported as numbers.
"""

from __future__ import annotations

import io
import logging
import math
import select
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paramiko

from shimshift.model.errors import RemoteError, ShimshiftError
from shimshift.model.spec import HostKeyPolicy, Ssh
from shimshift.playbooks import NodeFile
from shimshift.remote.hostkeys import (
    HostKeyPin,
    HostKeyStore,
    LearnedHostKey,
    MemoryHostKeyStore,
    _Policy,
    known_hosts_name,
    mismatch_error,
    parse_known_hosts,
    preferred_host_key_types,
)
from shimshift.steps.runner import CommandResult, script_argv

log = logging.getLogger(__name__)

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


class UploadError(RemoteError):
    """A file was not installed; the target on the node is unchanged."""

    transient = True


class ConnectFailed(RemoteError):
    """No SSH session came up (refused, unreachable, timed out, or the jump host could not reach the
    node): the network or a rebooting node, which heals."""

    transient = True


class AuthenticationFailed(RemoteError):
    """The node refused the key. Retried: a node still being provisioned may not have it yet."""

    transient = True


class PrivateKeyError(RemoteError):
    """There is no SSH private key, or it cannot be loaded: the same text never loads, so not retried."""

    transient = False


class SudoPasswordRequired(RemoteError):
    """`sudo -n` asks for a password: the node's sudo setup must change first."""

    transient = False


class OutputTooLarge(RemoteError):
    """A command printed more than MAX_OUTPUT bytes; the same command prints as much again."""

    transient = False


@dataclass(frozen=True)
class SshTarget:
    node: str  # the node's name, for messages
    host: str
    port: int = 22
    user: str = "root"


@dataclass(frozen=True)
class SshOptions:
    known_hosts: str = ""  # known_hosts text: a file's or a Secret's content
    host_key_policy: HostKeyPolicy = HostKeyPolicy.STRICT
    private_key: str | None = field(default=None, repr=False)  # PEM/OpenSSH text, never logged
    private_key_source: str = "the SSH private key"  # where it came from, for messages (a Secret key)
    passphrase: str | None = field(default=None, repr=False)
    sudo: bool | None = None  # None: sudo exactly when the user is not root
    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    keepalive: float = 15.0
    jump: SshTarget | None = None

    @classmethod
    def from_spec(
        cls, ssh: Ssh, *, known_hosts: str, private_key: str | None, private_key_source: str = ""
    ) -> SshOptions:
        jump = None
        if ssh.jump_host is not None:
            j = ssh.jump_host
            jump = SshTarget(node=f"jump host {j.host}", host=j.host, port=j.port, user=j.user or ssh.user)
        return cls(
            known_hosts=known_hosts,
            host_key_policy=ssh.host_key_policy,
            private_key=private_key,
            private_key_source=private_key_source or cls.private_key_source,
            sudo=True if ssh.sudo else None,
            connect_timeout=ssh.connect_timeout,
            command_timeout=ssh.command_timeout,
            jump=jump,
        )


def load_private_key(
    text: str, passphrase: str | None = None, *, source: str = "the SSH private key", node: str = ""
) -> paramiko.PKey:
    """An SSH private key from its text; a PrivateKeyError naming `source` (never the key) otherwise."""
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError) as e:
            errors.append(f"{kind.__name__}: {type(e).__name__}")
    prefix = f"node {node}: " if node else ""
    raise PrivateKeyError(
        f"{prefix}{source} is not an SSH private key shimshift can load ({'; '.join(errors)}); put an "
        "unencrypted OpenSSH or PEM private key (Ed25519, ECDSA or RSA) there. Not retried: the same "
        "text never loads"
    )


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
            self._jump = self._open(self.options.jump, None, self._jump_policy)
            jt = self._jump.get_transport()
            assert jt is not None
            try:
                sock = jt.open_channel(
                    "direct-tcpip",
                    (self.target.host, self.target.port),
                    ("127.0.0.1", 0),
                    timeout=self.options.connect_timeout,
                )
            except (paramiko.SSHException, OSError) as e:
                raise ConnectFailed(
                    f"node {self.node}: jump host {self.options.jump.host} could not reach "
                    f"{self.target.host}:{self.target.port}: {e}"
                ) from e
        self._client = self._open(self.target, sock, self._policy)

    def _open(self, target: SshTarget, sock: paramiko.Channel | None, policy: _Policy) -> paramiko.SSHClient:
        opts = self.options
        if not opts.private_key:
            raise PrivateKeyError(f"node {self.node}: no SSH private key; set spec.ssh.privateKeySecretRef")
        pkey = load_private_key(
            opts.private_key, opts.passphrase, source=opts.private_key_source, node=self.node
        )
        # The client holds no host keys, so paramiko hands every server key to `policy` (after the key
        # exchange, before authentication), which checks revocations, known_hosts and the pin.
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(policy)
        wanted = policy.prepare(known_hosts_name(target.host, target.port))

        def new_transport(sock: Any, /, **kw: Any) -> paramiko.Transport:
            t = paramiko.Transport(sock, disabled_algorithms=kw.get("disabled_algorithms"))
            if wanted:  # ask for the key type we can check, as paramiko does for a listed host
                options = t.get_security_options()
                options.key_types = preferred_host_key_types(tuple(options.key_types), wanted)
            return t

        self.connects += 1
        try:
            client.connect(
                target.host,
                port=target.port,
                username=target.user,
                pkey=pkey,
                sock=sock,
                timeout=opts.connect_timeout,
                banner_timeout=opts.connect_timeout,
                auth_timeout=opts.connect_timeout,
                channel_timeout=opts.connect_timeout,
                look_for_keys=False,
                allow_agent=False,
                transport_factory=new_transport,
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise mismatch_error(target.node, e) from e
        except ShimshiftError:  # HostKeyError, or the pin store failed: nothing was authenticated
            client.close()
            raise
        except paramiko.AuthenticationException as e:
            client.close()
            raise AuthenticationFailed(
                f"node {target.node}: SSH authentication as {target.user} failed; "
                "check spec.ssh.user and the private key Secret"
            ) from e
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            raise ConnectFailed(
                f"node {target.node}: cannot connect to {target.host}:{target.port} "
                f"within {opts.connect_timeout:g}s: {e}"
            ) from e
        transport = client.get_transport()
        if transport is not None and opts.keepalive > 0:
            transport.set_keepalive(max(1, int(opts.keepalive)))
        return client

    def close(self) -> None:
        for c in (self._client, self._jump):
            if c is not None:
                c.close()
        self._client = self._jump = None

    # ---- commands ---------------------------------------------------------------------------------
    def wrap(self, argv: Sequence[str], timeout: float) -> tuple[str, ...]:
        """The argv the node runs: the node-side `timeout`, under `sudo -n` when needed."""
        bounded = ("timeout", "-k", "5", str(max(1, math.ceil(timeout))), *argv)
        return ("sudo", "-n", "--", *bounded) if self.use_sudo else bounded

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
        if not argv or any(not isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings")
        timeout = self.options.command_timeout if timeout is None else timeout
        with self._lock:
            self.connect()
            transport = self.transport
            assert transport is not None
            command = shlex.join(self.wrap(argv, timeout))  # the one place argv becomes a string
            start = time.monotonic()
            self.round_trips += 1
            try:
                chan = transport.open_session(timeout=self.options.connect_timeout)
                chan.settimeout(timeout + _GRACE)
                chan.exec_command(command)
                if stdin is not None:
                    chan.sendall(stdin)
                chan.shutdown_write()
                out, err = self._collect(chan, start + timeout + _GRACE, argv)
                status = chan.recv_exit_status()
            except (paramiko.SSHException, OSError, EOFError) as e:
                self.close()
                raise ConnectionLost(
                    f"node {self.node}: the SSH connection broke during {what or argv[0]!s}: {e}; "
                    "re-run the step (steps are idempotent)"
                ) from e
            result = CommandResult(tuple(argv), status, out, err, time.monotonic() - start)
        if status == 124 and result.duration >= timeout * 0.9:
            raise CommandTimeout(f"node {self.node}: {what or argv[0]} did not finish within {timeout:g}s")
        if self.use_sudo and status == 1 and b"sudo:" in err and b"password" in err:
            raise SudoPasswordRequired(
                f"node {self.node}: sudo asks {self.target.user} for a password; shimshift runs `sudo -n`: "
                "give that user passwordless sudo (NOPASSWD) or connect as root"
            )
        if check and not result.ok:
            raise CommandError(self.node, result, what)
        return result

    def _collect(self, chan: paramiko.Channel, deadline: float, argv: Sequence[str]) -> tuple[bytes, bytes]:
        out, err = bytearray(), bytearray()
        exited_at: float | None = None
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if len(out) + len(err) > MAX_OUTPUT:
                chan.close()
                raise OutputTooLarge(f"node {self.node}: {argv[0]} printed more than {MAX_OUTPUT} bytes")
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
                raise CommandTimeout(f"node {self.node}: {argv[0]} did not answer before its deadline")
            select.select([chan], [], [], 0.05)

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
        args: list[str] = []
        for f in files:
            if not f.path.startswith("/") or "\x00" in f.path or "\n" in f.path:
                raise UploadError(f"node {self.node}: {f.path!r} is not an absolute single-line path")
            args += [
                f.path,
                f.sha256,
                format(f.mode, "o"),
                f.owner,
                f.done_if,
                str(len(f.content)),
                str(len(f.validate)),
                *f.validate,
            ]
        argv = script_argv("upload", *args)
        names = ", ".join(f.path for f in files)
        result = self.run(
            argv, stdin=b"".join(f.content for f in files), timeout=timeout, what=f"upload {names}"
        )
        if result.exit_status == 0:
            lines = result.text.splitlines()
            if len(lines) != len(files):
                raise UploadError(f"node {self.node}: upload of {names} printed {len(lines)} results")
            return tuple(line.startswith("changed ") for line in lines)
        reasons = {
            20: "cannot create its directory",
            21: "cannot create a temp file next to it",
            22: "writing failed (disk full?)",
            23: "the checksum did not match",
            24: "cannot set mode/owner",
            25: "the new file failed validation",
            26: "the rename failed",
        }
        done = len(result.text.splitlines())
        failed = files[done].path if done < len(files) else names
        why = reasons.get(result.exit_status, f"exit {result.exit_status}")
        raise UploadError(
            f"node {self.node}: {failed} was not installed, {why}; the file on the node is "
            f"unchanged: {result.stderr_tail()}"
        )
