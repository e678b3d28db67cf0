"""The production NodePort: `shimshift.remote.port.SshNodePort` wired to the cluster.

What the Kubernetes-free port needs from the cluster is read here: the node's address (per
`spec.ssh.addressType`) and kubelet version from its Node object, the SSH key and known_hosts from the
Secrets `spec.ssh` names, registry CAs and client certificates from theirs (`registry_material`, which
never reads an SSH Secret for a registry), all in the operator's namespace, each read once (registry
Secrets again while one is missing) and never logged. One port per NodeMigration uid and generation (a spec
change plans anew); SSH round trips per node are logged when the node finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Kube
from shimshift.kube.nodes import get_node
from shimshift.kube.secrets import read_secret_key
from shimshift.model.errors import KubeError, NodeError
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import AddressType, NodeMigrationSpec, Ssh
from shimshift.remote.connection import NodeConnection, SshOptions, SshTarget
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


def ssh_node_port(kube: Kube, namespace: str, migration: NodeMigration) -> SshNodePort:
    """The SshNodePort of `migration`, its cluster reads bound to `kube` and `namespace`."""
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
        return SshOptions.from_spec(ssh, known_hosts=known, private_key=key)

    options = _once(read_options)
    material = _once(lambda: registry_material(kube, namespace, migration.spec), lambda m: not m.refused)

    def connect(node: str) -> NodeConnection:
        address, _ = node_info(kube, node, ssh)
        return NodeConnection(SshTarget(node, address, ssh.port, ssh.user), options())

    return SshNodePort(
        migration.name,
        migration.spec,
        connect,
        material=material,
        kubelet_version=lambda node: node_info(kube, node, ssh)[1],
    )


def _ssh_secrets(spec: NodeMigrationSpec) -> dict[str, str]:
    """Secret name -> the spec.ssh field that names it."""
    out: dict[str, str] = {}
    if spec.ssh is not None:
        for ref, field in (
            (spec.ssh.private_key, "privateKeySecretRef"),
            (spec.ssh.known_hosts, "knownHostsSecretRef"),
        ):
            if ref is not None:
                out.setdefault(ref.name, f"spec.ssh.{field}")
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
                f"Secret {namespace}/{name} is the one {ssh[name]} names; an SSH Secret is never read as "
                "registry material"
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


def ssh_node_ports(kube: Kube, namespace: str) -> Callable[[NodeMigration], SshNodePort]:
    """The engine's node-port factory: one SshNodePort per NodeMigration uid and generation."""
    ports: dict[tuple[str, int], SshNodePort] = {}
    guard = threading.Lock()

    def factory(migration: NodeMigration) -> SshNodePort:
        key = (migration.uid or migration.name, migration.generation)
        with guard:
            port = ports.get(key)
            if port is None:
                port = ports[key] = ssh_node_port(kube, namespace, migration)
        return port

    return factory


__all__ = ["node_info", "registry_material", "ssh_node_port", "ssh_node_ports"]
