"""The node that runs the cluster's only API server, on the real kube-apiserver behind the proxy.

The testbed's API server is one process, but it advertises 127.0.0.1, which Endpoints validation
refuses, so it keeps no `default/kubernetes` Endpoints (a GET answers 404): the test seeds them as a
kubeadm cluster with one control-plane node has them, one address (the server's reconciler cannot
replace them with its loopback address; the test checks they are unchanged at the end). Node cp1 gets what a kubeadm control-plane node has, the mirror pod of a
kube-apiserver static pod (`kube-system/kube-apiserver-cp1`, annotation kubernetes.io/config.mirror,
label component=kube-apiserver), seeded by the admin because no kubelet here runs the API server
as a static pod (the server itself is a host process). The node steps are simulated (`simnodes`).

- Without spec.rollout.allowApiDowntime, cp1 is Skipped with its reason and left untouched while the
  workers are migrated.
- With it, cp1 goes last, after the workers and the operator's own node, and the API is cut for
  `OUTAGE` seconds right after the write of cp1's record saying its switch Started: every request of
  the operator through the proxy (its record writes, its watches, `/readyz`) is answered 503, as a
  load balancer in front of a stopped kube-apiserver answers, while the simulated switch runs. The
  migration still ends Succeeded, cp1 uncordoned, each node's record consistent and each change made
  once, and the operator's log says how long it waited for /readyz.

Stand-in: the outage is the proxy's 503s, not a kube-apiserver stopped by a switch (`Faults.add`
matches every request through the proxy; the admin's requests and the simulated kubelet's go
straight to the server and are not cut).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.apirequests.faults import RequestRecord

from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepState
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.realapi import RealCluster
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.timeout(240)]

#: How long the API stays cut after cp1's switch starts.
OUTAGE = 30.0
CONTROL_PLANE = {"node-role.kubernetes.io/control-plane": ""}
NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
#: `default/kubernetes` as the API server of a one-control-plane kubeadm cluster keeps it.
ONE_API_SERVER: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "subsets": [
        {"addresses": [{"ip": "10.0.0.10"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}
    ],
}


def mirror_pod(node_name: str) -> dict[str, Any]:
    """The API's mirror of a kubeadm kube-apiserver static pod on `node_name`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"kube-apiserver-{node_name}",
            "namespace": "kube-system",
            "labels": {"component": "kube-apiserver", "tier": "control-plane"},
            "annotations": {
                "kubernetes.io/config.mirror": "0123456789abcdef",
                "kubernetes.io/config.source": "file",
            },
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.24.17"}],
        },
    }


@pytest.fixture
def fleet(cluster: RealCluster) -> Iterator[RealCluster]:
    cluster.seed([node("w1"), node("w2"), node("cp1", labels=CONTROL_PLANE)])
    cluster.seed([mirror_pod("cp1")])
    assert cluster.get("endpoints", "kubernetes", namespace="default") is None
    cluster.seed([ONE_API_SERVER])
    try:
        yield cluster
        endpoints = cluster.get("endpoints", "kubernetes", namespace="default") or {}
        assert endpoints.get("subsets") == ONE_API_SERVER["subsets"], endpoints
    finally:
        cluster.delete("pods", "kube-apiserver-cp1", namespace="kube-system", grace_period_seconds=0)
        cluster.delete("endpoints", "kubernetes", namespace="default")


def recorded(node_name: str, step: StepId, state: StepState) -> Callable[[RequestRecord], bool]:
    """The write of `node_name`'s NodeMigrationNode status that records its `step` in `state`."""

    def matches(rec: RequestRecord) -> bool:
        if (
            rec.resource != "nodemigrationnodes"
            or rec.subresource != "status"
            or rec.name != f"m.{node_name}"
        ):
            return False
        if not isinstance(rec.body, dict):
            return False
        raw = {k: v for k, v in (rec.body.get("status") or {}).items() if v is not None}
        record = NodeRecord.from_storage({**raw, "name": node_name})
        return record.step == step and record.step_state == state

    return matches


