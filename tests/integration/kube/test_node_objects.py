"""NodeMigrationNode objects on the API emulator, read with the real kubectl: `kubectl get nmn -l
shimshift.io/migration=NAME` lists a rollout with its printer columns, `kubectl describe` shows one
node's step history, and deleting the NodeMigration deletes its children (ownerReferences)."""

from __future__ import annotations

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import Kubectl
from testbed.waiting import wait_until

from shimshift.kube.api import Kube
from shimshift.kube.cluster import KubeCluster
from shimshift.model.keys import StepId
from shimshift.model.status import LastError, NodePhase, NodeRecord, StepRecord, StepState
from shimshift.resources import load_crd, load_node_crd

from .conftest import migration

pytestmark = pytest.mark.integration

T = "2026-01-01T00:00:00Z"


def _records() -> list[NodeRecord]:
    done = NodeRecord(
        "w1",
        NodePhase.SUCCEEDED,
        attempts=0,
        started_at=T,
        finished_at=T,
        cordoned_at=T,
        uncordoned_at="2026-01-01T00:01:35Z",
        cordoned_seconds=95,
    )
    for step in (StepId.FACTS, StepId.LOCK, StepId.CORDON):
        done = done.with_step(StepRecord(step, StepState.DONE, T, T, f"{step} went fine"))
    flying = NodeRecord("w2", NodePhase.IN_PROGRESS, attempts=2, started_at=T).with_step(
        StepRecord(StepId.DRAIN, StepState.STARTED, T, "", "1 pod left: default/web-1")
    )
    return [done, flying]


def test_kubectl_lists_a_rollouts_nodes_and_describes_one_nodes_history(
    kubeapi: KubeApi, kube: Kube, kubeapi_kubectl: Kubectl
) -> None:
    kubeapi.seed([load_crd(), load_node_crd()])
    kubeapi.seed([migration("m"), migration("other")])
    cluster = KubeCluster(kube)
    try:
        parent = cluster.read_migration("m")
        other = cluster.read_migration("other")
        assert parent is not None and other is not None
        for record in _records():
            cluster.write_node_record(parent, record)
        cluster.write_node_record(other, NodeRecord("w1", NodePhase.IN_PROGRESS))

        listed = kubeapi_kubectl.run("get", "nmn", "-l", "shimshift.io/migration=m", check=True).stdout
        lines = listed.splitlines()
        assert lines[0].split() == ["NAME", "NODE", "PHASE", "STEP", "ATTEMPTS", "CORDONEDSECONDS", "AGE"]
        rows = [line.split() for line in lines[1:]]
        assert [row[:5] for row in rows] == [
            ["m.w1", "w1", "Succeeded", "cordon", "0"],
            ["m.w2", "w2", "InProgress", "drain", "2"],
        ]
        # the finished node's seconds cordoned; the one in flight has none yet (an empty cell, then AGE)
        assert rows[0][5] == "95" and len(rows[0]) == 7 and len(rows[1]) == 6
        described = kubeapi_kubectl.run("describe", "nmn", "m.w2", check=True).stdout
        assert "1 pod left: default/web-1" in described and "Migration:  m" in described
        finished = kubeapi_kubectl.run("describe", "nmn", "m.w1", check=True).stdout
        assert "Cordoned Seconds:" in finished and "Uncordoned At:" in finished, finished
        assert cluster.read_node_records(parent)[0].cordoned_seconds == 95  # the schema kept it

        # a record rewritten: what it no longer holds is gone from the stored status
        failed = NodeRecord("w2", NodePhase.IN_PROGRESS, last_error=LastError("drain", "x", "cmd", 1, "t"))
        cluster.write_node_record(parent, failed)
        cluster.write_node_record(parent, NodeRecord("w2", NodePhase.IN_PROGRESS))
        stored = kubeapi.must_get("nodemigrationnodes.shimshift.io", "m.w2")["status"]
        assert "lastError" not in stored and "steps" not in stored
        assert {r.name for r in cluster.read_node_records(parent)} == {"w1", "w2"}

        kubeapi.delete("nodemigrations.shimshift.io", "m")
        wait_until(
            lambda: (
                not kubeapi.list("nodemigrationnodes.shimshift.io", label_selector="shimshift.io/migration=m")
            ),
            timeout=10,
            what="the children of the deleted NodeMigration to be collected",
        )
        assert kubeapi.get("nodemigrationnodes.shimshift.io", "other.w1") is not None
    finally:
        cluster.close()
