"""The production NodePort: `shimshift.remote.port.SshNodePort` wired to the cluster.

What the Kubernetes-free port needs from the cluster is read here: the node's address (per
`spec.ssh.addressType`) and kubelet version from its Node object, the SSH key and known_hosts from the
Secrets `spec.ssh` names, registry CAs and client certificates from theirs (`registry_material`, which
never reads an SSH Secret for a registry), all in the operator's namespace, each read once (registry
Secrets again while one is missing) and never logged; under `hostKeyPolicy: AcceptNew` a node's host
key is pinned in an annotation on its Node (`NodeHostKeyStore`). One port per NodeMigration, for its
current generation (a spec change plans anew and closes the superseded port), at most `MAX_PORTS` of
them; SSH round trips per node are logged when the node finishes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Kube
from shimshift.kube.nodes import annotations_of, get_node, pin_host_key
from shimshift.kube.secrets import read_secret_key
from shimshift.model import keys
from shimshift.model.errors import KubeError, NodeError
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import AddressType, Mode, NodeMigrationSpec, Ssh
from shimshift.remote.connection import NodeConnection, SshOptions, SshTarget
from shimshift.remote.hostkeys import HostKeyPin, HostKeySetupError
from shimshift.remote.port import SshNodePort
from shimshift.rendering import RegistryMaterial
from shimshift.rendering.values import ClientCert

T = TypeVar("T")


def _once(read: Callable[[], T], keep: Callable[[T], bool] = lambda _value: True) -> Callable[[], T]:
    """`read`, called once (on first use, so a missing Secret fails the step that needs it) and kept when
    `keep` says so; otherwise read again next time (a Secret created meanwhile is found)."""
    lock, box = threading.Lock(), list[T]()

    def get() -> T:
        with lock:
            if not box:
                value = read()
                if not keep(value):
                    return value
                box.append(value)
            return box[0]

    return get


def ssh_node_port(
    kube: Kube, namespace: str, migration: NodeMigration, *, pin_host_keys: bool | None = None
) -> SshNodePort:
    """The SshNodePort of `migration`, its cluster reads bound to `kube` and `namespace`.

    `pin_host_keys` (default: in Migrate mode) lets AcceptNew write a node's first key to its Node; a
    plan (Plan mode, `shimshift plan --probe`) verifies against a pin but writes none.
    """
    persist = migration.spec.mode == Mode.MIGRATE if pin_host_keys is None else pin_host_keys
    ssh = migration.spec.ssh
    if ssh is None:
        raise NodeError("-", "spec.ssh is required in Migrate mode: shimshift changes nodes over SSH")

    def read_options() -> SshOptions:
        known = (
            read_secret_key(kube, namespace, ssh.known_hosts.name, ssh.known_hosts.key)
            if ssh.known_hosts
            else ""
        )
        key = (
            read_secret_key(kube, namespace, ssh.private_key.name, ssh.private_key.key)
            if ssh.private_key
            else None
        )
        source = (
            f"the private key in Secret {namespace}/{ssh.private_key.name}, key {ssh.private_key.key!r},"
            if ssh.private_key
            else ""
        )
        return SshOptions.from_spec(ssh, known_hosts=known, private_key=key, private_key_source=source)

    options = _once(read_options)
    material = _once(lambda: registry_material(kube, namespace, migration.spec), lambda m: not m.refused)

    def connect(node: str) -> NodeConnection:
        address, _ = node_info(kube, node, ssh)
        return NodeConnection(
            SshTarget(node, address, ssh.port, ssh.user),
            options(),
            host_keys=NodeHostKeyStore(kube, node, persist=persist),
        )

    return SshNodePort(
        migration.name,
        migration.spec,
        connect,
        material=material,
        kubelet_version=lambda node: node_info(kube, node, ssh)[1],
    )


class NodeHostKeyStore:
    """The pin of `node`'s SSH host key (AcceptNew): the Node annotation `keys.HOST_KEY_ANNOTATION`.

    Read before every handshake (so an operator restart, a reconnect and another NodeMigration all
    verify against it), written once, before authenticating, when the node has none. With `persist`
    off (a plan, which changes nothing in the cluster) a key is trusted for this connection only.
    """

    where = f"the Node annotation {keys.HOST_KEY_ANNOTATION}"

    def __init__(self, kube: Kube, node: str, *, persist: bool = True) -> None:
        self.kube = kube
        self.node = node
        self.persist = persist
        self._unsaved: HostKeyPin | None = None
        self.rekey = f"remove the annotation (kubectl annotate node {node} {keys.HOST_KEY_ANNOTATION}-)"

    def _parse(self, text: str) -> HostKeyPin:
        try:
            return HostKeyPin.parse(text)
        except ValueError as e:
            raise HostKeySetupError(
                f"node {self.node}: annotation {keys.HOST_KEY_ANNOTATION}: {e}; {self.rekey} to pin the key "
                "the node presents next, after checking it out of band"
            ) from e

    def load(self) -> HostKeyPin | None:
        text = annotations_of(get_node(self.kube, self.node)).get(keys.HOST_KEY_ANNOTATION)
        return self._parse(text) if text else self._unsaved

    def save(self, pin: HostKeyPin) -> HostKeyPin:
        if not self.persist:
            self._unsaved = self._unsaved or pin
            return self._unsaved
        return self._parse(pin_host_key(self.kube, self.node, str(pin)))


def _ssh_secrets(spec: NodeMigrationSpec) -> dict[str, str]:
    """Secret name -> the field that names it: the spec.ssh Secrets and the notification URLs' Secret."""
    out: dict[str, str] = {}
    if spec.ssh is not None:
        for ref, field in (
            (spec.ssh.private_key, "privateKeySecretRef"),
            (spec.ssh.known_hosts, "knownHostsSecretRef"),
        ):
            if ref is not None:
                out.setdefault(ref.name, f"spec.ssh.{field}")
    if spec.notifications is not None:  # webhook tokens: never registry material either
        out.setdefault(spec.notifications.url_secret.name, "spec.notifications.urlSecretRef")
    return out


