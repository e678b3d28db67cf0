"""The engine's ports: what it asks of nodes (`NodePort`), of the Kubernetes API (`ClusterPort`) and of
metrics (`Observer`), and its timing settings (`EngineConfig`).

Production implementations: `shimshift.remote.port.SshNodePort` (wired by `shimshift.nodeport`),
`shimshift.kube.cluster.KubeCluster`, `shimshift.metrics.Metrics`; tests bring fakes. Shared by the
engine (`shimshift.engine`, which decides which step runs) and the step executor
(`shimshift.stepexec`, which runs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shimshift.kube.drain import DrainProgress
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import MigrationRef, NodeMigration
from shimshift.model.spec import Drain
from shimshift.model.status import EventReason, ImageCounts, MigrationStatus, NodeRecord
from shimshift.planning.cluster import Cluster, Node
from shimshift.rendering import RegistryMaterial


class NodePort(Protocol):
    """What the engine asks of a node (SSH + playbooks in production). Every call is idempotent."""

    def facts(self, node: str) -> NodeFacts: ...
    def prepare(self, node: str, facts: NodeFacts) -> None:
        """Decide, before any change, what the changing steps write; raises what would stop them."""
        ...

    def registry_material(self) -> RegistryMaterial | None:
        """The registry Secrets' material for a plan (None: the port reads no Secrets)."""
        ...

    def backup(self, node: str, facts: NodeFacts) -> str: ...
    def configure(self, node: str, facts: NodeFacts) -> None: ...
    def images(self, node: str, facts: NodeFacts) -> ImageCounts: ...
    def switch(self, node: str, facts: NodeFacts) -> None: ...
    def verify(self, node: str, facts: NodeFacts) -> None: ...
    def finish(self, node: str, facts: NodeFacts) -> None: ...
    def undo(self, node: str, facts: NodeFacts | None) -> None: ...
    def host_key_fingerprint(self, node: str) -> str:
        """The node's host key as last verified (`<type> SHA256:<fingerprint>`), "" if none yet."""
        ...

    def close(self) -> None:
        """Close every connection the port holds (nothing is in flight); the next call reconnects."""
        ...


class ClusterPort(Protocol):
    """What the engine asks of the Kubernetes API (`shimshift.kube.cluster.KubeCluster`)."""

    def read_nodes(self) -> tuple[Node, ...]: ...
    def read_migration(self, name: str) -> NodeMigration | None: ...
    def read_node_records(self, migration: NodeMigration) -> tuple[NodeRecord, ...]:
        """The record of every node `migration` started (its NodeMigrationNode objects), by name."""
        ...

    def write_node_record(self, migration: NodeMigration, record: NodeRecord) -> None:
        """Make `record` the durable record of its node (creating its NodeMigrationNode if needed)."""
        ...

    def acquire_lock(self, node: str, owner: str) -> None: ...
    def release_lock(self, node: str, owner: str) -> None: ...
    def cordon(self, node: str, owner: str) -> bool: ...
    def uncordon(self, node: str, owner: str) -> None: ...
    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> DrainProgress: ...
    def wait_node(self, node: str, *, runtime: str, timeout: float) -> bool: ...
    def daemonsets_on(self, node: str) -> tuple[str, ...]: ...
    def wait_daemonset_pods(
        self, node: str, *, expected: Sequence[str], timeout: float
    ) -> tuple[str, ...]: ...
    def mark_migrated(self, node: str, cri_endpoint: str | None) -> None: ...
    def write_status(self, name: str, status: Mapping[str, Any]) -> None: ...
    def event(
        self,
        migration: NodeMigration | MigrationRef,
        node: str | None,
        warning: bool,
        reason: EventReason,
        message: str,
    ) -> None: ...
    def read_cluster(self) -> Cluster: ...
    def write_report(self, migration: NodeMigration, data: Mapping[str, str]) -> str: ...
    def claim(self, migration: str, identity: str, ttl: float) -> bool: ...


class Observer(Protocol):
    """What the engine reports for metrics (`shimshift.metrics.Metrics`)."""

    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None: ...
    def drain_waited(self, seconds: float, blocked: bool) -> None: ...
    def images_migrated(self, counts: ImageCounts) -> None: ...
    def rolled_back(self) -> None: ...
    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None: ...


class NullObserver:
    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None:
        pass

    def drain_waited(self, seconds: float, blocked: bool) -> None:
        pass

    def images_migrated(self, counts: ImageCounts) -> None:
        pass

    def rolled_back(self) -> None:
        pass

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None:
        pass


@dataclass(frozen=True)
class EngineConfig:
    budget: float = 15.0  # seconds of work per pass before yielding back to the handler
    drain_pass_wait: float = 5.0  # longest watch-wait of one drain pass (also the PDB backoff)
    verify_timeout: float = 300.0  # how long a switched node may take to report Ready on containerd
    rollback_wait: float = 300.0  # how long a rolled-back node may take to report Ready again
    wait_slice: float = 10.0  # longest single watch-wait for node readiness
    retry_delay: float = 5.0  # when to come back after a transient failure
    idle_delay: float = 30.0  # how often a settled NodeMigration re-checks its selection (new nodes)
    lease_ttl: float = 30.0  # how long a replica's claim on a NodeMigration lasts without renewal
