"""No value becomes more than one segment of an API path.

The operator reads Secrets by the names a NodeMigration gives; a name such as
`../../kube-system/secrets/victim` must never reach another namespace's Secret, whatever RBAC says.
The emulator's request log shows what the client really asked for.
"""

from __future__ import annotations

import base64

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import ApiStatusError, Kube
from shimshift.kube.migrations import MIGRATIONS, migration_path
from shimshift.kube.nodes import node_path
from shimshift.kube.paths import segment
from shimshift.kube.pods import pod_path
from shimshift.kube.secrets import read_secret_key
from shimshift.model.errors import KubeError
from tests.integration.kube.conftest import migration

TRAVERSAL = "../../kube-system/secrets/victim"
OPERATOR_NS = "shimshift-system"


def secret(namespace: str, name: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture
def victim(kubeapi: KubeApi) -> KubeApi:
    kubeapi.seed(
        [secret("kube-system", "victim", token="cluster-admin-token"), secret(OPERATOR_NS, "ssh", k="x")]
    )
    return kubeapi


def test_a_traversal_secret_name_never_reads_another_namespaces_secret(victim: KubeApi, kube: Kube) -> None:
    with pytest.raises(KubeError) as info:
        read_secret_key(kube, OPERATOR_NS, TRAVERSAL, "token")
    assert "cluster-admin-token" not in str(info.value)
    assert TRAVERSAL in str(info.value)
    assert not victim.requests.filter(namespace="kube-system"), "a request left the operator's namespace"
    assert not victim.requests.filter(resource="secrets"), "a path was sent at all"


@pytest.mark.parametrize("name", ["victim?x=1", "victim#x", "victim x", "victim;x"])
def test_a_secret_name_with_url_syntax_is_one_quoted_segment_and_names_no_other_secret(
    victim: KubeApi, kube: Kube, name: str
) -> None:
    victim.seed(secret(OPERATOR_NS, "victim", token="operator-namespace-token"))
    with pytest.raises(KubeError, match="does not exist"):
        read_secret_key(kube, OPERATOR_NS, name, "token")
    (record,) = victim.requests.filter(resource="secrets")
    assert (record.namespace, record.name, record.status) == (OPERATOR_NS, name, 404)


def test_the_client_refuses_any_path_with_a_dot_segment(victim: KubeApi, kube: Kube) -> None:
    with pytest.raises(KubeError, match="dot segment"):
        kube.request("GET", f"/api/v1/namespaces/{OPERATOR_NS}/secrets/../../kube-system/secrets/victim")
    assert not victim.requests.filter(namespace="kube-system")


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a%2Fb"])
def test_a_value_that_cannot_be_a_name_is_refused_as_a_path_segment(value: str) -> None:
    with pytest.raises(KubeError, match="not a Kubernetes object name"):
        segment(value, "Secret name")


def test_every_path_builder_quotes_its_values() -> None:
    assert segment("a b?") == "a%20b%3F"
    assert node_path("n#1").endswith("/nodes/n%231")
    assert pod_path("ns x", "p?").endswith("/namespaces/ns%20x/pods/p%3F")
    assert migration_path("m;1").endswith("/nodemigrations/m%3B1")
    for builder, bad in ((node_path, "../x"), (migration_path, "..")):
        with pytest.raises(KubeError):
            builder(bad)


def test_the_api_server_refuses_a_nodemigration_whose_secret_name_is_a_path(
    kubeapi: KubeApi, kube: Kube, crd: dict[str, object]
) -> None:
    body = migration("evil")
    body["spec"]["ssh"]["privateKeySecretRef"] = {"name": TRAVERSAL}
    with pytest.raises(ApiStatusError) as info:
        kube.request("POST", MIGRATIONS, body=body)
    assert info.value.status == 422
    assert "spec.ssh.privateKeySecretRef.name" in str(info.value)
    assert kubeapi.get("nodemigrations.shimshift.io", "evil") is None
