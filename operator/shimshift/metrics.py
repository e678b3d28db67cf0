"""Prometheus metrics: the engine's `Observer`, exposed over HTTP for the chart's scrape config.

Own registry (not prometheus-client's global one), so tests and two operators in one process never
share counters. Labels are bounded: step ids, phases, NodeMigration names and gate names (one per
entry of a spec's spec.rollout.gates), never node-provided text.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from shimshift.model.keys import StepId
from shimshift.model.status import ImageCounts, MigrationStatus, NodePhase

#: Seconds a node stays cordoned: from a quarter of a minute (a small node, its images moved before
#: the cordon) to the better part of an hour behind PodDisruptionBudgets and many images.
UNSCHEDULABLE_BUCKETS = (5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.nodes = Gauge(
            "shimshift_nodes", "Nodes of a NodeMigration by phase", ["migration", "phase"], registry=r
        )
        self.step_seconds = Histogram(
            "shimshift_step_duration_seconds",
            "Time spent running one pass of a node step",
            ["step", "outcome"],
            buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.drain_wait = Counter(
            "shimshift_drain_wait_seconds", "Time drains waited for pods to leave", registry=r
        )
        self.drain_blocked = Counter(
            "shimshift_drain_blocked_seconds",
            "Time drains waited while a PodDisruptionBudget refused an eviction",
            registry=r,
        )
        self.images = Counter(
            "shimshift_images_migrated", "Images made available to containerd", ["how"], registry=r
        )
        self.image_bytes = Counter("shimshift_image_bytes_migrated", "Bytes of images migrated", registry=r)
        self.canary_seconds = Histogram(
            "shimshift_canary_duration_seconds",
            "Time from the verify step's canary pod's creation to its verdict, by result (passed, failed, "
            "timeout; a skipped canary is counted in shimshift_canaries_total only)",
            ["result"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.canaries = Counter(
            "shimshift_canaries", "Canary pods run before uncordoning, by result", ["result"], registry=r
        )
        self.hook_seconds = Histogram(
            "shimshift_hook_wait_seconds",
            "Time a node waited on its hook Job (spec.rollout.hooks), from the hook step's start to the "
            "Job's end, by hook (pre, post) and result (Succeeded, Failed, TimedOut)",
            ["hook", "result"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.rollbacks = Counter("shimshift_rollbacks", "Nodes rolled back to Docker", registry=r)
        self.undos = Counter(
            "shimshift_undos", "Succeeded nodes rolled back to Docker on request", registry=r
        )
        self.commits = Counter(
            "shimshift_commits", "Succeeded nodes whose rollback window was committed", registry=r
        )
        self.unschedulable = Histogram(
            "shimshift_node_unschedulable_seconds",
            "Time a node shimshift cordoned stayed cordoned, observed when it is uncordoned",
            ["migration"],
            buckets=UNSCHEDULABLE_BUCKETS,
            registry=r,
        )

        self.notifications = Counter(
            "shimshift_notifications",
            "Notifications by event (Started, NodeFailed, Paused, Finished) and result (sent, failed)",
            ["event", "result"],
            registry=r,
        )
        self.gates = Counter(
            "shimshift_gate_evaluations",
            "Readings of spec.rollout.gates, by gate and result (open, closed, error)",
            ["gate", "result"],
            registry=r,
        )

    def notification_sent(self, event: str, result: str) -> None:
        """One notification to one target was sent (`result` "sent") or given up ("failed")."""
        self.notifications.labels(event=event, result=result).inc()

    def gate_evaluated(self, gate: str, result: str) -> None:
        self.gates.labels(gate=gate, result=result).inc()

    def step_finished(self, step: StepId, seconds: float, ok: bool) -> None:
        self.step_seconds.labels(step=str(step), outcome="ok" if ok else "error").observe(seconds)

    def drain_waited(self, seconds: float, blocked: bool) -> None:
        self.drain_wait.inc(seconds)
        if blocked:
            self.drain_blocked.inc(seconds)

    def images_migrated(self, counts: ImageCounts) -> None:
        self.images.labels(how="transferred").inc(counts.transferred)
        self.images.labels(how="pulled").inc(counts.pulled)
        self.images.labels(how="skipped").inc(counts.skipped)
        self.image_bytes.inc(counts.bytes)

    def canary_finished(self, seconds: float, result: str) -> None:
        self.canaries.labels(result=result).inc()
        if result != "skipped":
            self.canary_seconds.labels(result=result).observe(seconds)

    def hook_finished(self, hook: str, seconds: float, result: str) -> None:
        self.hook_seconds.labels(hook=hook, result=result).observe(seconds)

    def rolled_back(self) -> None:
        self.rollbacks.inc()

    def undone(self) -> None:
        self.undos.inc()

    def committed(self) -> None:
        self.commits.inc()

    def node_uncordoned(self, migration: str, seconds: float) -> None:
        self.unschedulable.labels(migration=migration).observe(seconds)

    def nodes_by_phase(self, migration: str, status: MigrationStatus) -> None:
        for phase in NodePhase:
            count = sum(1 for n in status.nodes if n.phase == phase)
            self.nodes.labels(migration=migration, phase=str(phase)).set(count)

    def count_api_requests(self, calls: Callable[[], Tally[str]]) -> None:
        """Export `calls()` ("METHOD resource" -> count, as `shimshift.kube.api.Kube.calls` keeps them)
        as shimshift_api_requests_total{method, resource}: the operator's own load on the API server."""
        self.registry.register(_ApiRequests(calls))

    def serve(self, port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from the pod network
        """Serve /metrics on `port` in a daemon thread."""
        start_http_server(port, addr=address, registry=self.registry)


class _ApiRequests(Collector):
    def __init__(self, calls: Callable[[], Tally[str]]) -> None:
        self.calls = calls

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "shimshift_api_requests",
            "Requests shimshift's engine sent to the Kubernetes API (kopf's own are not counted)",
            labels=["method", "resource"],
        )
        for key, count in sorted(self.calls().items()):
            method, _, resource = key.partition(" ")
            family.add_metric([method, resource], count)
        yield family
