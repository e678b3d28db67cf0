"""Real CRI PullImage through rendered hosts.toml files: mirrors with a CA, insecure registries, and
the node's own Docker registry configuration translated; each on Debian's containerd 1.6 (schema 2)
and on containerd 2.2 (schema 3) and 2.3 (schema 4) built from their modules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from shimshift.model import parse_nodemigration
from shimshift.model.facts import DockerCertFiles, KubeletFacts, NodeFacts, Setting
from shimshift.model.spec import NodeMigrationSpec
from shimshift.rendering import ClientCert, RegistryMaterial, render_node_config
from shimshift.resources import load_crd
from tests.integration.rendering.harness import BUILD_IDS, BUILDS, Build, node_root, running_containerd
from tests.integration.rendering.registries import (
    HOSTS_FILE,
    IMAGE_PATH,
    MIRROR_HOST,
    UPSTREAM_HOST,
    Registries,
    missing_prerequisites,
    registries,
)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(bool(missing_prerequisites()), reason=f"needs {missing_prerequisites()}"),
]


@pytest.fixture(params=BUILDS, ids=BUILD_IDS)
def build(request: pytest.FixtureRequest) -> Build:
    chosen: Build = request.param
    return chosen


@pytest.fixture(scope="module")
def regs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    with registries(tmp_path_factory.mktemp("registries")) as r:
        yield r


def _spec(containerd: Mapping[str, Any]) -> NodeMigrationSpec:
    manifest = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "pull"},
        "spec": {"nodeNames": ["pull-node"], "containerd": dict(containerd)},
    }
    return parse_nodemigration(manifest, load_crd()).spec


def _facts(build: Build, **overrides: Any) -> NodeFacts:
    kubelet = KubeletFacts(
        version="v1.27.16", cgroup_driver=Setting("cgroupfs", "/var/lib/kubelet/config.yaml", "cgroupDriver")
    )
    return NodeFacts(node="pull-node", containerd_version=build.version, kubelet=kubelet, **overrides)


def _pull(
    spec: NodeMigrationSpec, facts: NodeFacts, image: str, material: RegistryMaterial | None = None
) -> str:
    """Render, start the containerd of the facts' version on the files, CRI-pull `image`; the pull
    error text on failure."""
    build = next(b for b in BUILDS if b.version == facts.containerd_version)
    with node_root(HOSTS_FILE) as root:
        rendered = render_node_config(spec, facts, material, layout=root.layout)
        assert rendered.report.config_version == build.schema
        root.write(rendered)
        with running_containerd(root, build) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-2000:]
            try:
                ref = containerd.pull(image)
            except grpc.RpcError as e:
                return f"error: {e.details()}"
            finally:
                assert containerd.hosts_errors() == []  # every rendered hosts.toml was read, none skipped
            assert ref.startswith("sha256:")
            return "ok"


def test_cri_pull_through_a_rendered_mirror_with_its_ca_succeeds(regs: Registries, build: Build) -> None:
    spec = _spec(
        {"registries": [{"host": UPSTREAM_HOST, "mirrors": [regs.mirror_url], "caBundle": regs.ca_pem}]}
    )
    assert _pull(spec, _facts(build), f"{UPSTREAM_HOST}/{IMAGE_PATH}") == "ok"


def test_cri_pull_through_the_mirror_without_its_ca_fails_with_the_x509_error(
    regs: Registries, build: Build
) -> None:
    spec = _spec({"registries": [{"host": UPSTREAM_HOST, "mirrors": [regs.mirror_url]}]})
    result = _pull(spec, _facts(build), f"{UPSTREAM_HOST}/{IMAGE_PATH}")
    assert result.startswith("error:")
    assert "x509: certificate signed by unknown authority" in result


def test_a_plain_http_registry_pulls_only_when_configured_as_plain_http(
    regs: Registries, build: Build
) -> None:
    image = f"{regs.insecure}/{IMAGE_PATH}"
    unconfigured = _pull(_spec({}), _facts(build), image)
    assert "server gave HTTP response to HTTPS client" in unconfigured
    configured = _spec({"registries": [{"host": regs.insecure, "plainHTTP": True}]})
    assert _pull(configured, _facts(build), image) == "ok"


def test_dockers_insecure_registries_entry_is_translated_so_the_http_registry_pulls(
    regs: Registries, build: Build
) -> None:
    facts = _facts(build, daemon_json={"insecure-registries": [regs.insecure]})
    assert _pull(_spec({}), facts, f"{regs.insecure}/{IMAGE_PATH}") == "ok"


def test_translation_can_be_turned_off_and_then_the_http_registry_is_refused(
    regs: Registries, build: Build
) -> None:
    facts = _facts(build, daemon_json={"insecure-registries": [regs.insecure]})
    result = _pull(_spec({"importDockerConfig": False}), facts, f"{regs.insecure}/{IMAGE_PATH}")
    assert "server gave HTTP response to HTTPS client" in result


def test_dockers_hub_mirror_and_its_certs_d_ca_are_translated_so_hub_names_pull_through_it(
    regs: Registries,
    build: Build,
) -> None:
    mirror_dir = f"{MIRROR_HOST}:{regs.tls_port}"
    facts = _facts(
        build,
        daemon_json={"registry-mirrors": [regs.mirror_url]},
        docker_certs=(
            DockerCertFiles(mirror_dir, ca_certs={f"/etc/docker/certs.d/{mirror_dir}/ca.crt": regs.ca_pem}),
        ),
    )
    assert _pull(_spec({}), facts, f"docker.io/{IMAGE_PATH}") == "ok"


def test_the_sandbox_image_is_rewritten_through_the_mirror_and_pulls_on_an_air_gapped_node(
    regs: Registries, build: Build, tmp_path: Path
) -> None:
    # registry.k8s.io is unreachable here, as on an air-gapped node; its mirror holds team/tiny only,
    # so the rewritten name is checked, and a pull of a name under the mirror proves the CA path.
    spec = _spec(
        {"registries": [{"host": "registry.k8s.io", "mirrors": [regs.mirror_url], "caBundle": regs.ca_pem}]}
    )
    rendered = render_node_config(spec, _facts(build))
    assert rendered.report.sandbox_image == f"{MIRROR_HOST}:{regs.tls_port}/pause:3.9"
    assert _pull(spec, _facts(build), f"registry.k8s.io/{IMAGE_PATH}") == "ok"


def test_a_registry_that_requires_a_client_certificate_pulls_with_the_rendered_pair_only(
    regs: Registries,
    build: Build,
) -> None:
    image = f"{regs.mtls}/{IMAGE_PATH}"
    entry = {"host": regs.mtls, "caBundle": regs.mtls_ca_pem}
    without = _pull(_spec({"registries": [entry]}), _facts(build), image)
    assert "remote error: tls: bad certificate" in without  # the registry refused us: no client certificate
    spec = _spec({"registries": [{**entry, "clientCertSecretRef": {"name": "registry-client-tls"}}]})
    material = RegistryMaterial(
        client_certs={regs.mtls: ClientCert(regs.client_cert_pem, regs.client_key_pem)}
    )
    assert _pull(spec, _facts(build), image, material) == "ok"


def test_dockers_certs_d_client_pair_is_used_in_place_for_a_registry_that_requires_it(
    regs: Registries, build: Build, tmp_path: Path
) -> None:
    # The node's /etc/docker/certs.d/<host>/ (here under tmp_path): the key is referenced, never read.
    certs = tmp_path / "docker-certs.d" / regs.mtls
    certs.mkdir(parents=True)
    (certs / "client.cert").write_text(regs.client_cert_pem)
    (certs / "client.key").write_text(regs.client_key_pem)
    facts = _facts(
        build,
        docker_certs=(
            DockerCertFiles(
                regs.mtls,
                ca_certs={str(certs / "ca.crt"): regs.mtls_ca_pem},
                client_certs=(str(certs / "client.cert"),),
                client_keys={str(certs / "client.key"): "sha256-only"},
            ),
        ),
    )
    assert _pull(_spec({}), facts, f"{regs.mtls}/{IMAGE_PATH}") == "ok"
