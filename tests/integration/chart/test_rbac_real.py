"""The operator as the chart's ServiceAccount on the real control plane: RBAC enforced by the API server.

The chart is rendered (its CRDs included) and applied as the admin; the operator runs with a token the
API server mints for the chart's ServiceAccount (TokenRequest), with the Deployment's own arguments, and
plans and then migrates two nodes through a PodDisruptionBudget (simulated node steps; the simulated
kubelet reports the new runtime with the admin's credentials, as a kubelet has its own). The API
server's audit log then shows every answer the account got: none may be 403. With one rule taken out
of the rendered ClusterRole the same run must be refused (a 403 in the audit log, no success), so the
check can fail. Marked e2e: operator + control plane.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.fixtures import audit_events
from testbed.kubeapi.kubectl import Kubectl
from testbed.waiting import wait_until

from shimshift.model.status import MigrationStatus, Phase
from tests.e2e.conftest import migration, node
from tests.unit.chart import helm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VALUES = ["--set", "ssh.privateKey.existingSecret=ssh", "--set", "ssh.knownHosts.existingSecret=known-hosts"]


def _apply_chart(kubectl: Kubectl, tmp_path: Path, drop: tuple[str, str] | None) -> list[dict[str, Any]]:
    rendered = helm.template(*VALUES, include_crds=True)
    assert rendered.returncode == 0, rendered.stderr
    docs = helm.documents(rendered.stdout)
    if drop is not None:
        role = helm.only(docs, "ClusterRole")
        role["rules"] = [
            r
            for r in role["rules"]
            if drop not in {(g, res) for g in r["apiGroups"] for res in r["resources"]}
        ]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    # the Deployment is not applied: its pod would be scheduled onto the migrated nodes (no image runs
    # here); the test runs its container's command itself, with the account's token
    rest = [d for d in docs if d["kind"] not in ("CustomResourceDefinition", "Deployment")]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}
    for part, objects in (("crds", crds), ("chart", [namespace, *rest])):
        manifest = tmp_path / f"{part}.yaml"
        manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        applied = kubectl.run("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        if part == "crds":
            waited = kubectl.run("wait", "--for=condition=Established", "--timeout=30s", "-f", str(manifest))
            assert waited.returncode == 0, waited.stderr
    return docs


def _migrate_as_the_chart_account(
    controlplane: ControlPlane,
    api: RealKubeApi,
    kubectl: Kubectl,
    tmp_path: Path,
    drop: tuple[str, str] | None,
) -> tuple[subprocess.Popen[bytes], Path, str, int]:
    assert controlplane.audit_log is not None
    docs = _apply_chart(kubectl, tmp_path, drop)
    account = helm.only(docs, "ServiceAccount")["metadata"]["name"]
    kubeconfig = controlplane.service_account_kubeconfig(
        tmp_path / "operator.kubeconfig", helm.NAMESPACE, account
    )
    api.seed([node("w1"), node("w2")])
    labels = {"app": "web"}
    api.seed(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            },
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
            },
        ]
    )
    wait_until(
        lambda: (
            (api.must_get("poddisruptionbudgets.policy", "web", "default").get("status") or {}).get(
                "currentHealthy"
            )
            == 2
        ),
        90,
        what="both web pods Ready and counted by the disruption controller",
        interval=0.2,
    )
    container = helm.only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"] if not a.startswith(("--liveness", "--metrics-port"))]
    argv = [
        sys.executable,
        "-m",
        "tests.e2e.run_operator",
        *args,
        "--metrics-port=0",
        "--kubeconfig",
        str(kubeconfig),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{helm.REPO / 'operator'}{os.pathsep}{helm.REPO}",
        "SHIMSHIFT_NAMESPACE": helm.NAMESPACE,
        "SHIMSHIFT_POD_NAME": "shimshift-0",
        "SHIMSHIFT_SIM_DIR": str(tmp_path / "sim"),
        "SHIMSHIFT_SIM_STEP_SECONDS": "0.02",
        "SHIMSHIFT_SIM_KUBELET_KUBECONFIG": str(controlplane.admin_kubeconfig),
    }
    offset = controlplane.audit_log.stat().st_size
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=helm.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path, f"system:serviceaccount:{helm.NAMESPACE}:{account}", offset


def _status(api: RealKubeApi) -> MigrationStatus:
    return MigrationStatus.from_storage(
        (api.get("nodemigrations.shimshift.io", "m") or {}).get("status") or {}
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _answers(controlplane: ControlPlane, user: str, offset: int) -> list[dict[str, Any]]:
    return [
        e
        for e in audit_events(controlplane, offset)
        if e.get("stage") == "ResponseComplete" and (e.get("user") or {}).get("username") == user
    ]


def _summary(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str, int]]:
    return Counter(
        (
            e["verb"],
            (e.get("objectRef") or {}).get("resource", "")
            + "/"
            + (e.get("objectRef") or {}).get("subresource", ""),
            (e.get("objectRef") or {}).get("namespace", ""),
            e["responseStatus"]["code"],
        )
        for e in events
    )


def test_a_migration_as_the_charts_service_account_gets_no_403(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl, tmp_path: Path
) -> None:
    proc, log_path, user, offset = _migrate_as_the_chart_account(
        controlplane, realkube, realkube_kubectl, tmp_path, drop=None
    )
    try:
        realkube.seed(migration(mode="Plan", rollout={"maxUnavailable": 1}))
        wait_until(lambda: _status(realkube).phase == Phase.PLANNED, 90, what="the plan", interval=0.2)
        realkube.patch("nodemigrations.shimshift.io", "m", {"spec": {"mode": "Migrate"}})
        wait_until(
            lambda: _status(realkube).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED),
            120,
            what="the end of the migration",
            interval=0.2,
        )
        assert _status(realkube).phase == Phase.SUCCEEDED, log_path.read_text()[-3000:]
    finally:
        _stop(proc)
    answers = _answers(controlplane, user, offset)
    summary = _summary(answers)
    assert any(k[1] == "pods/eviction" and k[3] == 201 for k in summary), summary
    assert any(k[1].startswith("configmaps") and k[3] in (200, 201) for k in summary), summary
    refused = {k: n for k, n in summary.items() if k[3] == 403}
    assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"


def test_without_the_eviction_rule_the_same_migration_is_refused(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl, tmp_path: Path
) -> None:
    proc, _, user, offset = _migrate_as_the_chart_account(
        controlplane, realkube, realkube_kubectl, tmp_path, drop=("", "pods/eviction")
    )
    try:
        realkube.seed(migration(mode="Migrate", rollout={"maxUnavailable": 1}))

        def refused_eviction() -> bool:
            return any(
                k[1] == "pods/eviction" and k[3] == 403
                for k in _summary(_answers(controlplane, user, offset))
            )

        wait_until(refused_eviction, 120, what="the API server to refuse an eviction with 403", interval=0.5)
        assert _status(realkube).phase != Phase.SUCCEEDED
        assert realkube.list("pods", "default", label_selector="app=web")
    finally:
        _stop(proc)
