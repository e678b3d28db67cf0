"""Host-key verification: strict by default, trust-on-first-use only when asked, a changed key refused.

Known hosts come as text (a known_hosts file or a Secret's content), never from ~/.ssh. Every check
runs in the MissingHostKeyPolicy, which paramiko calls after the key exchange and before any
authentication (the client is given no host keys of its own, so it always asks), in this order:

1. a key named by an `@revoked` line is refused, whatever else lists or pins it;
2. a host listed in known_hosts must present a listed key (RejectPolicy semantics, either policy);
3. under `Strict`, an unlisted host is refused;
4. under `AcceptNew`, an unlisted host must present the key pinned in its `HostKeyStore` (the operator's
   store is an annotation on the Node object); with no pin, the key is saved there first and accepted
   only if the store keeps it (a concurrent first connection may have pinned another key).

`@cert-authority` lines (host certificates) are refused when the text is parsed: paramiko cannot check
a host certificate, and ignoring the line would silently trust less than the admin configured.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import paramiko

from shimshift.model.errors import RemoteError
from shimshift.model.spec import HostKeyPolicy
from shimshift.model.status import EventReason


class HostKeyError(RemoteError):
    """The node's host key is unknown (Strict) or differs from the recorded one; nothing ran.

    Not transient: known_hosts is read once per generation, so only a person (a new Secret, then a spec
    edit) changes the answer.
    """

    transient = False


class HostKeyMismatch(HostKeyError):
    """The node presented a key other than the listed or pinned one: refused before authenticating.

    Not transient (a changed key does not change back by waiting); the engine names it in its Event.
    """

    transient = False
    event_reason = EventReason.HOST_KEY_MISMATCH


class HostKeyRevoked(HostKeyError):
    """The node presented a key an `@revoked` line of known_hosts names."""

    transient = False
    event_reason = EventReason.HOST_KEY_REVOKED


class HostKeySetupError(HostKeyError):
    """known_hosts or a stored pin cannot be used as it is; an admin must fix it (never retried)."""

    transient = False


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `SHA256:<base64>` fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {fingerprint(key)}"


_PIN = re.compile(r"^(?P<type>[a-z0-9][a-z0-9@.+-]{0,63}) (?P<fp>SHA256:[A-Za-z0-9+/]{43})$")


@dataclass(frozen=True)
class HostKeyPin:
    """The key a node is trusted with: its type and SHA256 fingerprint (`ssh-ed25519 SHA256:...`)."""

    key_type: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"

    @classmethod
    def of(cls, key: paramiko.PKey) -> HostKeyPin:
        return cls(key.get_name(), fingerprint(key))

    @classmethod
    def parse(cls, text: str) -> HostKeyPin:
        """`<key type> SHA256:<fingerprint>`; ValueError for anything else."""
        m = _PIN.match(text.strip())
        if m is None:
            raise ValueError(f"{text[:120]!r} is not '<key type> SHA256:<43 base64 characters>'")
        return cls(m["type"], m["fp"])

    def matches(self, key: paramiko.PKey) -> bool:
        return self == HostKeyPin.of(key)


class HostKeyStore(Protocol):
    """Where a node's pinned key lives between connections (the operator: an annotation on the Node)."""

    #: for messages: where the pin is, e.g. "the Node annotation shimshift.io/ssh-host-key"
    where: str
    #: for messages: how an admin re-keys the node on purpose
    rekey: str

    def load(self) -> HostKeyPin | None:
        """The pin, read before each handshake; None when the node has none yet."""
        ...

    def save(self, pin: HostKeyPin) -> HostKeyPin:
        """Record `pin` unless a pin is already recorded; return the pin in force afterwards."""
        ...


@dataclass
class MemoryHostKeyStore:
    """A pin kept by one connection object: a reconnect of it verifies against what it learned."""

    pin: HostKeyPin | None = None
    where: str = "the key this connection learned on first use"
    rekey: str = "open a new connection"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def load(self) -> HostKeyPin | None:
        return self.pin

    def save(self, pin: HostKeyPin) -> HostKeyPin:
        with self._lock:
            if self.pin is None:
                self.pin = pin
            return self.pin


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


@dataclass(frozen=True)
class KnownHosts:
    """Parsed known_hosts: the keys listed per host, and the revoked keys (for every host)."""

    keys: paramiko.HostKeys
    revoked: tuple[paramiko.PKey, ...] = ()

    def lookup(self, name: str) -> Mapping[str, paramiko.PKey] | None:
        return self.keys.lookup(name)

    def revoked_key(self, key: paramiko.PKey) -> bool:
        return any(r == key for r in self.revoked)


