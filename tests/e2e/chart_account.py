"""The operator as the chart's ServiceAccount on the real control plane (``testbed.controlplane``).

The chart is rendered (its CRDs included) and applied as the admin, without its Deployment (its pod
would land on the nodes being migrated; no image runs here): the tests start that container's command
themselves, through the tests' launcher (simulated node steps, tests/e2e/run_operator.py), with a token
the API server mints for the chart's ServiceAccount. The simulated kubelet reports the new runtime with
the admin's credentials, as a kubelet has its own. The API server's audit log then holds every answer
the account got (``answers``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.fixtures import audit_events
from testbed.kubeapi.kubectl import Kubectl

from shimshift.model.status import MigrationStatus
from tests.unit.chart import helm

VALUES = ["--set", "ssh.privateKey.existingSecret=ssh", "--set", "ssh.knownHosts.existingSecret=known-hosts"]
#: (verb, resource/subresource, namespace, response code) of one audited answer
Answer = tuple[str, str, str, int]


def apply_chart(
    kubectl: Kubectl,
    tmp_path: Path,
    drop: tuple[str, str] | None = None,
    values: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Apply the rendered chart (CRDs first, waited for), with ``values`` (helm arguments) on top of the
    tests' own, without one ClusterRole rule's (apiGroup, resource) when ``drop`` names it; returns the
    rendered documents."""
    rendered = helm.template(*VALUES, *values, include_crds=True)
    assert rendered.returncode == 0, rendered.stderr
    docs = helm.documents(rendered.stdout)
    if drop is not None:
        role = helm.only(docs, "ClusterRole")
        kept = [
            r for r in role["rules"] if drop not in {(g, x) for g in r["apiGroups"] for x in r["resources"]}
        ]
        assert len(kept) < len(role["rules"]), f"no rule of the ClusterRole grants {drop}"
        role["rules"] = kept
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
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


@dataclass
class ChartOperator:
    """The operator process running as the chart's ServiceAccount."""

    plane: ControlPlane
    proc: subprocess.Popen[bytes]
    log: Path
    user: str
    audit_offset: int

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def answers(self) -> Counter[Answer]:
        """How often the account got each (verb, resource/subresource, namespace, code) since it started."""
        counted: Counter[Answer] = Counter()
        for e in audit_events(self.plane, self.audit_offset):
            if e.get("stage") != "ResponseComplete" or (e.get("user") or {}).get("username") != self.user:
                continue
            ref = e.get("objectRef") or {}
            resource = ref.get("resource", "") + "/" + ref.get("subresource", "")
            counted[(e["verb"], resource, ref.get("namespace", ""), e["responseStatus"]["code"])] += 1
        return counted


def start_operator(
    plane: ControlPlane, docs: list[dict[str, Any]], tmp_path: Path, step_seconds: str = "0.02"
) -> ChartOperator:
    """Start the chart's container command as the chart's ServiceAccount (a TokenRequest token)."""
    assert plane.audit_log is not None, "the control plane must audit (the controlplane fixture's does)"
    account = helm.only(docs, "ServiceAccount")["metadata"]["name"]
    kubeconfig = plane.service_account_kubeconfig(tmp_path / "operator.kubeconfig", helm.NAMESPACE, account)
    container = helm.only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"] if not a.startswith(("--liveness", "--metrics-port"))]
    argv = [sys.executable, "-m", "tests.e2e.run_operator", *args, "--metrics-port=0"]
    env = {
        **os.environ,
        "PYTHONPATH": f"{helm.REPO / 'operator'}{os.pathsep}{helm.REPO}",  # this tree's shimshift
        "SHIMSHIFT_NAMESPACE": helm.NAMESPACE,  # the Deployment's downward API value
        "SHIMSHIFT_POD_NAME": "shimshift-0",
        "SHIMSHIFT_SIM_DIR": str(tmp_path / "sim"),
        "SHIMSHIFT_SIM_STEP_SECONDS": step_seconds,
        "SHIMSHIFT_SIM_KUBELET_KUBECONFIG": str(plane.admin_kubeconfig),
    }
    offset = plane.audit_log.stat().st_size
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--kubeconfig", str(kubeconfig)],
            cwd=helm.REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ChartOperator(plane, proc, log_path, f"system:serviceaccount:{helm.NAMESPACE}:{account}", offset)


def status(api: RealKubeApi, name: str = "m") -> MigrationStatus:
    return MigrationStatus.from_storage(
        (api.get("nodemigrations.shimshift.io", name) or {}).get("status") or {}
    )
