"""The production NodePort (the engine's `NodePort`, structurally): each node step as a playbook run
over SSH (`shimshift.remote`).

One `SshNodePort` per NodeMigration (cached by uid and generation), one reused SSH connection per node
(`NodeConnection` is not for concurrent use, and the engine drives each node from one thread at a
time). What the changing steps write is decided from the node's facts and the spec: the containerd
files (`rendering.render_node_config`) and the kubelet edit (`planning.kubelet.plan_kubelet_switch`).
SSH and registry secrets are read from Secrets in the operator's namespace, never logged. SSH round
trips per node are logged when the node finishes (issue 8 asks for them counted, not guessed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from shimshift.kube.api import Kube
from shimshift.kube.nodes import get_node
from shimshift.kube.secrets import read_secret_key
from shimshift.model.errors import NodeError, RemoteError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import AddressType
from shimshift.model.status import ImageCounts
from shimshift.planning.images import image_counts
from shimshift.planning.kubelet import plan_kubelet_switch
from shimshift.remote.connection import NodeConnection, SshOptions, SshTarget
from shimshift.remote.images import run_images_step, undo_images
from shimshift.remote.steps import NodePlan, NodeSteps
from shimshift.rendering import RegistryMaterial, render_node_config
from shimshift.rendering.values import ClientCert

log = logging.getLogger(__name__)


class SshNodePort:
    def __init__(self, kube: Kube, namespace: str, migration: NodeMigration) -> None:
        if migration.spec.ssh is None:
            raise NodeError("-", "spec.ssh is required in Migrate mode: shimshift changes nodes over SSH")
        self.kube = kube
        self.namespace = namespace
        self.migration = migration
        self.ssh = migration.spec.ssh
        self._conns: dict[str, NodeConnection] = {}
        self._guard = threading.Lock()
        self._options: SshOptions | None = None
        self._material: RegistryMaterial | None = None

    # --- plumbing ---------------------------------------------------------------------------------
    def _ssh_options(self) -> SshOptions:
        if self._options is None:
            ssh = self.ssh
            known = (
                read_secret_key(self.kube, self.namespace, ssh.known_hosts.name, ssh.known_hosts.key)
                if ssh.known_hosts
                else ""
            )
            key = (
                read_secret_key(self.kube, self.namespace, ssh.private_key.name, ssh.private_key.key)
                if ssh.private_key
                else None
            )
            self._options = SshOptions.from_spec(ssh, known_hosts=known, private_key=key)
        return self._options

    def _registry_material(self) -> RegistryMaterial:
        if self._material is None:
            cas: dict[str, str] = {}
            clients: dict[str, ClientCert] = {}
            for reg in self.migration.spec.containerd.registries:
                if reg.ca_secret is not None:
                    cas[reg.host] = read_secret_key(
                        self.kube, self.namespace, reg.ca_secret.name, reg.ca_secret.key
                    )
                if reg.client_cert_secret is not None:
                    clients[reg.host] = ClientCert(
                        read_secret_key(self.kube, self.namespace, reg.client_cert_secret, "tls.crt"),
                        read_secret_key(self.kube, self.namespace, reg.client_cert_secret, "tls.key"),
                    )
            self._material = RegistryMaterial(cas, clients)
        return self._material

    def _node_info(self, node: str) -> tuple[str, str | None]:
        obj = get_node(self.kube, node)
        status = obj.get("status") or {}
        wanted = str(self.ssh.address_type)
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
        address = addresses.get(wanted) or (node if self.ssh.address_type == AddressType.HOSTNAME else None)
        if not address:
            raise NodeError(node, f"has no {wanted} address in status.addresses; set spec.ssh.addressType")
        return str(address), (status.get("nodeInfo") or {}).get("kubeletVersion")

    def _conn(self, node: str) -> NodeConnection:
        with self._guard:
            conn = self._conns.get(node)
        if conn is None:
            address, _ = self._node_info(node)
            conn = NodeConnection(SshTarget(node, address, self.ssh.port, self.ssh.user), self._ssh_options())
            with self._guard:
                self._conns[node] = conn
        return conn

    def _steps(self, node: str) -> NodeSteps:
        return NodeSteps(self._conn(node))

    def _drop(self, node: str) -> None:
        with self._guard:
            conn = self._conns.pop(node, None)
        if conn is not None:
            conn.close()

    def _guarded(self, node: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except RemoteError:
            self._drop(node)  # the next attempt reconnects
            raise

    def _plan(self, node: str, facts: NodeFacts) -> NodePlan:
        spec = self.migration.spec
        rendered = render_node_config(spec, facts, self._registry_material())
        _, kubelet_version = self._node_info(node)
        switch = plan_kubelet_switch(
            node,
            facts.kubelet,
            endpoint=spec.kubelet.runtime_endpoint,
            method=spec.kubelet.config_method,
            kubelet_version=kubelet_version,
        )
        return NodePlan.build(self.migration.name, rendered.files, switch, docker_policy=spec.docker)

    # --- NodePort -----------------------------------------------------------------------------------
    def facts(self, node: str) -> NodeFacts:
        _, kubelet_version = self._node_info(node)
        facts: NodeFacts = self._guarded(
            node, lambda: self._steps(node).facts(kubelet_version=kubelet_version)
        )
        return facts

    def backup(self, node: str, facts: NodeFacts) -> str:
        NodeSteps.preflight(facts)
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).run(StepId.BACKUP, plan))
        return f"{plan.state_dir}/backup"

    def configure(self, node: str, facts: NodeFacts) -> None:
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).run(StepId.CONFIGURE, plan))

    def images(self, node: str, facts: NodeFacts) -> ImageCounts:
        spec = self.migration.spec
        # The sandbox image the new config names must be in containerd before kubelet needs it (an
        # air-gapped node cannot pull it): migrate it first, whichever rule chose it.
        sandbox = render_node_config(spec, facts, self._registry_material()).report.sandbox_image
        plan, outcome = self._guarded(
            node, lambda: run_images_step(self._conn(node), facts, spec, sandbox_image=sandbox)
        )
        return image_counts(plan, outcome)

    def switch(self, node: str, facts: NodeFacts) -> None:
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).run(StepId.SWITCH, plan))

    def verify(self, node: str, facts: NodeFacts) -> None:
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).run(StepId.VERIFY, plan))

    def finish(self, node: str, facts: NodeFacts) -> None:
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).run(StepId.FINISH, plan))
        conn = self._conn(node)
        log.info(
            "node %s: finished with %d SSH round trips (%d connects)", node, conn.round_trips, conn.connects
        )
        self._drop(node)

    def undo(self, node: str, facts: NodeFacts | None) -> None:
        facts = facts or self.facts(node)
        plan = self._plan(node, facts)
        self._guarded(node, lambda: self._steps(node).rollback(plan))
        self._guarded(node, lambda: undo_images(self._conn(node), node))


def ssh_node_ports(kube: Kube, namespace: str) -> Callable[[NodeMigration], SshNodePort]:
    """The engine's node-port factory: one SshNodePort per NodeMigration uid and generation."""
    ports: dict[tuple[str, int], SshNodePort] = {}
    guard = threading.Lock()

    def factory(migration: NodeMigration) -> SshNodePort:
        key = (migration.uid or migration.name, migration.generation)
        with guard:
            port = ports.get(key)
            if port is None:
                port = ports[key] = SshNodePort(kube, namespace, migration)
        return port

    return factory


__all__ = ["SshNodePort", "ssh_node_ports"]
