"""The engine's ports: what it asks of nodes (`NodePort`), of the Kubernetes API (`ClusterPort`), of
metrics (`Observer`), of the health gates (`GatePort`), and its timing settings (`EngineConfig`). What
the steps themselves ask is declared with them (`shimshift.steps.base`); the ports here add what the
rollout needs besides.

Production implementations: `shimshift.remote.port.SshNodePort` (wired by `shimshift.entry.nodeport`),
`shimshift.kube.cluster.KubeCluster`, `shimshift.metrics.Metrics`, `shimshift.entry.gateport.LiveGates`;
tests bring fakes. Shared by the
engine (`shimshift.engine`, which decides which step runs) and the step executor
(`shimshift.stepexec`, which runs it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shimshift.kube.drain import DrainProgress
from shimshift.model.gates import GateReading, Gates
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import Drain
from shimshift.model.status import ImageCounts, MigrationStatus, NodeRecord
from shimshift.planning.apiserver import ApiServers
from shimshift.planning.cluster import Cluster, Node, Pod
from shimshift.planning.notifications import Notification
from shimshift.steps.base import EngineConfig, NodePort, StepCluster, StepObserver

__all__ = [
    "ClusterPort",
    "EngineConfig",
    "GatePort",
    "NodePort",
    "Notifier",
    "NullNotifier",
    "NullObserver",
    "Observer",
]


class GatePort(Protocol):
    """Reads `spec.rollout.gates` (`shimshift.entry.gateport.LiveGates`): Prometheus over HTTP, the
    named objects' conditions through the API. Read only; never raises for a gate it cannot read: that
    gate's reading is an error (`GateState.ERROR`) saying what failed."""

    def read_gates(self, gates: Gates) -> tuple[GateReading, ...]: ...


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
    def read_api_servers(self) -> ApiServers:
        """Where the API servers run (`planning.apiserver`): read at most every so often, and when a
        read fails, the last reading (raises only when there is none)."""
        ...

    def read_operator_pods(self) -> tuple[Pod, ...]:
        """The operator's own pods in its namespace (`planning.operatorpod`): read at most every so
        often; when a read fails, the last reading (none at first)."""
        ...

    def wait_api_ready(self, timeout: float) -> tuple[bool, str]:
        """Wait (at most `timeout` s) until the API server's /readyz answers ok: (True, "ok"), or
        (False, what it said last)."""
        ...


class Observer(StepObserver, Protocol):
    """What the engine reports for metrics (`shimshift.metrics.Metrics`)."""

    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None: ...
    def rolled_back(self) -> None: ...
    def undone(self) -> None:
        """A Succeeded node was rolled back to Docker on request."""
        ...

    def committed(self) -> None:
        """A Succeeded node's rollback window was committed."""
        ...

    def node_uncordoned(self, migration: str, seconds: float) -> None:
        """A node `migration` cordoned was uncordoned `seconds` after its cordon (once per node)."""
        ...

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None: ...
    def gate_evaluated(self, gate: str, result: str) -> None:
        """A gate was read: `result` is open, closed or error."""
        ...


class NullObserver:
    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None:
        pass

    def drain_waited(self, seconds: float, blocked: bool) -> None:
        pass

    def images_migrated(self, counts: ImageCounts) -> None:
        pass

    def canary_finished(self, seconds: float, result: str) -> None:
        pass

    def hook_finished(self, hook: str, seconds: float, result: str) -> None:
        pass

    def rolled_back(self) -> None:
        pass

    def undone(self) -> None:
        pass

    def committed(self) -> None:
        pass

    def node_uncordoned(self, migration: str, seconds: float) -> None:
        pass

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None:
        pass

    def gate_evaluated(self, gate: str, result: str) -> None:
        pass


class Notifier(Protocol):
    """Delivers notifications (`shimshift.notify.AppriseNotifier`): in the background, with bounded
    timeouts and retries, never raising into the caller."""

    def send(self, notification: Notification, failed: Callable[[str], None]) -> None:
        """Queue `notification`; when it is given up, call `failed` with a message naming no URL."""
        ...


class NullNotifier:
    def send(self, notification: Notification, failed: Callable[[str], None]) -> None:
        pass
