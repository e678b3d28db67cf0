"""Docker's registry configuration carried into containerd's hosts.toml, and what cannot be."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from shimshift.model.facts import DockerCertFiles, KubeletFacts, NodeFacts, Setting
from shimshift.rendering import RenderedConfig, render_node_config
from shimshift.rendering.docker import translate_docker_config
from tests import pki
from tests.unit.rendering.helpers import spec_with

CERTS = "/etc/containerd/certs.d"
PEM = pki.CA_PEM


def facts(**kw: Any) -> NodeFacts:
    kubelet = KubeletFacts(
        version="v1.24.17", cgroup_driver=Setting("systemd", "/var/lib/kubelet/config.yaml", "cgroupDriver")
    )
    return NodeFacts(node="n1", containerd_version="1.6.20", kubelet=kubelet, **kw)


def hosts_toml(rendered: RenderedConfig, host: str) -> dict[str, Any]:
    return tomllib.loads(rendered.file(f"{CERTS}/{host}/hosts.toml").text)


def test_registry_mirrors_become_docker_hub_mirrors_in_their_order() -> None:
    daemon = {"registry-mirrors": ["https://b.example.com/", "https://a.example.com:5000"]}
    rendered = render_node_config(spec_with(), facts(daemon_json=daemon))
    doc = hosts_toml(rendered, "docker.io")
    assert doc["server"] == "https://registry-1.docker.io"
    assert list(doc["host"]) == ["https://b.example.com", "https://a.example.com:5000"]


def test_an_insecure_registry_tries_tls_without_verification_then_plain_http_like_docker() -> None:
    daemon = {"insecure-registries": ["http://legacy.example.com:5000"]}
    doc = hosts_toml(render_node_config(spec_with(), facts(daemon_json=daemon)), "legacy.example.com:5000")
    hosts = doc["host"]
    assert list(hosts) == ["https://legacy.example.com:5000", "http://legacy.example.com:5000"]
    assert hosts["https://legacy.example.com:5000"]["skip_verify"] is True


def test_a_cidr_insecure_registry_marks_ip_mirrors_inside_it_and_reports_the_rest() -> None:
    daemon = {"registry-mirrors": ["https://10.30.1.2:5000"], "insecure-registries": ["10.30.0.0/16"]}
    rendered = render_node_config(spec_with(), facts(daemon_json=daemon))
    hosts = hosts_toml(rendered, "docker.io")["host"]
    assert hosts["https://10.30.1.2:5000"]["skip_verify"] is True
    assert "http://10.30.1.2:5000" in hosts
    assert any(
        n.value == "10.30.0.0/16" and "spec.containerd.registries" in n.replacement
        for n in rendered.report.not_carried
    )


def test_certs_d_ca_is_copied_and_client_pair_is_referenced_in_place_never_read() -> None:
    certs = DockerCertFiles(
        host="reg.example.com",
        ca_certs={"/etc/docker/certs.d/reg.example.com/ca.crt": PEM},
        client_certs=("/etc/docker/certs.d/reg.example.com/client.cert",),
        client_keys={"/etc/docker/certs.d/reg.example.com/client.key": "ab" * 32},
    )
    rendered = render_node_config(spec_with(), facts(docker_certs=(certs,)))
    doc = hosts_toml(rendered, "reg.example.com")
    assert doc["ca"] == [f"{CERTS}/reg.example.com/ca.crt"]
    assert doc["client"] == [
        ["/etc/docker/certs.d/reg.example.com/client.cert", "/etc/docker/certs.d/reg.example.com/client.key"]
    ]
    assert rendered.file(f"{CERTS}/reg.example.com/ca.crt").text == PEM
    assert not any(f.path.endswith(".key") for f in rendered.files)


def test_a_client_cert_without_its_key_is_reported_not_rendered() -> None:
    certs = DockerCertFiles(
        host="reg.example.com", client_certs=("/etc/docker/certs.d/reg.example.com/client.cert",)
    )
    rendered = render_node_config(spec_with(), facts(docker_certs=(certs,)))
    assert "client" not in hosts_toml(rendered, "reg.example.com")
    assert any("client.key" in n.replacement for n in rendered.report.not_carried)


def test_spec_registry_wins_over_the_translated_one_and_the_conflict_is_reported() -> None:
    daemon = {"registry-mirrors": ["https://docker-mirror.example.com"]}
    spec = spec_with(registries=[{"host": "docker.io", "mirrors": ["https://spec-mirror.example.com"]}])
    rendered = render_node_config(spec, facts(daemon_json=daemon))
    assert list(hosts_toml(rendered, "docker.io")["host"]) == ["https://spec-mirror.example.com"]
    (conflict,) = rendered.report.conflicts
    assert conflict.host == "docker.io" and "docker-mirror.example.com" in conflict.translated


def test_import_docker_config_false_translates_nothing() -> None:
    daemon = {"registry-mirrors": ["https://docker-mirror.example.com"]}
    rendered = render_node_config(spec_with(importDockerConfig=False), facts(daemon_json=daemon))
    assert [f.path for f in rendered.files] == ["/etc/containerd/config.toml"]


@pytest.mark.parametrize(
    ("key", "value", "replacement"),
    [
        ("log-opts", {"max-size": "10m"}, "containerLogMaxSize"),
        ("data-root", "/data/docker", '"root"'),
        ("live-restore", True, "shims keep containers running"),
        ("default-shm-size", "128m", "emptyDir with medium: Memory"),
    ],
)
def test_settings_with_no_containerd_equivalent_are_reported_with_what_replaces_them(
    key: str, value: object, replacement: str
) -> None:
    translation = translate_docker_config(facts(daemon_json={key: value}))
    (item,) = translation.not_carried
    assert item.source == f"daemon.json {key}"
    assert replacement in item.replacement


def test_malformed_docker_entries_are_reported_never_rendered() -> None:
    daemon = {
        "registry-mirrors": ["ftp://x", "not a url"],
        "insecure-registries": ["bad host!", "999.1.1.1/99"],
    }
    translation = translate_docker_config(facts(daemon_json=daemon))
    assert translation.intents == ()
    assert len(translation.not_carried) == 4
