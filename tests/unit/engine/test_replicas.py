"""Two operator replicas on one NodeMigration: only the one holding the lease acts; the other takes over
only after the lease expired, and nothing is done twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

from shimshift.engine import Engine
from shimshift.model.status import Phase
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers


class Recording:
    """The shared fake nodes, seen through one replica: records which replica called them."""

    def __init__(self, shared: FakeNodes, who: str, calls: Counter[str]) -> None:
        self.shared = shared
        self.who = who
        self.calls = calls

    def __getattr__(self, op: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[self.who] += 1
            return getattr(self.shared, op)(*args, **kwargs)

        return call


def _replica(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, who: str, calls: Counter[str]) -> Engine:
    port = Recording(nodes, who, calls)
    return Engine(
        cluster,
        lambda migration: port,
        config=EngineConfig(budget=1000, lease_ttl=30),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
        identity=who,
    )


def test_a_second_replica_does_nothing_while_the_first_holds_the_lease_and_takes_over_after_it(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    # the pause ends a's pass after its first node (a wave that ends inside the budget would otherwise
    # start the next one in the same pass)
    cluster.create(manifest(rollout={"maxUnavailable": 1, "pauseBetweenNodes": "5s"}))
    calls: Counter[str] = Counter()
    a = _replica(cluster, nodes, clock, "replica-a", calls)
    b = _replica(cluster, nodes, clock, "replica-b", calls)

    a.reconcile(cluster.get("m"))  # a acts on the first node
    clock.advance(10)
    b.reconcile(cluster.get("m"))
    assert set(calls) == {"replica-a"}

    clock.advance(31)  # a stopped renewing (paused or gone): its lease expired
    for _ in range(10):
        b.reconcile(cluster.get("m"))
        clock.advance(1)

    assert cluster.status().phase == Phase.SUCCEEDED
    assert calls["replica-b"] > 0
    assert all(count == 1 for key, count in nodes.changes.items() if not key.endswith(":facts"))


def test_deletion_seen_by_a_replica_without_the_lease_waits_for_the_nodes_the_other_has_in_flight(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.transient["w1:images"] = 1  # the active replica's pass ends with w1 in flight
    cluster.create(manifest())
    calls: Counter[str] = Counter()
    a = _replica(cluster, nodes, clock, "replica-a", calls)
    b = _replica(cluster, nodes, clock, "replica-b", calls)
    a.reconcile(cluster.get("m"))

    result = b.reconcile(cluster.get("m"), stopping=True)

    assert result.in_flight == 1  # so kopf keeps the finalizer
    assert set(calls) == {"replica-a"}
