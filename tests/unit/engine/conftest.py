from __future__ import annotations

from collections.abc import Callable

import pytest

from shimshift.engine import Engine, Result
from shimshift.model.status import Phase
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes

Run = Callable[..., Result]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_engine(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, own_node: str = "") -> Engine:
    return Engine(
        cluster,
        lambda migration: nodes,
        config=EngineConfig(drain_pass_wait=5.0),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
        own_node=own_node,
    )


def run_to_end(
    cluster: FakeCluster,
    nodes: FakeNodes,
    clock: Clock,
    name: str = "m",
    *,
    passes: int = 200,
    stopping: bool = False,
) -> Result:
    """Reconcile until the rollout settles (Succeeded, Failed, Paused with nothing in flight); bounded."""
    engine = make_engine(cluster, nodes, clock)
    for _ in range(passes):
        result = engine.reconcile(cluster.get(name), stopping=stopping)
        if result.in_flight == 0 and (
            stopping or result.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED)
        ):
            return result
        clock.advance(max(result.delay, 1.0))
    raise AssertionError(f"rollout did not settle in {passes} passes: {cluster.status(name)}")