def test_without_the_opt_in_the_only_api_servers_node_is_skipped_with_its_reason_and_untouched(
    fleet: Any, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.05", SHIMSHIFT_NODE_NAME="w2")
    operator.start()
    fleet.seed(migration(rollout={"maxUnavailable": 2}))
    eventually(lambda: status_of(fleet).phase in (Phase.SUCCEEDED, Phase.FAILED), 90, "the end", 0.2)
    status = status_of(fleet)
    assert status.phase == Phase.SUCCEEDED, status
    assert "cp1, skipped: it runs the cluster's only API server" in status.message
    assert "spec.rollout.allowApiDowntime: true" in status.message
    stored = (fleet.get("nodemigrations.shimshift.io", "m") or {})["status"]
    assert (stored["summary"]["succeeded"], stored["summary"]["skipped"]) == (2, 1), stored
    # kept by the CRD's status schema (the real server prunes fields it does not declare)
    assert [n["name"] for n in stored["apiServerNodes"]] == ["cp1"]
    assert "allowApiDowntime: true" in stored["apiServerNodes"][0]["reason"]
    assert {r.name: r.phase for r in status.nodes} == {"w1": NodePhase.SUCCEEDED, "w2": NodePhase.SUCCEEDED}
    assert read_state(sim_dir, "cp1")["changes"] == {}  # never probed, never changed
    cp1 = fleet.get("nodes", "cp1") or {}
    assert not cp1["spec"].get("unschedulable")
    assert cp1["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert fleet.get("nodemigrationnodes.shimshift.io", "m.cp1") is None


def test_with_the_opt_in_the_api_cut_after_its_switch_is_waited_out_and_the_rollout_succeeds(
    fleet: Any, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.05", SHIMSHIFT_NODE_NAME="w2")
    outage: dict[str, float] = {}
    restored = threading.Event()

    def cut(_: RequestRecord) -> None:
        rule = fleet.faults.add(503, times=None)  # every request through the proxy, /readyz too
        outage["start"] = time.monotonic()

        def restore() -> None:
            if not restored.wait(OUTAGE):
                with fleet.faults._lock:
                    fleet.faults.rules.remove(rule)
                outage["end"] = time.monotonic()
                outage["refused"] = rule.hits
                restored.set()

        threading.Thread(target=restore, daemon=True).start()

    fleet.faults.add_trigger(recorded("cp1", StepId.SWITCH, StepState.STARTED), cut)
    operator.start()
    fleet.seed(migration(rollout={"maxUnavailable": 2, "allowApiDowntime": True}, verify={"timeout": "3m"}))
    try:
        eventually(
            lambda: (
                outage.get("end") is not None
                and status_of(fleet).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED)
            ),
            200,
            "the end",
            0.5,
        )
    finally:
        restored.set()
        fleet.faults.clear()
    status = status_of(fleet)
    assert status.phase == Phase.SUCCEEDED, (status, operator.logs()[-3000:])
    finished = {r.name: r for r in status.nodes}
    assert set(finished) == {"w1", "w2", "cp1"}
    # cp1 last of all: it started once both others had finished (w2 is the operator's own node)
    assert finished["cp1"].started_at >= max(finished["w1"].finished_at, finished["w2"].finished_at)
    assert finished["w2"].started_at >= finished["w1"].finished_at
    for name, record in finished.items():
        assert record.phase == NodePhase.SUCCEEDED and record.last_error is None, record
        assert all(s.state == StepState.DONE for s in record.steps), record.steps
        assert {s.id for s in record.steps} >= {StepId.SWITCH, StepId.VERIFY, StepId.FINISH}
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
        obj = fleet.get("nodes", name) or {}
        assert not obj["spec"].get("unschedulable"), f"{name} left cordoned"
        assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert outage["refused"] > 0, "the operator made no request while the API was cut"
    logs = operator.logs()
    waited = [float(s) for s in re.findall(r"node cp1: the API is ready again after ([0-9.]+)s", logs)]
    assert waited, logs[-3000:]
    readyz = [r for r in fleet.requests if r.path == "/readyz"]
    print(
        f"API cut for {outage['end'] - outage['start']:.1f}s ({outage['refused']} requests answered 503); "
        f"the operator waited {sum(waited):.1f}s for /readyz in {len(waited)} wait(s), "
        f"{len(readyz)} /readyz requests"
    )
    # it waited out the cut, not more than the cut and one poll and a request's retries beyond it
    assert OUTAGE - 5 <= sum(waited) <= OUTAGE + 10, waited
