"""Connecting to a node: the SSH handshake, its host key checked (`shimshift.remote.hostkeys`),
public-key authentication, through a jump host when the spec names one; what a connection is to
(`SshTarget`) and how (`SshOptions`); the private key loaded from its text (`load_private_key`).

The errors say whether they heal: a refused or timed-out connection (`ConnectFailed`) and a refused
key (`AuthenticationFailed`) are retried, a key that cannot be loaded (`PrivateKeyError`) is not.
Running commands over the connection is `shimshift.remote.exec`, uploads `shimshift.remote.upload`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko

from shimshift.model.errors import RemoteError, ShimshiftError
from shimshift.model.spec import HostKeyPolicy, Ssh
from shimshift.remote.hostkeys import _Policy, known_hosts_name, mismatch_error, preferred_host_key_types


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


def open_jump_channel(
    node: str, jump: paramiko.SSHClient, target: SshTarget, options: SshOptions
) -> paramiko.Channel:
    """A channel from the jump host to `target`'s SSH port."""
    jt = jump.get_transport()
    assert jt is not None
    assert options.jump is not None
    try:
        return jt.open_channel(
            "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=options.connect_timeout
        )
    except (paramiko.SSHException, OSError) as e:
        raise ConnectFailed(
            f"node {node}: jump host {options.jump.host} could not reach {target.host}:{target.port}: {e}"
        ) from e


def open_client(
    node: str,
    target: SshTarget,
    opts: SshOptions,
    sock: paramiko.Channel | None,
    policy: _Policy,
    attempted: Callable[[], None] = lambda: None,
) -> paramiko.SSHClient:
    """The SSH handshake with `target` (over `sock`, a jump host's channel, if given): host key checked
    by `policy`, public-key authentication only; the errors say what to fix. `node` names the node the
    connection is for, in messages; `attempted` is called as the handshake starts (to count it)."""
    if not opts.private_key:
        raise PrivateKeyError(f"node {node}: no SSH private key; set spec.ssh.privateKeySecretRef")
    pkey = load_private_key(opts.private_key, opts.passphrase, source=opts.private_key_source, node=node)
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

    attempted()
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
