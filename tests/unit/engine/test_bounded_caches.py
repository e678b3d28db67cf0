"""What the operator keeps between passes is bounded: node ports (and their SSH connections) per
NodeMigration, the engine's facts cache, the handlers' due times. A superseded generation, a deleted
object or a settled rollout leaves nothing open behind it; the host key a node was verified with is
recorded in its status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shimshift.engine import Engine
from shimshift.entry import handlers
from shimshift.entry.nodeport import MAX_PORTS, ssh_node_ports
from shimshift.model.migration import NodeMigration, parse_nodemigration
from shimshift.model.status import NodePhase, Phase
from shimshift.ports import EngineConfig
from shimshift.resources import load_crd
from tests.unit.engine.conftest import make_engine
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

FP = "ssh-ed25519 SHA256:" + "k" * 43

# kopf's decorators type a handler as the protocol of every keyword kopf passes (the body's parts, a
# patch, a logger...); these tests pass the two the handlers read, and the handlers take the rest in `**_`.
reconcile: Callable[..., object] = handlers.reconcile
stop: Callable[..., object] = handlers.stop


def settle(engine: Engine, cluster: FakeCluster, clock: Clock, name: str = "m") -> None:
    for _ in range(200):
        result = engine.reconcile(cluster.get(name))
        if result.in_flight == 0 and result.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED):
            return
        clock.advance(max(result.delay, 1.0))
    raise AssertionError("did not settle")


def test_the_host_key_the_facts_step_verified_is_recorded_in_the_node_status(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.host_keys["w1"] = FP
    cluster.create(manifest())
    settle(make_engine(cluster, nodes, clock), cluster, clock)
    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.SUCCEEDED
    assert record.host_key_fingerprint == FP


def test_the_facts_cache_keeps_nothing_for_nodes_no_longer_in_flight(clock: Clock) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w2"] = "configure"  # one node rolls back, the others succeed
    cluster.create(manifest(rollout={"maxUnavailable": 3, "maxFailures": 3}))
    engine = make_engine(cluster, nodes, clock)
    settle(engine, cluster, clock)
    assert {r.phase for r in cluster.status().nodes} == {NodePhase.SUCCEEDED, NodePhase.ROLLED_BACK}
    assert engine._facts == {}


def test_a_settled_rollout_closes_its_node_connections(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 2}))
    engine = make_engine(cluster, nodes, clock)
    settle(engine, cluster, clock)
    assert nodes.closed >= 1
    closed = nodes.closed
    engine.reconcile(cluster.get("m"))  # an idle pass opens nothing, so closes nothing
    assert nodes.closed == closed


def test_forgetting_a_deleted_migration_drops_its_facts_and_its_node_ports(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    forgotten: list[str] = []

    class Ports:
        def __call__(self, migration: NodeMigration) -> FakeNodes:
            return nodes

        def forget(self, uid: str) -> None:
            forgotten.append(uid)

    migration = cluster.create(manifest())
    engine = Engine(
        cluster, Ports(), config=EngineConfig(), clock=clock, monotonic=lambda: clock.now.timestamp()
    )
    engine._facts[("uid-m", "w1")] = nodes.facts("w1")
    engine.forget(migration)
    assert engine._facts == {} and forgotten == ["uid-m"]


# ---- the handlers' due times ---------------------------------------------------------------------------


def _body(generation: int, uid: str = "uid-m") -> dict[str, Any]:
    body = manifest()
    body["metadata"].update(generation=generation, uid=uid)
    return body


def test_the_due_times_keep_one_entry_per_object_whatever_its_generations(clock: Clock) -> None:
    cluster = FakeCluster(workers(1, labels={"pool": "none"}), clock)  # nothing to migrate: cheap passes
    runtime = handlers.Runtime(make_engine(cluster, FakeNodes(cluster), clock))
    memo = {"runtime": runtime}
    for generation in range(1, 40):
        cluster.objects.pop("m", None)
        cluster.create(_body(generation))
        reconcile(body=_body(generation), memo=memo)
    assert list(runtime.due) == ["uid-m"]


def test_an_invalid_generation_is_not_acted_on_until_the_spec_changes(clock: Clock) -> None:
    cluster = FakeCluster(workers(1, labels={"pool": "none"}), clock)
    runtime = handlers.Runtime(make_engine(cluster, FakeNodes(cluster), clock))
    cluster.create(_body(2))
    bad = _body(2)
    bad["spec"]["drain"] = {"timeout": "-5m"}
    reconcile(body=bad, memo={"runtime": runtime})
    assert runtime.due["uid-m"][0] == 2
    writes = cluster.writes
    reconcile(body=bad, memo={"runtime": runtime})
    assert cluster.writes == writes  # not again: the same generation is known bad


def test_a_deleted_migration_leaves_no_due_time_and_no_facts(clock: Clock) -> None:
    cluster = FakeCluster(workers(1, labels={"pool": "none"}), clock)
    engine = make_engine(cluster, FakeNodes(cluster), clock)
    runtime = handlers.Runtime(engine)
    cluster.create(_body(1))
    reconcile(body=_body(1), memo={"runtime": runtime})
    assert "uid-m" in runtime.due
    stop(body=_body(1), memo={"runtime": runtime})
    assert runtime.due == {}


# ---- the operator's node ports ---------------------------------------------------------------------------


class Conn:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class NoKube:
    """ssh_node_port reads the cluster lazily; these tests never connect."""

    def request(self, *a: Any, **kw: Any) -> Any:
        raise AssertionError("no API call expected")


def _nm(name: str, generation: int, uid: str | None = None) -> NodeMigration:
    body = manifest(name)
    body["metadata"].update(generation=generation, uid=uid or f"uid-{name}")
    return parse_nodemigration(body, load_crd())


def test_a_new_generation_closes_the_superseded_ports_connections_and_drops_it() -> None:
    factory = ssh_node_ports(NoKube(), "shimshift-system")  # type: ignore[arg-type]
    old = factory(_nm("m", 1))
    conn = Conn()
    old._conns["w1"] = conn  # type: ignore[assignment]
    assert factory(_nm("m", 1)) is old
    new = factory(_nm("m", 2))
    assert new is not old and conn.closed == 1 and old._conns == {}
    assert factory.ports() == {"uid-m": new}


def test_forgetting_a_migration_closes_its_ports_connections() -> None:
    factory = ssh_node_ports(NoKube(), "shimshift-system")  # type: ignore[arg-type]
    port = factory(_nm("m", 1))
    conn = Conn()
    port._conns["w1"] = conn  # type: ignore[assignment]
    factory.forget("uid-m")
    factory.forget("uid-never-seen")
    assert conn.closed == 1 and factory.ports() == {}


def test_the_node_ports_are_bounded_and_the_least_recently_used_is_closed_first() -> None:
    factory = ssh_node_ports(NoKube(), "shimshift-system")  # type: ignore[arg-type]
    first = factory(_nm("a", 1))
    conn = Conn()
    first._conns["w1"] = conn  # type: ignore[assignment]
    factory(_nm("b", 1))
    for i in range(MAX_PORTS - 2):
        factory(_nm(f"x{i}", 1))
    factory(_nm("a", 1))  # used again: the least recently used is now "b"
    factory(_nm("overflow", 1))
    ports = factory.ports()
    assert len(ports) == MAX_PORTS
    assert "uid-a" in ports and "uid-b" not in ports and conn.closed == 0
    for i in range(MAX_PORTS):
        factory(_nm(f"y{i}", 1))
    assert conn.closed == 1  # evicted at last, and closed on the way out


@pytest.mark.parametrize("generation", [1, 2])
def test_a_port_for_a_migration_without_uid_is_keyed_by_its_name(generation: int) -> None:
    factory = ssh_node_ports(NoKube(), "shimshift-system")  # type: ignore[arg-type]
    body = manifest("n")
    body["metadata"].pop("uid")
    body["metadata"]["generation"] = generation
    factory(parse_nodemigration(body, load_crd()))
    assert list(factory.ports()) == ["n"]


def test_a_plan_closes_the_connections_its_probe_opened(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(mode="Plan"))
    make_engine(cluster, nodes, clock).reconcile(cluster.get("m"))
    assert cluster.status().phase == Phase.PLANNED
    assert nodes.closed == 1