def parse_known_hosts(text: str) -> KnownHosts:
    """known_hosts text (plain or hashed names) -> KnownHosts; comments and junk lines are skipped.

    `@revoked` keys are revoked for every host (their host patterns are not narrowed: a key revoked
    anywhere is trusted nowhere). A `@cert-authority` line raises HostKeySetupError naming its line.
    """
    keys = paramiko.HostKeys()
    revoked: list[paramiko.PKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker == "@cert-authority":
                raise HostKeySetupError(
                    f"known_hosts line {number}: @cert-authority (SSH host certificates) is not supported "
                    "by shimshift; list each node's host key instead (ssh-keyscan, checked out of band) "
                    "and remove the @cert-authority line from the known_hosts Secret"
                )
            if marker != "@revoked":
                raise HostKeySetupError(
                    f"known_hosts line {number}: unknown marker {marker[:40]!r} (only @revoked is "
                    "understood); remove it from the known_hosts Secret"
                )
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError, TypeError, IndexError):
            entry = None
        if entry is None or entry.key is None:
            if marker:  # a revocation that cannot be read must not be dropped silently
                raise HostKeySetupError(
                    f"known_hosts line {number}: the @revoked line has no readable key; fix or remove it"
                )
            continue
        if marker == "@revoked":
            revoked.append(entry.key)
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return KnownHosts(keys, tuple(revoked))


def preferred_host_key_types(offered: tuple[str, ...], wanted: list[str]) -> list[str]:
    """Host key algorithms with the types we hold a key or pin for first (paramiko's own rule)."""
    first: list[str] = []
    for kind in wanted:
        rsa: tuple[str, ...] = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
        names = [n for n in rsa if n in offered] if kind == "ssh-rsa" else []
        for name in names or ([kind] if kind in offered else []):
            if name not in first:
                first.append(name)
    return first + [t for t in offered if t not in first]


class _Policy(paramiko.MissingHostKeyPolicy):
    """Every host-key decision (see the module docstring); paramiko calls it before authentication."""

    def __init__(
        self,
        node: str,
        policy: HostKeyPolicy,
        known: KnownHosts,
        store: HostKeyStore,
        on_verified: Callable[[HostKeyPin], None],
    ) -> None:
        self.node = node
        self.policy = policy
        self.known = known
        self.store = store
        self.on_verified = on_verified
        self.learned: list[LearnedHostKey] = []
        self._pin: HostKeyPin | None = None
        self._lock = threading.Lock()

    def prepare(self, hostname: str) -> list[str]:
        """Before a handshake: read the pin (once), and say which key types to ask the server for."""
        self._pin = None
        listed = self.known.lookup(hostname)
        if listed:
            return list(listed.keys())
        if self.policy is HostKeyPolicy.ACCEPT_NEW:
            self._pin = self.store.load()
        return [self._pin.key_type] if self._pin is not None else []

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        presented = describe(key)
        if self.known.revoked_key(key):
            raise HostKeyRevoked(
                f"node {self.node}: host key of {hostname} ({presented}) is REVOKED by an @revoked line "
                "of known_hosts; refusing to connect before authenticating (nothing ran)"
            )
        listed = self.known.lookup(hostname)
        if listed:
            if any(k == key for k in listed.values()):
                self.on_verified(HostKeyPin.of(key))
                return
            have = ", ".join(describe(k) for k in listed.values())
            raise HostKeyMismatch(
                f"node {self.node}: HOST KEY MISMATCH for {hostname}: known_hosts has {have}, the server "
                f"offered {presented}; refusing to connect before authenticating (nothing ran). If the "
                "node was reinstalled, update the known_hosts Secret."
            )
        if self.policy is not HostKeyPolicy.ACCEPT_NEW:
            raise HostKeyError(
                f"node {self.node}: host key of {hostname} is not in known_hosts ({presented}); "
                "add it to the known_hosts Secret (ssh-keyscan, then check the fingerprint out of band) or "
                "set spec.ssh.hostKeyPolicy: AcceptNew to trust it on first use"
            )
        pin = self._pin
        if pin is None:
            pin = self.store.save(HostKeyPin.of(key))  # recorded before authenticating, or refused
            if pin.matches(key):
                with self._lock:
                    self.learned.append(
                        LearnedHostKey(hostname, key.get_name(), key.get_base64(), fingerprint(key))
                    )
        if not pin.matches(key):
            raise HostKeyMismatch(
                f"node {self.node}: HOST KEY MISMATCH for {hostname}: the key pinned on first use "
                f"({self.store.where}) is {pin}, the server offered {presented}; refusing to connect before "
                f"authenticating (nothing ran). If the node was reinstalled on purpose, {self.store.rekey}."
            )
        self.on_verified(pin)


def mismatch_error(node: str, e: paramiko.BadHostKeyException) -> HostKeyMismatch:
    return HostKeyMismatch(
        f"node {node}: HOST KEY MISMATCH for {e.hostname}: known_hosts has {describe(e.expected_key)}, "
        f"the server offered {describe(e.key)}; refusing to connect (nothing ran). If the node was "
        "reinstalled, update the known_hosts Secret."
    )
