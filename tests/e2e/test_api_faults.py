"""API faults (429, 500, 409, dropped watches) on about 10% of requests: the migration still completes,
nothing on a node is changed twice, no node is left cordoned.

The emulator's fault rules answer the next matching request with an error; an injector thread keeps
adding one rule for every ten requests the cluster served, picked at random (seeded) among the calls
the operator makes, and drops every open watch now and then.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.kubeapi import KubeApi

from shimshift.model import keys
from shimshift.model.status import Phase
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.simnodes import read_state
from tests.e2e.test_operator import web

pytestmark = pytest.mark.e2e

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
#: (method, resource, subresource) -> statuses a real API server answers such calls with under stress.
CALLS = {
    ("PATCH", "nodes", ""): (409, 500),
    ("GET", "nodes", ""): (500, 429),
    ("GET", "pods", ""): (500, 429),
    ("POST", "pods", "eviction"): (429, 500),
    ("PATCH", "nodemigrations", "status"): (409, 500),
    ("GET", "nodemigrations", ""): (500,),
    ("POST", "events", ""): (500,),
}


class Injector(threading.Thread):
    def __init__(self, cluster: KubeApi, rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.rules: list[object] = []
        self.cuts = 0

    def run(self) -> None:
        seen, owed, ticks = len(self.cluster.requests), 0.0, 0
        while not self.stop.wait(0.1):
            now = len(self.cluster.requests)
            owed += (now - seen) * self.rate
            seen = now
            while owed >= 1:
                (method, resource, sub), statuses = self.rng.choice(list(CALLS.items()))
                self.rules.append(
                    self.cluster.faults.add(
                        self.rng.choice(statuses),
                        times=1,
                        method=method,
                        resource=resource,
                        subresource=sub or None,
                    )
                )
                owed -= 1
            ticks += 1
            if ticks % 15 == 0:
                self.cuts += self.cluster.cut_watches()


def test_a_migration_completes_through_random_api_faults_without_doing_anything_twice(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node(f"w{i}") for i in range(1, 5)])
    cluster.seed(web(replicas=4, min_available=3))
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.05")
    operator.start()
    injector = Injector(cluster, rate=0.10, seed=8)
    before = len(cluster.requests)
    injector.start()
    cluster.seed(migration(rollout={"maxUnavailable": 2}))
    try:
        eventually(
            lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.PAUSED, Phase.FAILED),
            120,
            "the end",
            0.2,
        )
    finally:
        injector.stop.set()
        injector.join(timeout=5)
        cluster.faults.clear()

    assert status_of(cluster).phase == Phase.SUCCEEDED, status_of(cluster)
    served = len(cluster.requests) - before
    faulted = sum(getattr(rule, "hits", 0) for rule in injector.rules)
    print(f"faults: {faulted} of {served} requests ({faulted / served:.1%}), {injector.cuts} watches dropped")
    assert faulted / served >= 0.05
    for i in range(1, 5):
        name = f"w{i}"
        obj = cluster.get("nodes", name)
        assert obj is not None and not obj["spec"].get("unschedulable"), f"{name} left cordoned"
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
