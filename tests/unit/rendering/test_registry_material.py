"""Registry TLS material before it reaches a node: a CA is X.509 certificates and nothing else (it is
written world-readable), a client pair is a certificate and the key that matches it (the key 0600), and
whatever is refused is refused with the registry host and the Secret named, before any file exists."""

from __future__ import annotations

import dataclasses

import pytest

from shimshift.model.errors import ValidationError
from shimshift.model.facts import DockerCertFiles, KubeletFacts, NodeFacts, Setting
from shimshift.model.pem import MAX_PEM_BYTES, ca_bundle_problem, client_pair_problem
from shimshift.rendering import ClientCert, RegistryMaterial, RenderProblems, render_node_config
from tests import pki
from tests.unit.rendering.helpers import spec_with

HOST = "reg.example.com"
CERTS = f"/etc/containerd/certs.d/{HOST}"


def facts(**kw: object) -> NodeFacts:
    return NodeFacts(
        node="n1",
        containerd_version="1.6.20~ds1",
        kubelet=KubeletFacts(
            version="v1.24.17",
            cgroup_driver=Setting("systemd", "/var/lib/kubelet/config.yaml", "cgroupDriver"),
        ),
        containerd_config='disabled_plugins = ["cri"]\n',
        **kw,  # type: ignore[arg-type]
    )


def ca_spec() -> object:
    return spec_with(registries=[{"host": HOST, "caSecretRef": {"name": "ssh", "key": "ssh-privatekey"}}])


def refusal(spec: object, material: RegistryMaterial, **kw: object) -> str:
    with pytest.raises(RenderProblems) as e:
        render_node_config(spec, facts(**kw), material)  # type: ignore[arg-type]
    return str(e.value)


# --- the checks --------------------------------------------------------------------------------------


def test_one_or_more_x509_certificates_are_a_ca_bundle() -> None:
    assert ca_bundle_problem(pki.CA_PEM) is None
    assert ca_bundle_problem(pki.CA_PEM + "\n" + pki.CA2_PEM) is None
    assert ca_bundle_problem(pki.CA_PEM.replace("\n", "\r\n")) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (pki.openssh_private_key(), "is a private key (-----BEGIN OPENSSH PRIVATE KEY-----)"),
        (pki.rsa_private_key(), "is a private key (-----BEGIN RSA PRIVATE KEY-----)"),
        (pki.CLIENT_KEY_PEM, "is a private key (-----BEGIN PRIVATE KEY-----)"),
        (pki.CA_PEM + pki.CLIENT_KEY_PEM, "PEM block 2 is a private key"),
        (pki.CA_PEM + "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n", "not a PEM block"),
        ("# my CA\n" + pki.CA_PEM, "not a PEM block (from line 1)"),
        ("", "holds no PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n", "does not parse as an X.509"),
        ("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", "is not a certificate"),
        ("x" * (MAX_PEM_BYTES + 1), "larger than 1024 KiB"),
    ],
)
def test_anything_but_certificates_is_refused_as_a_ca_without_quoting_it(text: str, words: str) -> None:
    problem = ca_bundle_problem(text)
    assert problem is not None and words in problem
    body = [line for line in text.splitlines() if line and not line.startswith("-----")]
    assert not any(line in problem for line in body if len(line) > 8)


def test_a_certificate_and_the_key_that_matches_it_are_a_client_pair() -> None:
    assert client_pair_problem(pki.CLIENT_CERT_PEM, pki.CLIENT_KEY_PEM) is None
    assert client_pair_problem(pki.CLIENT_CERT_PEM + pki.CA_PEM, pki.CLIENT_KEY_PEM) is None  # with its chain


def test_a_client_key_that_is_not_the_certificates_or_no_pem_key_at_all_is_refused() -> None:
    _, other_key = pki.fresh_pair()
    assert client_pair_problem(pki.CLIENT_CERT_PEM, other_key) == (
        "key",
        "does not match the certificate (their public keys differ)",
    )
    assert client_pair_problem(pki.CLIENT_CERT_PEM, pki.rsa_private_key())[1].startswith(  # type: ignore[index]
        "does not match"
    )
    which, why = client_pair_problem(pki.CLIENT_CERT_PEM, pki.openssh_private_key())  # type: ignore[misc]
    assert which == "key" and "OPENSSH PRIVATE KEY" in why
    which, why = client_pair_problem(pki.CLIENT_CERT_PEM, pki.CLIENT_KEY_PEM * 2)  # type: ignore[misc]
    assert which == "key" and "holds 2 PEM private keys" in why
    which, why = client_pair_problem(pki.CLIENT_KEY_PEM, pki.CLIENT_KEY_PEM)  # type: ignore[misc]
    assert which == "certificate" and "is a private key" in why


# --- the renderer --------------------------------------------------------------------------------------


