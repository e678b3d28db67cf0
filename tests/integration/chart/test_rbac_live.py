"""The real operator, started the way the chart starts it, makes no API request the chart's RBAC denies.

The static check (tests/unit/chart/test_rbac.py) reads the code; this one watches it run. The chart is
applied to the testbed's API emulator, `shimshift run` is started with the Deployment's own arguments
and environment (simulated node steps stand in for SSH, tests/e2e/simnodes.py, through the tests'
launcher tests/e2e/run_operator.py), a NodeMigration
plans (its report ConfigMap) and then migrates two nodes through a PodDisruptionBudget, and every
request the emulator logged from the
operator (kopf included) is checked against the rendered ClusterRole and Role, namespace by namespace.
It lives with the chart tests because it tests the chart; it is marked e2e (operator + emulator).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import Kubectl

from shimshift.model.status import Phase
from tests.e2e.conftest import eventually, migration, node, status_of
from tests.unit.chart import helm

pytestmark = pytest.mark.e2e

VALUES = ["--set", "ssh.privateKey.existingSecret=ssh", "--set", "ssh.knownHosts.existingSecret=known-hosts"]
# Made by the simulated node (it reports the new runtime on the Node's status, as a kubelet would), not
# by the operator: tests/e2e/simnodes.py, its only API request.
SIMULATED_KUBELET = {("", "nodes/status", "patch")}


def rules(doc: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or "*") a rendered Role/ClusterRole allows."""
    out = set()
    for rule in doc["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames", ["*"]):
                        out.add((group, resource, verb, name))
    return out


def allowed(cluster_rules: set[Any], role_rules: set[Any], rec: Any) -> bool:
    resource = rec.resource + (f"/{rec.subresource}" if rec.subresource else "")
    wanted = [(rec.group, resource, rec.verb, "*")]
    if rec.name and rec.verb in ("get", "update", "patch", "delete"):
        wanted.append((rec.group, resource, rec.verb, rec.name))
    if any(w in cluster_rules for w in wanted):
        return True
    return rec.namespace == helm.NAMESPACE and any(w in role_rules for w in wanted)


def test_every_request_the_operator_makes_is_allowed_by_the_charts_rbac(
    kubeapi: KubeApi, kubeapi_kubectl: Kubectl, tmp_path: Path
) -> None:
    rendered = helm.template(*VALUES)
    assert rendered.returncode == 0, rendered.stderr
    docs = helm.documents(rendered.stdout)
    manifest = tmp_path / "chart.yaml"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}
    manifest.write_text(yaml.safe_dump(namespace) + "---\n" + rendered.stdout)
    applied = kubeapi_kubectl.run("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    kubeapi.seed([node("w1"), node("w2")])
    labels = {"app": "web"}
    kubeapi.seed(
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

    container = helm.only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    # The chart's arguments, minus the one `shimshift run` does not serve yet (see test_operator_image).
    args = [a for a in container["args"] if not a.startswith(("--liveness", "--metrics-port"))]
    # The tests' launcher: `shimshift run` with the simulated node steps (tests/e2e/run_operator.py).
    argv = [sys.executable, "-m", "tests.e2e.run_operator", *args, "--metrics-port=0"]
    argv += ["--kubeconfig", str(kubeapi.kubeconfig)]
    env = {
        **os.environ,
        "PYTHONPATH": f"{helm.REPO / 'operator'}{os.pathsep}{helm.REPO}",  # this tree's shimshift
        "SHIMSHIFT_NAMESPACE": helm.NAMESPACE,  # the Deployment's downward API value
        "SHIMSHIFT_POD_NAME": "shimshift-0",
        "SHIMSHIFT_SIM_DIR": str(tmp_path / "sim"),
        "SHIMSHIFT_SIM_STEP_SECONDS": "0.02",
    }
    log_path = tmp_path / "operator.log"
    before = len(kubeapi.requests)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=helm.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Plan first (facts, the report ConfigMap in the operator's namespace), then Migrate.
        kubeapi.seed(migration(mode="Plan", rollout={"maxUnavailable": 1}))
        eventually(lambda: status_of(kubeapi).phase == Phase.PLANNED, 60, "the plan")
        assert status_of(kubeapi).report_config_map == f"{helm.NAMESPACE}/m-plan"
        kubeapi.patch("nodemigrations.shimshift.io", "m", {"spec": {"mode": "Migrate"}})
        eventually(
            lambda: status_of(kubeapi).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED), 90, "the end"
        )
        assert status_of(kubeapi).phase == Phase.SUCCEEDED, log_path.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    cluster_rules = rules(helm.only(docs, "ClusterRole"))
    role_rules = rules(helm.only(docs, "Role"))
    requests = [r for r in list(kubeapi.requests)[before:] if r.verb]
    assert any(r.resource == "pods" and r.subresource == "eviction" for r in requests), "no drain happened"
    assert any(r.resource == "configmaps" for r in requests), "no plan report was written"
    denied = sorted(
        {
            (r.group, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.verb, r.namespace)
            for r in requests
            if not allowed(cluster_rules, role_rules, r)
        }
    )
    unexpected = [d for d in denied if d[:3] not in SIMULATED_KUBELET]
    assert unexpected == [], "the chart's RBAC would deny these"
