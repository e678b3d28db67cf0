"""A migration on the real control plane, the operator running as the chart's ServiceAccount.

test_operator.py's first case (four nodes, two at a time, through a PDB with minAvailable 3) with the
real API server, the real disruption, ReplicaSet and garbage-collector controllers and the real
scheduler deciding what the emulator decides there, and the chart's RBAC enforced: the audit log
must show no 403, evictions and no pod deletions by the operator. The cluster is sampled while the
operator works (cordons at once, Ready web pods that are not terminating).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.kubeapi.kubectl import Kubectl
from testbed.waiting import wait_until

from shimshift.model import keys
from shimshift.model.status import Phase
from tests.e2e.chart_account import apply_chart, start_operator, status
from tests.e2e.conftest import migration, node, web
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")


def _serving(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not pod["metadata"].get("deletionTimestamp")


class Sampler(threading.Thread):
    def __init__(self, api: RealKubeApi) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.stop = threading.Event()
        self.max_cordoned = 0
        self.min_serving = 1_000

    def run(self) -> None:
        while not self.stop.wait(0.05):
            nodes = self.api.list("nodes")
            cordoned = sum(
                1 for n in nodes if keys.CORDONED_BY_ANNOTATION in (n["metadata"].get("annotations") or {})
            )
            self.max_cordoned = max(self.max_cordoned, cordoned)
            pods = self.api.list("pods", "default", label_selector="app=web")
            self.min_serving = min(self.min_serving, sum(_serving(p) for p in pods))


def test_four_nodes_two_at_a_time_through_a_pdb_as_the_charts_service_account(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl, tmp_path: Path
) -> None:
    docs = apply_chart(realkube_kubectl, tmp_path)
    realkube.seed([node(f"w{i}") for i in range(1, 5)])
    realkube.seed(web(replicas=4, min_available=3))

    def counted() -> bool:
        pdb = realkube.must_get("poddisruptionbudgets.policy", "web-pdb", "default")
        return bool((pdb.get("status") or {}).get("currentHealthy") == 4)

    wait_until(counted, 90, what="four web pods Ready and counted by the disruption controller", interval=0.2)
    operator = start_operator(controlplane, docs, tmp_path, step_seconds="0.05")
    sampler = Sampler(realkube)
    sampler.start()
    try:
        realkube.seed(migration(rollout={"maxUnavailable": 2}))
        wait_until(
            lambda: status(realkube).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED),
            180,
            what="the end of the migration",
            interval=0.2,
        )
    finally:
        sampler.stop.set()
        sampler.join(timeout=5)
        operator.stop()
    assert status(realkube).phase == Phase.SUCCEEDED, operator.logs()[-3000:]

    for n in realkube.list("nodes"):
        meta, spec = n["metadata"], n["spec"]
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert not spec.get("unschedulable"), meta["name"]
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert [c["status"] for c in ready] == ["True"], meta["name"]
        assert meta["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
        assert keys.LOCK_ANNOTATION not in (meta.get("annotations") or {})
    assert 0 < sampler.max_cordoned <= 2
    assert sampler.min_serving >= 3, "the PDB's minAvailable was not kept"
    for i in range(1, 5):
        changes = read_state(tmp_path / "sim", f"w{i}")["changes"]
        assert all(changes.get(op) == 1 for op in NODE_CHANGES), changes
    answers = operator.answers()
    assert any(k[1] == "pods/eviction" and k[3] == 201 for k in answers), answers
    assert not [k for k in answers if k[0] == "delete" and k[1] == "pods/"], answers
    refused = {k: n for k, n in answers.items() if k[3] == 403}
    assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"