def test_the_ssh_private_key_given_as_a_registry_ca_is_refused_before_any_file_is_rendered() -> None:
    key = pki.openssh_private_key()
    message = refusal(ca_spec(), RegistryMaterial(ca_bundles={HOST: key}))
    assert "spec.containerd.registries[0].caSecretRef" in message
    assert f"registry {HOST}: Secret ssh (key ssh-privatekey)" in message
    assert "is a private key" in message
    assert key.splitlines()[1] not in message


def test_a_ca_bundle_with_a_key_appended_is_refused_inline_and_from_a_secret() -> None:
    with pytest.raises(ValidationError, match=r"registries\[0\]\.caBundle: is not a PEM certificate bundle"):
        spec_with(registries=[{"host": HOST, "caBundle": pki.CA_PEM + pki.CLIENT_KEY_PEM}])
    valid = spec_with(registries=[{"host": HOST, "caBundle": pki.CA_PEM}])  # and past validation:
    reg = dataclasses.replace(valid.containerd.registries[0], ca_bundle=pki.CA_PEM + pki.CLIENT_KEY_PEM)
    inline = dataclasses.replace(valid, containerd=dataclasses.replace(valid.containerd, registries=(reg,)))
    assert "spec.containerd.registries[0].caBundle: registry" in refusal(inline, RegistryMaterial())
    from_secret = spec_with(registries=[{"host": HOST, "caSecretRef": {"name": "ca"}}])
    message = refusal(from_secret, RegistryMaterial(ca_bundles={HOST: pki.CA_PEM + pki.CLIENT_KEY_PEM}))
    assert "Secret ca (key ca.crt)" in message and "PEM block 2 is a private key" in message


def test_a_valid_ca_from_a_secret_is_written_0644_as_ca_crt() -> None:
    spec = spec_with(registries=[{"host": HOST, "caSecretRef": {"name": "ca"}}])
    rendered = render_node_config(spec, facts(), RegistryMaterial(ca_bundles={HOST: pki.CA_PEM}))
    ca = rendered.file(f"{CERTS}/ca.crt")
    assert (ca.mode, ca.secret, ca.text) == (0o644, False, pki.CA_PEM)


def test_a_client_pair_is_written_certificate_0644_and_key_0600() -> None:
    spec = spec_with(registries=[{"host": HOST, "clientCertSecretRef": {"name": "tls"}}])
    material = RegistryMaterial(client_certs={HOST: ClientCert(pki.CLIENT_CERT_PEM, pki.CLIENT_KEY_PEM)})
    rendered = render_node_config(spec, facts(), material)
    cert, key = rendered.file(f"{CERTS}/client.cert"), rendered.file(f"{CERTS}/client.key")
    assert (cert.mode, cert.secret) == (0o644, False)
    assert (key.mode, key.secret, key.text) == (0o600, True, pki.CLIENT_KEY_PEM)


def test_a_client_pair_whose_key_is_the_ssh_key_is_refused_naming_the_secret_and_its_key() -> None:
    spec = spec_with(registries=[{"host": HOST, "clientCertSecretRef": {"name": "tls"}}])
    material = RegistryMaterial(client_certs={HOST: ClientCert(pki.CLIENT_CERT_PEM, pki.rsa_private_key())})
    message = refusal(spec, material)
    assert "spec.containerd.registries[0].clientCertSecretRef" in message
    assert f"registry {HOST}: Secret tls (key tls.key): does not match the certificate" in message


def test_a_secret_the_operator_refused_to_read_is_a_problem_naming_why() -> None:
    material = RegistryMaterial(refused={(HOST, "caSecretRef"): "Secret default/ssh is spec.ssh's"})
    message = refusal(ca_spec(), material)
    assert f"caSecretRef: registry {HOST}: Secret ssh (key ssh-privatekey): Secret default/ssh is" in message


def test_a_key_in_a_docker_certs_d_crt_file_is_not_copied_world_readable_into_containerds_certs_d() -> None:
    path = f"/etc/docker/certs.d/{HOST}/ca.crt"
    docker = (DockerCertFiles(HOST, ca_certs={path: pki.CA_PEM + pki.CLIENT_KEY_PEM}),)
    message = refusal(spec_with(), RegistryMaterial(), docker_certs=docker)
    assert f"{path}: registry {HOST}: PEM block 2 is a private key" in message
    good = (DockerCertFiles(HOST, ca_certs={path: pki.CA_PEM}),)
    assert (
        render_node_config(spec_with(), facts(docker_certs=good)).file(f"{CERTS}/ca.crt").text == pki.CA_PEM
    )
    # a spec entry for the host wins: the Docker file is not carried, so it blocks nothing
    spec = spec_with(registries=[{"host": HOST, "caBundle": pki.CA_PEM}])
    assert render_node_config(spec, facts(docker_certs=docker)).file(f"{CERTS}/ca.crt").text == pki.CA_PEM
