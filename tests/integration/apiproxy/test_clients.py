"""kubectl and the official client work through the proxy (TLS both ways), and the proxy logs each
request exactly as the emulator itself does."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from unittest.mock import ANY

import kubernetes
import pytest
import yaml
from testbed.apiproxy import FaultProxy, ProxiedApi
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import find_kubectl

pytestmark = pytest.mark.integration

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  mode: fast
"""


def kubectl(proxy: FaultProxy, tmp_path: Path, *args: str, stdin: str | None = None) -> str:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("no kubectl: run scripts/setup (installs .tools/bin/kubectl)")
    done = subprocess.run(
        [binary, f"--kubeconfig={proxy.kubeconfig}", f"--cache-dir={tmp_path / 'cache'}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_gets_applies_and_cordons_through_the_proxy(
    proxied: ProxiedApi, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxied.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}})
    assert kubectl(proxy, tmp_path, "get", "nodes", "-o", "name").split() == ["node/n1"]
    assert "configmap/settings created" in kubectl(proxy, tmp_path, "apply", "-f", "-", stdin=CONFIGMAP)
    assert kubectl(proxy, tmp_path, "cordon", "n1").strip() == "node/n1 cordoned"

    assert proxied.must_get("configmaps", "settings", "default")["data"] == {"mode": "fast"}
    assert proxied.must_get("nodes", "n1")["spec"]["unschedulable"] is True
    cordon = proxy.requests.filter(method="PATCH", resource="nodes", name="n1")
    assert len(cordon) == 1 and cordon[0].status == 200, cordon
    assert cordon[0].body == {"spec": {"unschedulable": True}}
    assert cordon[0].user_agent.startswith("kubectl/")
    # discovery went through the proxy too, and every request was answered by the emulator
    assert proxy.requests.filter(resource="") and all(r.status in (200, 201, 404) for r in proxy.requests)


def test_the_proxy_logs_the_same_record_the_emulator_does(
    proxied: ProxiedApi, upstream: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    upstream.requests.clear()
    core.create_namespaced_config_map(
        "default",
        kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="cm"), data={"a": "1"}),
    )
    core.patch_namespaced_config_map("cm", "default", {"data": {"b": "2"}})
    core.list_namespaced_config_map("default", label_selector="x!=y", limit=5)
    core.read_namespaced_config_map("cm", "default")
    core.delete_namespaced_config_map("cm", "default")

    def fields(records: list[object]) -> list[tuple[object, ...]]:
        keys = ("method", "path", "query", "verb", "group", "version", "resource", "subresource")
        more = ("namespace", "name", "content_type", "body", "status", "user_agent")
        return [tuple(getattr(r, k) for k in (*keys, *more)) for r in records]

    through_proxy = fields(list(proxied.requests))
    assert len(through_proxy) == 5
    assert through_proxy == fields(list(upstream.requests))
    assert [r.verb for r in proxied.requests] == ["create", "patch", "list", "get", "delete"]


def test_the_proxy_kubeconfig_keeps_the_users_and_trusts_only_the_proxy(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "sa.kubeconfig"
    source.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: sa\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', certificate-authority: ca.crt}}]\n"
        "users: [{name: sa, user: {token: abc.def}}, {name: admin, user: {client-certificate: a.crt}}]\n"
        "contexts: [{name: sa, context: {cluster: c, user: sa, namespace: kube-system}}]\n"
    )
    doc = yaml.safe_load(proxy.kubeconfig_for(source).read_text())
    assert doc["users"] == [
        {"name": "sa", "user": {"token": "abc.def"}},
        {"name": "admin", "user": {"client-certificate": str(tmp_path / "a.crt")}},
    ]
    assert doc["contexts"] == [
        {"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": "kube-system"}}
    ]
    cluster = doc["clusters"][0]["cluster"]
    assert cluster == {"server": proxy.url, "certificate-authority-data": ANY}
    assert base64.b64decode(cluster["certificate-authority-data"]) == proxy.ca_cert.read_bytes()
