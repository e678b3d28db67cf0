"""The Helm chart renders valid, hardened manifests for the default and several non-default value sets.

We test these aspects:
- `helm lint --strict` passes and `helm template` renders for every value set;
- every rendered manifest passes `kubernetes-validate --strict` against the oldest and newest schemas
  it ships (1.25 and 1.37), and the custom resources the chart renders match their CRDs;
- the operator pod is hardened and its probes and arguments agree with the ports in values;
- value combinations that would deploy something unsafe or broken are refused with a clear message.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart import helm

# The oldest and newest Kubernetes schemas kubernetes-validate ships. The APIs the chart uses exist
# since 1.19, so the 1.20-1.23 clusters that still run dockershim accept them too.
KUBERNETES_VERSIONS = ("1.25", "1.37")

# Kinds kubernetes-validate has no schema for, checked in this module against their CRDs instead.
CUSTOM_KINDS = {"ClusterKopfPeering", "ServiceMonitor"}


@pytest.mark.parametrize("value_set", helm.value_sets())
def test_helm_lint_passes_strictly(value_set: str) -> None:
    result = helm.run_helm("lint", "--strict", str(helm.CHART), *helm.value_args(value_set))
    assert result.returncode == 0, result.stdout + result.stderr


@cache
def validation_output(kubernetes_version: str) -> dict[str, list[str]]:
    """`kubernetes-validate --strict` over every value set's rendering in one run: lines per value set."""
    workdir = Path(tempfile.mkdtemp(prefix="shimshift-validate-"))
    try:
        files = []
        for value_set in helm.value_sets():
            files.append(workdir / f"{value_set}.yaml")
            files[-1].write_text(helm.rendered_text(value_set))
        result = helm.kubernetes_validate(files, kubernetes_version)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines: dict[str, list[str]] = {v: [] for v in helm.value_sets()}
    for line in (result.stdout + result.stderr).splitlines():
        for value_set in lines:
            if f"{workdir}/{value_set}.yaml " in line:
                lines[value_set].append(line)
    return lines


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", helm.value_sets())
def test_every_rendered_manifest_passes_kubernetes_validate_strict(
    value_set: str, kubernetes_version: str
) -> None:
    lines = validation_output(kubernetes_version)[value_set]
    output = "\n".join(lines)
    assert not [line for line in lines if not line.startswith(("INFO", "WARN"))], output
    docs = helm.rendered(value_set)
    passed = [line for line in lines if line.startswith("INFO") and " passed for " in line]
    assert len(passed) == len([d for d in docs if d["kind"] not in CUSTOM_KINDS]), output
    assert all(f"against version {kubernetes_version}" in line for line in passed), output
    unknown = [line for line in lines if line.startswith("WARN")]
    assert all(any(f"kind {kind} " in line for kind in CUSTOM_KINDS) for line in unknown), output


