"""The engine's ports: what it asks of nodes (`NodePort`), of the Kubernetes API (`ClusterPort`) and of
metrics (`Observer`), and its timing settings (`EngineConfig`). What the steps themselves ask is
declared with them (`shimshift.steps.base`); the ports here add what the rollout needs besides.

Production implementations: `shimshift.remote.port.SshNodePort` (wired by `shimshift.entry.nodeport`),
`shimshift.kube.cluster.KubeCluster`, `shimshift.metrics.Metrics`; tests bring fakes. Shared by the
engine (`shimshift.engine`, which decides which step runs) and the step executor
(`shimshift.stepexec`, which runs it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shimshift.kube.drain import DrainProgress
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import Drain
from shimshift.model.status import ImageCounts, MigrationStatus, NodeRecord
from shimshift.planning.cluster import Cluster, Node
from shimshift.steps.base import EngineConfig, NodePort, StepCluster, StepObserver

__all__ = ["ClusterPort", "EngineConfig", "NodePort", "NullObserver", "Observer"]


class ClusterPort(StepCluster, Protocol):
    """What the engine asks of the Kubernetes API (`shimshift.kube.cluster.KubeCluster`): what the
    steps ask (`StepCluster`) and what the rollout needs besides."""

    def read_nodes(self) -> tuple[Node, ...]: ...
    def read_migration(self, name: str) -> NodeMigration | None: ...
    def read_blocking_pods(self, label_selector: str) -> Mapping[str, tuple[str, ...]]:
        """node -> "namespace/name" of its pods matching `label_selector` (kubectl syntax) that have not
        finished (phase neither Succeeded nor Failed); nodes with none are absent."""
        ...

    def read_node_records(self, migration: NodeMigration) -> tuple[NodeRecord, ...]:
        """The record of every node `migration` started (its NodeMigrationNode objects), by name."""
        ...

    def write_node_record(self, migration: NodeMigration, record: NodeRecord) -> None:
        """Make `record` the durable record of its node (creating its NodeMigrationNode if needed)."""
        ...

    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> DrainProgress: ...
    def write_status(self, name: str, status: Mapping[str, Any]) -> None: ...
    def read_cluster(self) -> Cluster: ...
    def write_report(self, migration: NodeMigration, data: Mapping[str, str]) -> str: ...
    def claim(self, migration: str, identity: str, ttl: float) -> bool: ...


class Observer(StepObserver, Protocol):
    """What the engine reports for metrics (`shimshift.metrics.Metrics`)."""

    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None: ...
    def rolled_back(self) -> None: ...
    def node_uncordoned(self, migration: str, seconds: float) -> None:
        """A node `migration` cordoned was uncordoned `seconds` after its cordon (once per node)."""
        ...

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None: ...


class NullObserver:
    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None:
        pass

    def drain_waited(self, seconds: float, blocked: bool) -> None:
        pass

    def images_migrated(self, counts: ImageCounts) -> None:
        pass

    def canary_finished(self, seconds: float, result: str) -> None:
        pass

    def rolled_back(self) -> None:
        pass

    def node_uncordoned(self, migration: str, seconds: float) -> None:
        pass

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None:
        pass
