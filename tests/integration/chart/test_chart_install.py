"""The chart installs into the testbed's API emulator and into the real control plane, and the API it
installs then works.

We test these aspects, with the real kubectl against testbed.kubeapi and against the real kube-apiserver
(``testbed.controlplane``; each test runs on both, the ``backend`` fixture):
- every object the chart renders is accepted by the API (kubectl apply), and applying it again, as an
  upgrade would, changes nothing;
- the NodeMigration CRD from the chart serves the API: the bundled examples are accepted and listed
  with their printer columns, and an object the schema forbids is rejected;
- `helm install` itself, NOTES included, and `helm uninstall` leaving the CRD in place (keep);
- the Grafana dashboard ConfigMap is accepted and holds the dashboard unchanged.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.controlplane.api import RealKubeApi
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import Kubectl

from tests.unit.chart import helm

pytestmark = pytest.mark.integration

NAMESPACE_DOC = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}


Api = KubeApi | RealKubeApi


@pytest.fixture(params=["emulator", "real"])
def backend(request: pytest.FixtureRequest) -> tuple[Api, Kubectl]:
    """The API emulator or the real control plane, with a kubectl bound to it."""
    if request.param == "emulator":
        return request.getfixturevalue("kubeapi"), request.getfixturevalue("kubeapi_kubectl")
    return request.getfixturevalue("realkube"), request.getfixturevalue("realkube_kubectl")


def apply_chart(kubectl: Kubectl, tmp_path: Path, value_set: str = "secrets-from-values") -> str:
    """kubectl apply of the rendered chart. Its CRDs go first and are waited for: a real API server
    serves a custom resource (the chart's ClusterKopfPeering) only once its CRD is established."""
    docs = list(yaml.safe_load_all(helm.rendered_text(value_set)))
    crds = [d for d in docs if d and d["kind"] == "CustomResourceDefinition"]
    rest = [NAMESPACE_DOC, *(d for d in docs if d and d["kind"] != "CustomResourceDefinition")]
    output = ""
    for part, objects in (("crds", crds), ("chart", rest)):
        manifest = tmp_path / f"{part}.yaml"
        manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        result = kubectl.run("apply", "-f", str(manifest))
        assert result.returncode == 0, result.stderr
        output += result.stdout
        if part == "crds":
            names = [f"crd/{d['metadata']['name']}" for d in crds]
            waited = kubectl.run("wait", "--for=condition=Established", "--timeout=30s", *names)
            assert waited.returncode == 0, waited.stderr
    return output


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    result = kubectl.run("get", *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_every_rendered_object_is_accepted_and_reapplying_changes_nothing(
    backend: tuple[Api, Kubectl], tmp_path: Path
) -> None:
    kubectl = backend[1]
    first = apply_chart(kubectl, tmp_path)
    rendered = helm.rendered("secrets-from-values")
    # kopf's peering CRD may exist already (the emulator pre-installs it, as other kopf operators would).
    # ``first`` counts what the apply created or configured, the CRDs and then the rest
    assert first.count(" created") + first.count(" configured") == len(rendered) + 1  # + the namespace
    for doc in rendered:
        meta = doc["metadata"]
        kind = doc["kind"].lower()
        args = [f"{kind}/{meta['name']}"] + (["-n", meta["namespace"]] if "namespace" in meta else [])
        live = get_json(kubectl, *args)
        if meta["name"] != "clusterkopfpeerings.kopf.dev":  # kopf's CRD, from crds/ (not templated)
            assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == helm.RELEASE
    again = apply_chart(kubectl, tmp_path)
    assert again.count(" unchanged") == len(rendered) + 1, again
    deployment = get_json(kubectl, "deployment", helm.RELEASE, "-n", helm.NAMESPACE)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == helm.RELEASE


def test_the_installed_crd_serves_nodemigrations_with_their_printer_columns(
    backend: tuple[Api, Kubectl], tmp_path: Path
) -> None:
    kubectl = backend[1]
    apply_chart(kubectl, tmp_path)
    crd = get_json(kubectl, "crd", "nodemigrations.shimshift.io")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    examples = helm.REPO / "examples"
    result = kubectl.run("apply", "-f", str(examples / "plan.yaml"))
    assert result.returncode == 0, result.stderr
    name = yaml.safe_load((examples / "plan.yaml").read_text())["metadata"]["name"]
    table = kubectl.run("get", "nm", name)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "MODE", "PHASE", "DONE", "CURRENT", "MESSAGE", "AGE"]
    assert row.split()[:2] == [name, "Plan"]
    # the MESSAGE column is the status's one-line why (e.g. a rollout waiting for its window)
    message = "waiting for window (opens in 3h)"
    patched = kubectl.run(
        "patch",
        "nm",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"message": message}}),
    )
    assert patched.returncode == 0, patched.stderr
    table = kubectl.run("get", "nm", name)
    assert table.returncode == 0, table.stderr
    assert message in table.stdout.splitlines()[1], table.stdout
    stored = get_json(kubectl, "nm", name)
    assert stored["spec"]["rollout"]["maxFailures"] == 0, "the schema's defaults are applied"


