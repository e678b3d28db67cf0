"""API faults (429, 500, 409, dropped watches) on about 10% of requests: the migration still completes,
nothing on a node is changed twice, no node is left cordoned.

The emulator's random fault rule answers each request (watches aside) with 429, 500 or 409 (409 only
for writes) with probability 0.10, drawn from a seeded random.Random; a thread drops every open watch
now and then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.kubeapi import KubeApi

from shimshift.model import keys
from shimshift.model.status import Phase
from tests.e2e.conftest import Operator, eventually, migration, node, status_of, web
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi]

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")


class WatchCutter(threading.Thread):
    def __init__(self, cluster: KubeApi) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.cuts = 0

    def run(self) -> None:
        while not self.stop.wait(1.5):
            self.cuts += self.cluster.cut_watches()


#: nodes migrated: enough for the 200 requests the rate's band needs (four made 196 once a step's Done
#: and the next step's Started became one write)
NODES = 8


def test_a_migration_completes_through_random_api_faults_without_doing_anything_twice(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node(f"w{i}") for i in range(1, NODES + 1)])
    cluster.seed(web(replicas=4, min_available=3))
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.05")
    operator.start()
    # seed 4: the n-th request's fate depends on the seed alone, and its first n draws fail between
    # 8% and 12% of requests for every n from 150 to 1500, so the band below holds however many it makes
    faults = cluster.faults.add_random(0.10, (429, 500, 409), seed=4)
    cutter = WatchCutter(cluster)
    cutter.start()
    cluster.seed(migration(rollout={"maxUnavailable": 2}))
    try:
        eventually(
            lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.PAUSED, Phase.FAILED),
            120,
            "the end",
            0.2,
        )
    finally:
        cutter.stop.set()
        cutter.join(timeout=5)
        cluster.faults.clear()

    assert status_of(cluster).phase == Phase.SUCCEEDED, status_of(cluster)
    rate = faults.hits / faults.considered
    print(
        f"faults: {faults.hits} of {faults.considered} requests ({rate:.1%}, {faults.by_status}),"
        f" {cutter.cuts} watches dropped"
    )
    assert faults.considered >= 200, faults.considered  # enough requests for the rate's band below
    assert 0.07 <= rate <= 0.13, (faults.hits, faults.considered)
    for i in range(1, NODES + 1):
        name = f"w{i}"
        obj = cluster.get("nodes", name)
        assert obj is not None and not obj["spec"].get("unschedulable"), f"{name} left cordoned"
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
