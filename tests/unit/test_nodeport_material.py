"""`shimshift.entry.nodeport.registry_material`: the registry Secrets as the operator reads them (Plan and
Migrate modes, `shimshift plan --probe-namespace`): never an SSH Secret, a missing one recorded against
its registry, a transient API error raised."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from shimshift.entry.nodeport import registry_material
from shimshift.kube.api import ApiStatusError, NotFound
from shimshift.model import parse_nodemigration
from shimshift.model.spec import NotificationSettings, SecretKeyRef
from shimshift.resources import load_crd
from tests import pki

HOST = "registry.example.com"


class FakeKube:
    def __init__(self, secrets: dict[str, dict[str, str]], fail: int = 0) -> None:
        self.secrets = secrets
        self.fail = fail
        self.paths: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.paths.append(path)
        if self.fail:
            raise ApiStatusError(self.fail, "ServiceUnavailable", "try later", what=path, body={})
        name = path.rsplit("/", 1)[1]
        if name not in self.secrets:
            raise NotFound(404, "NotFound", f'secrets "{name}" not found', what=path, body={})
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        return {"data": data}


def spec(registry: dict[str, Any]) -> Any:
    body = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "m"},
        "spec": {
            "nodeNames": ["n1"],
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
            "containerd": {"registries": [{"host": HOST, **registry}]},
        },
    }
    return parse_nodemigration(body, load_crd()).spec


def bypassing_validation(field: str) -> Any:
    """A spec whose registry names an SSH Secret, past validation (as a bug or a future path could)."""
    s = spec({})
    reg = s.containerd.registries[0]
    if field == "caSecretRef":
        reg = replace(reg, ca_secret=SecretKeyRef("ssh", "ssh-privatekey"))
    else:
        reg = replace(reg, client_cert_secret="known-hosts")
    return replace(s, containerd=replace(s.containerd, registries=(reg,)))


def test_the_ca_and_client_pair_of_each_registry_are_read_from_their_secrets() -> None:
    kube = FakeKube(
        {"ca": {"ca.crt": pki.CA_PEM}, "tls": {"tls.crt": pki.CLIENT_CERT_PEM, "tls.key": pki.CLIENT_KEY_PEM}}
    )
    got = registry_material(
        kube,  # type: ignore[arg-type]
        "ops",
        spec({"caSecretRef": {"name": "ca"}, "clientCertSecretRef": {"name": "tls"}}),
    )
    assert got.ca_bundles == {HOST: pki.CA_PEM}
    assert got.client_certs[HOST].key_pem == pki.CLIENT_KEY_PEM
    assert got.refused == {}
    assert kube.paths == [
        "/api/v1/namespaces/ops/secrets/ca",
        "/api/v1/namespaces/ops/secrets/tls",
        "/api/v1/namespaces/ops/secrets/tls",
    ]


@pytest.mark.parametrize(
    ("field", "ssh_field"),
    [("caSecretRef", "privateKeySecretRef"), ("clientCertSecretRef", "knownHostsSecretRef")],
)
def test_an_ssh_secret_is_never_read_as_registry_material(field: str, ssh_field: str) -> None:
    kube = FakeKube(
        {"ssh": {"ssh-privatekey": pki.openssh_private_key()}, "known-hosts": {"known_hosts": "x"}}
    )
    got = registry_material(kube, "ops", bypassing_validation(field))  # type: ignore[arg-type]
    assert kube.paths == []  # not even fetched
    assert got.ca_bundles == {} and got.client_certs == {}
    assert f"is the one spec.ssh.{ssh_field} names" in got.refused[(HOST, field)]


def test_a_missing_secret_is_recorded_against_its_registry_not_raised() -> None:
    got = registry_material(FakeKube({}), "ops", spec({"caSecretRef": {"name": "ca"}}))  # type: ignore[arg-type]
    assert "Secret ops/ca does not exist" in got.refused[(HOST, "caSecretRef")]


def test_a_transient_api_error_is_raised_so_the_plan_or_step_is_tried_again() -> None:
    with pytest.raises(ApiStatusError):
        registry_material(FakeKube({}, fail=503), "ops", spec({"caSecretRef": {"name": "ca"}}))  # type: ignore[arg-type]


def test_the_port_reads_a_refused_secret_again_and_keeps_a_complete_answer() -> None:
    from shimshift.entry.nodeport import ssh_node_port

    body = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "m"},
        "spec": {
            "mode": "Migrate",
            "nodeNames": ["n1"],
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
            "containerd": {"registries": [{"host": HOST, "caSecretRef": {"name": "ca"}}]},
        },
    }
    kube = FakeKube({})
    port = ssh_node_port(kube, "ops", parse_nodemigration(body, load_crd()))  # type: ignore[arg-type]
    first = port.registry_material()
    assert first is not None and (HOST, "caSecretRef") in first.refused
    kube.secrets["ca"] = {"ca.crt": pki.CA_PEM}  # the admin creates the Secret
    second = port.registry_material()
    assert second is not None and second.ca_bundles == {HOST: pki.CA_PEM} and not second.refused
    port.registry_material()
    assert kube.paths.count("/api/v1/namespaces/ops/secrets/ca") == 2  # kept once complete


def test_the_notification_urls_secret_is_never_read_as_registry_material() -> None:
    s = spec({})
    reg = replace(s.containerd.registries[0], ca_secret=SecretKeyRef("hooks", "urls"))
    s = replace(
        s,
        containerd=replace(s.containerd, registries=(reg,)),
        notifications=NotificationSettings(SecretKeyRef("hooks", "urls")),
    )
    kube = FakeKube({"hooks": {"urls": "json://hooks.example.com/t0ken"}})
    got = registry_material(kube, "ops", s)  # type: ignore[arg-type]
    assert kube.paths == []  # not even fetched
    assert got.ca_bundles == {}
    assert got.refused[(HOST, "caSecretRef")] == (
        "Secret ops/hooks is the one spec.notifications.urlSecretRef names; "
        "the notification URLs' Secret is never read as registry material"
    )
