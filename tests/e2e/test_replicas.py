"""HA: two operator replicas with kopf peering. Only one acts at a time; when the active one is killed,
the other takes over after the lease lapses; no node step is ever run by both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.lease import LEASE_ANNOTATION, parse_lease
from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi]

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
PEERING = {
    "apiVersion": "kopf.dev/v1",
    "kind": "ClusterKopfPeering",
    "metadata": {"name": "shimshift"},
    "status": {},
}


def _replica(factory: Callable[..., Operator], name: str) -> Operator:
    op = factory(SHIMSHIFT_SIM_STEP_SECONDS="0.3", SHIMSHIFT_IDENTITY=name, SHIMSHIFT_LEASE_TTL="6")
    op.env["SHIMSHIFT_PEERING"] = "shimshift"
    return op


def _peers(cluster: KubeApi) -> dict[str, object]:
    """The replicas kopf has registered in the peering object (status: peer id -> its lease)."""
    return dict((cluster.get("clusterkopfpeerings.kopf.dev", "shimshift") or {}).get("status") or {})


def _holder(cluster: KubeApi) -> str:
    obj = cluster.get("nodemigrations.shimshift.io", "m") or {}
    return parse_lease((obj.get("metadata", {}).get("annotations") or {}).get(LEASE_ANNOTATION, ""))[0]


def test_two_replicas_never_act_on_the_same_node_and_one_takes_over_when_the_other_dies(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed(PEERING)
    cluster.seed([node(f"w{i}") for i in range(1, 5)])
    replicas = {name: _replica(operator_factory, name) for name in ("replica-a", "replica-b")}
    for op in replicas.values():
        op.start()
    eventually(
        lambda: len(_peers(cluster)) == 2, 60, "both replicas in the peering object, before there is work"
    )
    cluster.seed(migration(rollout={"maxUnavailable": 1}))

    first = eventually(lambda: _holder(cluster), 60, "a replica to claim the migration")

    def w2_started() -> bool:
        record = status_of(cluster).node("w2")
        return record is not None and record.phase != NodePhase.PENDING

    eventually(w2_started, 90, "w2 to start")
    replicas[first].kill()

    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 120, "the other replica to finish")

    second = _holder(cluster)
    assert second != first
    by = {name: read_state(sim_dir, name).get("by", {}) for name in ("w1", "w2", "w3", "w4")}
    for name in ("w1", "w2", "w3", "w4"):
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
    assert set(by["w1"].values()) == {first}
    assert set(by["w4"].values()) == {second}
    print(f"steps per node by replica: {by}")
