"""helm 4 (the static one from scripts/setup) installs, upgrades and uninstalls a chart on the emulator.

helm stores releases in Secrets written with protobuf bodies and applies manifests with server-side
apply, so this covers both paths.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from testbed.kubeapi.kubectl import REPO
from testbed.kubeapi.standalone import standalone_server

pytestmark = pytest.mark.integration

HELM = REPO / ".tools" / "bin" / "helm"
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\ngreeting: hello\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    ),
    "templates/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n"
        "  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: probe}}\n  template:\n"
        "    metadata: {labels: {app: probe}}\n    spec: {containers: [{name: c, image: probe}]}\n"
    ),
}


@pytest.fixture
def helm(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip("no .tools/bin/helm (scripts/setup installs it)")
    kubeconfig = tmp_path / "kubeconfig"
    node = tmp_path / "node.yaml"
    node.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n"
        "status: {conditions: [{type: Ready, status: 'True'}]}\n"
    )
    chart = tmp_path / "chart"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    with standalone_server(kubeconfig, "--time-factor", "0.05", "--seed", str(node)):
        yield chart, env


def run_helm(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_helm_installs_upgrades_and_uninstalls_a_release(helm: tuple[Path, dict[str, str]]) -> None:
    chart, env = helm
    run_helm(env, "install", "demo", str(chart), "-n", "default", "--wait", "--timeout", "30s")
    client = kubernetes.config.new_client_from_config(env["KUBECONFIG"])
    with client:
        core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
        assert core.read_namespaced_config_map("demo-config", "default").data == {"greeting": "hello"}
        assert "deployed" in run_helm(env, "list", "-n", "default")
        release = core.read_namespaced_secret("sh.helm.release.v1.demo.v1", "default")
        assert release.type == "helm.sh/release.v1" and release.metadata.labels["status"] == "deployed"
        run_helm(
            env, "upgrade", "demo", str(chart), "-n", "default", "--set", "replicas=2", "--set", "greeting=hi"
        )
        assert apps.read_namespaced_deployment("demo", "default").spec.replicas == 2
        assert core.read_namespaced_config_map("demo-config", "default").data == {"greeting": "hi"}
        run_helm(env, "uninstall", "demo", "-n", "default")
        assert "demo" not in run_helm(env, "list", "-n", "default")
        assert not core.list_namespaced_config_map(
            "default", field_selector="metadata.name=demo-config"
        ).items