def _definitive(error: KubeError) -> bool:
    """A read that will fail the same way next time (missing Secret or key, forbidden, bad encoding)."""
    if isinstance(error, ApiUnreachable):
        return False
    if isinstance(error, ApiStatusError):
        return not error.transient
    return True


def registry_material(kube: Kube, namespace: str, spec: NodeMigrationSpec) -> RegistryMaterial:
    """The CA bundles and client pairs the spec's registries name, read from their Secrets in `namespace`.

    Read-only; the operator's Plan and Migrate modes and `shimshift plan --probe-namespace` all use it, so
    a plan says what a migration will meet. A Secret that spec.ssh names is never read for a registry
    (defence in depth: validation refuses that spec already); a Secret or key that does not exist is
    recorded in `refused` for the renderer to report against the registry's field, so one missing
    Secret blocks its registry's nodes, never the plan. A transient API error is raised (try again).
    The content is checked by the renderer (shimshift.model.pem), never logged here.
    """
    ssh = _ssh_secrets(spec)
    cas: dict[str, str] = {}
    clients: dict[str, ClientCert] = {}
    refused: dict[tuple[str, str], str] = {}

    def read(host: str, field: str, name: str, keys: tuple[str, ...]) -> tuple[str, ...] | None:
        if name in ssh:
            refused[(host, field)] = (
                f"Secret {namespace}/{name} is the one {ssh[name]} names; "
                + ("an SSH Secret" if ssh[name].startswith("spec.ssh.") else "the notification URLs' Secret")
                + " is never read as registry material"
            )
            return None
        try:
            return tuple(read_secret_key(kube, namespace, name, key) for key in keys)
        except KubeError as e:
            if not _definitive(e):
                raise
            refused[(host, field)] = str(e)
            return None

    for reg in spec.containerd.registries:
        if reg.ca_secret is not None:
            got = read(reg.host, "caSecretRef", reg.ca_secret.name, (reg.ca_secret.key,))
            if got is not None:
                cas[reg.host] = got[0]
        if reg.client_cert_secret is not None:
            got = read(reg.host, "clientCertSecretRef", reg.client_cert_secret, ("tls.crt", "tls.key"))
            if got is not None:
                clients[reg.host] = ClientCert(*got)
    return RegistryMaterial(cas, clients, refused)


def node_info(kube: Kube, node: str, ssh: Ssh) -> tuple[str, str | None]:
    """The address shimshift connects to (per spec.ssh.addressType) and the kubelet version of `node`."""
    status = get_node(kube, node).get("status") or {}
    wanted = str(ssh.address_type)
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
    address = addresses.get(wanted) or (node if ssh.address_type == AddressType.HOSTNAME else None)
    if not address:
        raise NodeError(node, f"has no {wanted} address in status.addresses; set spec.ssh.addressType")
    return str(address), (status.get("nodeInfo") or {}).get("kubeletVersion")


#: Node ports kept at once (one per NodeMigration); the least recently used is closed beyond this.
MAX_PORTS = 32


class SshNodePortPool:
    """The engine's node-port factory: one SshNodePort per NodeMigration, for its current generation.

    A new generation (a spec edit plans anew) closes the superseded port's connections and replaces
    it; `forget` (the object was deleted) closes and drops it; beyond `MAX_PORTS` the least recently
    used port is closed and dropped (it is rebuilt, reconnecting, if its NodeMigration comes back).
    """

    def __init__(self, kube: Kube, namespace: str, max_ports: int = MAX_PORTS) -> None:
        self.kube = kube
        self.namespace = namespace
        self.max_ports = max_ports
        self._ports: OrderedDict[str, tuple[int, SshNodePort]] = OrderedDict()
        self._guard = threading.Lock()

    def __call__(self, migration: NodeMigration) -> SshNodePort:
        key = migration.uid or migration.name
        stale: list[SshNodePort] = []
        with self._guard:
            held = self._ports.get(key)
            if held is not None and held[0] == migration.generation:
                self._ports.move_to_end(key)
                return held[1]
            if held is not None:
                stale.append(held[1])
            port = ssh_node_port(self.kube, self.namespace, migration)
            self._ports[key] = (migration.generation, port)
            self._ports.move_to_end(key)
            while len(self._ports) > self.max_ports:
                stale.append(self._ports.popitem(last=False)[1][1])
        for old in stale:
            old.close()
        return port

    def forget(self, uid: str) -> None:
        """Close and drop the port of a deleted NodeMigration (by uid, or name when it had none)."""
        with self._guard:
            held = self._ports.pop(uid, None)
        if held is not None:
            held[1].close()

    def ports(self) -> dict[str, SshNodePort]:
        with self._guard:
            return {key: port for key, (_, port) in self._ports.items()}


def ssh_node_ports(kube: Kube, namespace: str) -> SshNodePortPool:
    """The engine's node-port factory (`SshNodePortPool`)."""
    return SshNodePortPool(kube, namespace)


__all__ = [
    "MAX_PORTS",
    "NodeHostKeyStore",
    "SshNodePortPool",
    "node_info",
    "registry_material",
    "ssh_node_port",
    "ssh_node_ports",
]