@pytest.mark.parametrize("value_set", helm.value_sets())
def test_cluster_kopf_peering_objects_match_the_crd_the_chart_ships(value_set: str) -> None:
    crd = yaml.safe_load((helm.CHART / "crds" / "clusterkopfpeering.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in helm.rendered(value_set):
        if doc["kind"] == "ClusterKopfPeering":
            assert doc["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
            jsonschema.validate(doc, schema)


def test_service_monitor_scrapes_the_metrics_service_on_its_named_port() -> None:
    docs = helm.rendered("existing-secrets-servicemonitor")
    monitor = helm.only(docs, "ServiceMonitor")
    service = helm.only(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "namespaceSelector", "endpoints"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [helm.NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = helm.only(docs, "Deployment")
    container: dict[str, Any]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("value_set", helm.value_sets())
def test_operator_pod_is_hardened(value_set: str) -> None:
    docs = helm.rendered(value_set)
    pod = helm.only(docs, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in sc["capabilities"]
    assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True
    # The only writable path is the /tmp emptyDir.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "memory" in container["resources"]["limits"]


def test_probes_and_arguments_agree_with_the_ports_in_values() -> None:
    container = operator_container(helm.rendered("existing-secrets-servicemonitor"))
    args = container["args"]
    assert args[0] == "run"
    assert "--liveness=http://0.0.0.0:8181/healthz" in args
    assert "--metrics-port=9191" in args
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8181, "metrics": 9191}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_default_operator_runs_with_kopf_peering_and_json_logs() -> None:
    container = operator_container(helm.rendered("default"))
    assert container["args"] == [
        "run",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--log-format=json",
        "--peering=shimshift",
        "--metrics-port=9090",
    ]
    assert container["image"] == "shimshift:0.1.0"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "SHIMSHIFT_NAMESPACE": "metadata.namespace",
        "SHIMSHIFT_POD_NAME": "metadata.name",
        "SHIMSHIFT_NODE_NAME": "spec.nodeName",
    }
    deployment = helm.only(helm.rendered("default"), "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    peering = helm.only(helm.rendered("default"), "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "shimshift"


def test_non_default_values_reach_the_pod() -> None:
    docs = helm.rendered("pinned-and-scheduled")
    deployment = helm.only(docs, "Deployment", "nm-operator")
    pod = deployment["spec"]["template"]
    container = operator_container(docs)
    assert container["image"] == "registry.example.com/platform/shimshift@sha256:" + "0123456789abcdef" * 4
    assert container["imagePullPolicy"] == "Always"
    assert container["args"][-1] == "--dev-note=x"
    assert {"--verbose", "--log-format=plain"} <= set(container["args"])
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"} in container["env"]
    assert pod["spec"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"] == {
        "shimshift.io/disposable-empty-dirs": "tmp",
        "example.com/team": "platform",
    }
    assert pod["metadata"]["labels"]["example.com/tier"] == "ops"
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}}]


def test_peering_name_and_metrics_port_follow_values_and_off_means_off() -> None:
    named = operator_container(helm.rendered("secrets-from-values"))["args"]
    assert "--peering=shimshift-prod" in named
    assert helm.only(helm.rendered("secrets-from-values"), "ClusterKopfPeering")["metadata"]["name"] == (
        "shimshift-prod"
    )
    minimal_docs = helm.rendered("minimal-managed-elsewhere")
    minimal = operator_container(minimal_docs)
    # Without --peering `shimshift run` is standalone; metrics port 0 turns /metrics off (the operator's
    # own default would otherwise collide with the health port).
    assert not any(a.startswith("--peering") for a in minimal["args"])
    assert "--metrics-port=0" in minimal["args"]
    assert "livenessProbe" not in minimal and "readinessProbe" not in minimal
    assert not any(a.startswith("--liveness") for a in minimal["args"]), "no probes, no health endpoint"
    assert not [d for d in minimal_docs if d["kind"] in ("ClusterKopfPeering", "Service", "ServiceAccount")]
    pod = helm.only(minimal_docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-shimshift"
    assert helm.only(minimal_docs, "Deployment")["spec"]["replicas"] == 0


def test_metrics_and_health_ports_never_collide() -> None:
    result = helm.template("--set", "metrics.port=8080")
    assert result.returncode != 0
    assert "metrics.port and healthPort must differ" in result.stderr


def test_ssh_secrets_created_from_values_hold_exactly_the_given_content() -> None:
    docs = helm.rendered("secrets-from-values")
    values = yaml.safe_load((helm.VALUE_SETS_DIR / "secrets-from-values.yaml").read_text())
    key = helm.only(docs, "Secret", "shimshift-ssh")
    hosts = helm.only(docs, "Secret", "shimshift-known-hosts")
    assert base64.b64decode(key["data"]["ssh-privatekey"]).decode() == values["ssh"]["privateKey"]["value"]
    assert base64.b64decode(hosts["data"]["hosts"]).decode() == values["ssh"]["knownHosts"]["value"]


def test_hot_standbys_render_with_peering() -> None:
    result = helm.template("--set", "replicaCount=2")
    assert result.returncode == 0, result.stderr
    deployment = helm.only(helm.documents(result.stdout), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(a.startswith("--peering=") for a in args), args


def test_no_secret_is_created_when_existing_ones_are_named() -> None:
    assert not [d for d in helm.rendered("existing-secrets-servicemonitor") if d["kind"] == "Secret"]
    assert not [d for d in helm.rendered("default") if d["kind"] == "Secret"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # standbys are safe only through kopf peering (and each NodeMigration's lease)
        (["--set", "replicaCount=2", "--set", "peering.enabled=false"], "replicaCount above 1 needs peering"),
        (["--set", "replicaCount=4"], "replicaCount"),
        (
            ["--set", "ssh.privateKey.existingSecret=a", "--set", "ssh.privateKey.value=b"],
            "set ssh.privateKey.existingSecret or ssh.privateKey.value, not both",
        ),
        (
            ["--set", "ssh.knownHosts.existingSecret=a", "--set", "ssh.knownHosts.value=b"],
            "set ssh.knownHosts.existingSecret or ssh.knownHosts.value, not both",
        ),
        (
            ["--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"],
            "metrics.serviceMonitor.enabled needs metrics.enabled=true",
        ),
        (
            ["--set", "serviceAccount.create=false"],
            "serviceAccount.name must name an existing ServiceAccount",
        ),
        (["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "image.digest=latest"], "digest"),
        (["--set-string", "metrics.port=http"], "metrics"),
    ],
)
def test_unsafe_or_misspelt_values_are_refused_with_a_message_naming_them(
    args: list[str], message: str
) -> None:
    result = helm.template(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_chart_installs_from_the_oldest_api_server_the_operator_speaks_to() -> None:
    # The operator uses policy/v1 PodDisruptionBudgets (1.21+) and Evictions (1.22+).
    assert helm.template("--kube-version", "1.22.0").returncode == 0
    refused = helm.template("--kube-version", "1.21.14")
    assert refused.returncode != 0
    assert "requires kubeVersion: >=1.22.0-0" in refused.stderr