def test_the_installed_crd_rejects_what_its_schema_forbids(
    backend: tuple[Api, Kubectl], tmp_path: Path
) -> None:
    kubectl = backend[1]
    apply_chart(kubectl, tmp_path)
    bad = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "bad"},
        "spec": {"mode": "Yolo", "nodeNames": ["n1"]},
    }
    result = kubectl.run("apply", "-f", "-", input=json.dumps(bad))
    assert result.returncode != 0
    assert "spec.mode" in result.stderr


def test_helm_install_and_uninstall_keep_the_crd(backend: tuple[Api, Kubectl], tmp_path: Path) -> None:
    kubeapi = backend[0]
    if importlib.util.find_spec("testbed.kubeapi.protobuf") is None:
        # helm 4 stores its release in a Secret sent as application/vnd.kubernetes.protobuf.
        pytest.skip("this testbed.kubeapi cannot decode protobuf request bodies (helm's release Secret)")
    env = dict(helm.helm_env())
    kubeconfig = str(kubeapi.kubeconfig)
    install = helm.run_helm(
        "install",
        helm.RELEASE,
        str(helm.CHART),
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        helm.NAMESPACE,
        "--create-namespace",
        "--timeout",
        "60s",
        env=env,
    )
    assert install.returncode == 0, install.stderr
    assert "kubectl apply -f -" in install.stdout  # NOTES: what to apply next
    assert kubeapi.get("customresourcedefinitions", "nodemigrations.shimshift.io") is not None
    assert kubeapi.get("clusterkopfpeerings", "shimshift") is not None
    assert kubeapi.get("deployments", helm.RELEASE, helm.NAMESPACE) is not None
    upgrade = helm.run_helm(
        "upgrade",
        helm.RELEASE,
        str(helm.CHART),
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        helm.NAMESPACE,
        "--set",
        "metrics.port=9191",
        env=env,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    deployment = kubeapi.get("deployments", helm.RELEASE, helm.NAMESPACE)
    assert deployment is not None
    assert "--metrics-port=9191" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    uninstall = helm.run_helm(
        "uninstall", helm.RELEASE, "--kubeconfig", kubeconfig, "--namespace", helm.NAMESPACE, env=env
    )
    assert uninstall.returncode == 0, uninstall.stderr
    assert kubeapi.get("customresourcedefinitions", "nodemigrations.shimshift.io") is not None
    assert kubeapi.get("deployments", helm.RELEASE, helm.NAMESPACE) is None


def test_the_dashboard_configmap_is_accepted_and_holds_the_dashboard(
    kubeapi: KubeApi, kubeapi_kubectl: Kubectl, tmp_path: Path
) -> None:
    apply_chart(kubeapi_kubectl, tmp_path, "dashboards-and-rules")
    live = get_json(kubeapi_kubectl, "configmap", f"{helm.RELEASE}-dashboard", "-n", helm.NAMESPACE)
    assert live["metadata"]["labels"]["grafana_dashboard_platform"] == "yes"
    shipped = json.loads((helm.CHART / "files" / "dashboards" / "shimshift.json").read_text())
    assert json.loads(live["data"]["shimshift.json"]) == shipped
