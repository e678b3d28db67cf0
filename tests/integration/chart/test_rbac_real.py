"""The operator as the chart's ServiceAccount on the real control plane: RBAC enforced by the API server.

The chart is applied and the operator runs as its ServiceAccount (tests/e2e/chart_account.py); it plans
and then migrates two nodes through a PodDisruptionBudget (simulated node steps). The API server's
audit log then shows every answer the account got: none may be 403. With one rule taken out of the
rendered ClusterRole the same run must be refused (a 403 in the audit log, no success), so the check
can fail. Marked e2e: operator + control plane.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.kubeapi.kubectl import Kubectl
from testbed.waiting import wait_until

from shimshift.model.status import Phase
from tests.e2e.chart_account import apply_chart, start_operator, status
from tests.e2e.conftest import migration, node, web
from tests.unit.chart import helm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _two_nodes_and_web(api: RealKubeApi) -> None:
    api.seed([node("w1"), node("w2")])
    api.seed(web(replicas=2, min_available=1))

    def counted() -> bool:
        pdb = api.must_get("poddisruptionbudgets.policy", "web-pdb", "default")
        return bool((pdb.get("status") or {}).get("currentHealthy") == 2)

    wait_until(counted, 90, what="both web pods Ready and counted by the disruption controller", interval=0.2)


def test_a_migration_as_the_charts_service_account_gets_no_403(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl, tmp_path: Path
) -> None:
    docs = apply_chart(realkube_kubectl, tmp_path)
    _two_nodes_and_web(realkube)
    operator = start_operator(controlplane, docs, tmp_path)
    try:
        realkube.seed(migration(mode="Plan", rollout={"maxUnavailable": 1}))
        wait_until(lambda: status(realkube).phase == Phase.PLANNED, 90, what="the plan", interval=0.2)
        realkube.patch("nodemigrations.shimshift.io", "m", {"spec": {"mode": "Migrate"}})
        wait_until(
            lambda: status(realkube).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED),
            120,
            what="the end of the migration",
            interval=0.2,
        )
        assert status(realkube).phase == Phase.SUCCEEDED, operator.logs()[-3000:]
    finally:
        operator.stop()
    answers = operator.answers()
    assert any(k[1] == "pods/eviction" and k[3] == 201 for k in answers), answers
    # the plan read the cluster's RuntimeClasses (node.k8s.io), which the chart lets it list
    assert any(k[:2] == ("list", "runtimeclasses/") and k[3] == 200 for k in answers), answers
    assert any(k[1].startswith("configmaps/") and k[3] in (200, 201) for k in answers), answers
    refused = {k: n for k, n in answers.items() if k[3] == 403}
    assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"
    # every Event the operator posts about a NodeMigration or a Node is accepted in its own namespace
    events = {k: n for k, n in answers.items() if k[1] == "events/"}
    assert any(k[3] == 201 and k[2] == helm.NAMESPACE for k in events), answers
    assert all(k[3] == 201 for k in events), f"Events refused: {events}"


def test_without_the_eviction_rule_the_same_migration_is_refused(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl, tmp_path: Path
) -> None:
    docs = apply_chart(realkube_kubectl, tmp_path, drop=("", "pods/eviction"))
    _two_nodes_and_web(realkube)
    operator = start_operator(controlplane, docs, tmp_path)
    try:
        realkube.seed(migration(mode="Migrate", rollout={"maxUnavailable": 1}))

        def refused_eviction() -> bool:
            return any(k[1] == "pods/eviction" and k[3] == 403 for k in operator.answers())

        wait_until(refused_eviction, 120, what="the API server to refuse an eviction with 403", interval=0.5)
        assert status(realkube).phase != Phase.SUCCEEDED
        assert len(realkube.list("pods", "default", label_selector="app=web")) == 2
    finally:
        operator.stop()
