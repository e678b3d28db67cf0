"""Host-key verification: strict by default, trust-on-first-use only when asked, mismatches refused.

Known hosts come as text (a known_hosts file or a Secret's content), never from ~/.ssh. paramiko's
SSHClient compares the server's key with these before any authentication or command; a different key
raises here with both fingerprints, an unknown host is refused under `Strict` and learned under
`AcceptNew` (the learned line is returned so the caller can record it, e.g. in a Secret).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass

import paramiko

from shimshift.model.errors import RemoteError
from shimshift.model.spec import HostKeyPolicy


class HostKeyError(RemoteError):
    """The node's host key is unknown (Strict) or differs from the recorded one; nothing ran."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `SHA256:<base64>` fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class LearnedHostKey:
    """A key accepted under AcceptNew: the known_hosts line to record."""

    host: str  # as known_hosts names it: `host` or `[host]:port`
    key_type: str
    key_base64: str
    fingerprint: str

    @property
    def line(self) -> str:
        return f"{self.host} {self.key_type} {self.key_base64}"


def parse_known_hosts(text: str) -> paramiko.HostKeys:
    """known_hosts text (plain or hashed names) -> paramiko.HostKeys; markers and junk lines are skipped."""
    keys = paramiko.HostKeys()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, ValueError):
            continue
        if entry is None or entry.key is None:
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return keys


class _Policy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for a host that has no recorded key of the offered type."""

    def __init__(self, node: str, policy: HostKeyPolicy) -> None:
        self.node = node
        self.policy = policy
        self.learned: list[LearnedHostKey] = []
        self._lock = threading.Lock()

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        fp = fingerprint(key)
        if self.policy is not HostKeyPolicy.ACCEPT_NEW:
            raise HostKeyError(
                f"node {self.node}: host key of {hostname} is not in known_hosts ({key.get_name()} {fp}); "
                "add it to the known_hosts Secret (ssh-keyscan, then check the fingerprint out of band) or "
                "set spec.ssh.hostKeyPolicy: AcceptNew to trust it on first use"
            )
        known = client.get_host_keys().lookup(hostname)
        if known:
            have = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in known.values())
            raise HostKeyError(
                f"node {self.node}: HOST KEY MISMATCH for {hostname}: known_hosts has {have}, the server "
                f"offered {key.get_name()} {fp}; refusing to connect (nothing ran)"
            )
        with self._lock:
            self.learned.append(LearnedHostKey(hostname, key.get_name(), key.get_base64(), fp))
        client.get_host_keys().add(hostname, key.get_name(), key)


def mismatch_error(node: str, e: paramiko.BadHostKeyException) -> HostKeyError:
    return HostKeyError(
        f"node {node}: HOST KEY MISMATCH for {e.hostname}: known_hosts has {e.expected_key.get_name()} "
        f"{fingerprint(e.expected_key)}, the server offered {e.key.get_name()} {fingerprint(e.key)}; "
        "refusing to connect (nothing ran). If the node was reinstalled, update the known_hosts Secret."
    )
