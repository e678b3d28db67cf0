"""Every config shimshift renders for the examples runs on the real containerd of its version with CRI
`ok`: schema 2 on Debian's 1.6, schema 3 on containerd 2.2 and schema 4 on 2.3 (both built from their
Go modules), each facts file's containerd version set to the build's so that auto picks the schema.

`config dump` succeeding is not enough (it accepts unknown keys and plugin-level errors), nor is the
daemon being up (CRI can be `error` inside a running containerd): the CRI plugin's own status is asserted.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from shimshift.model import parse_nodemigration
from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.rendering import (
    ClientCert,
    RegistryMaterial,
    RenderProblems,
    facts_from_json_text,
    render_node_config,
)
from shimshift.rendering.containerd_keys import unknown_keys
from shimshift.resources import load_crd
from tests.integration.rendering.harness import (
    BUILD_IDS,
    BUILDS,
    DEBIAN,
    Build,
    NodeRoot,
    config_dump,
    ignored_keys,
    node_root,
    running_containerd,
)

REPO = Path(__file__).resolve().parents[3]
MATERIAL = REPO / "tests" / "golden" / "rendering" / "material"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
FACTS = sorted((REPO / "examples" / "facts").glob("*.json"))


def _material() -> RegistryMaterial:
    corp = (MATERIAL / "corp-ca.crt").read_text()
    internal = (MATERIAL / "internal-ca.crt").read_text()
    client = ClientCert((MATERIAL / "client.crt").read_text(), (MATERIAL / "client.key").read_text())
    return RegistryMaterial(
        ca_bundles={
            "docker.io": corp,
            "registry.corp.example.com": corp,
            "_default": internal,
            "registry.internal.example:5000": internal,
        },
        client_certs={"registry.corp.example.com": client},
    )


def _spec(example: Path) -> NodeMigrationSpec:
    return parse_nodemigration(yaml.safe_load(example.read_text()), load_crd(), source=str(example)).spec


def _private(facts: NodeFacts, root: NodeRoot) -> NodeFacts:
    """The node's own absolute paths (e.g. an admin's root = "/data/containerd") moved under the root."""
    text = (facts.containerd_config or "").replace('"/data/', f'"{root.path}/data/')
    return dataclasses.replace(facts, containerd_config=text)


def _cases() -> list[tuple[Path, Path, Build]]:
    cases = []
    for build in BUILDS:
        for example in EXAMPLES:
            for facts_file in FACTS:
                facts = facts_from_json_text(facts_file.read_text())
                # 1.6 loads what was rendered for 1.x nodes; a 2.x build every node's facts as its own
                if build is not DEBIAN or facts.containerd_major == 1:
                    cases.append((example, facts_file, build))
    return cases


CASES = _cases()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("example", "facts_file", "build"), CASES, ids=[f"{b.version}-{e.stem}--{f.stem}" for e, f, b in CASES]
)
def test_rendered_config_starts_the_containerd_of_its_version_with_cri_ok(
    example: Path, facts_file: Path, build: Build
) -> None:
    with node_root() as root:
        facts = _private(facts_from_json_text(facts_file.read_text()), root)
        facts = dataclasses.replace(facts, containerd_version=build.version)
        try:
            rendered = render_node_config(_spec(example), facts, _material(), root.layout)
        except RenderProblems as e:
            # e.g. air-gapped.yaml pins cgroupDriver: systemd, which a cgroupfs kubelet refutes
            assert e.problems and all(p.path.startswith("spec.") for p in e.problems)
            return
        assert rendered.report.config_version == build.schema
        root.write(rendered)
        dump = config_dump(root, build)
        assert dump.returncode == 0, dump.stderr
        assert ignored_keys(rendered.config_toml.text, dump.stdout) == []
        with running_containerd(root, build) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-3000:]
            assert containerd.config_warnings() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("build", BUILDS[1:], ids=BUILD_IDS[1:])
def test_every_key_of_the_default_config_of_containerd_2_is_one_the_renderer_knows(build: Build) -> None:
    # the key tables decide what an extraConfig may set: a key containerd reads must not be refused
    default = subprocess.run(
        [build.containerd, "config", "default"], capture_output=True, text=True, timeout=20, check=True
    ).stdout
    doc = tomllib.loads(default)
    assert doc["version"] == build.schema
    assert list(unknown_keys(doc, build.schema)) == []


def _write_config(root: NodeRoot, text: str) -> None:
    path = Path(root.layout.config_file)
    path.parent.mkdir(parents=True)
    path.write_text(text)


@pytest.mark.timeout(60)
def test_docker_ce_config_with_a_version_line_stops_containerd_which_is_why_it_is_rewritten() -> None:
    with node_root() as root:
        _write_config(root, 'version = 2\ndisabled_plugins = ["cri"]\n')
        dump = config_dump(root)
        assert dump.returncode != 0
        assert 'invalid disabled plugin URI "cri"' in dump.stderr


@pytest.mark.timeout(60)
def test_mirrors_next_to_config_path_leave_cri_in_error_although_containerd_runs() -> None:
    with node_root() as root:
        _write_config(
            root,
            'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
            f'  config_path = "{root.path}/certs.d"\n'
            '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
            '    endpoint = ["https://mirror.example.com"]\n',
        )
        assert config_dump(root).returncode == 0
        with running_containerd(root) as containerd:
            assert containerd.cri_status() == "error"


@pytest.mark.timeout(60)
def test_containerd_silently_drops_a_misspelt_key_and_the_dump_oracle_sees_it() -> None:
    with node_root() as root:
        text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_imagee = "x/pause:1"\n'
        _write_config(root, text)
        dump = config_dump(root)
        assert dump.returncode == 0  # accepted without a word...
        assert ignored_keys(text, dump.stdout) == [
            'plugins."io.containerd.grpc.v1.cri".sandbox_imagee'
        ]  # ...and ignored


@pytest.mark.timeout(60)
def test_containerd_2_2_refuses_a_schema_4_file_which_is_why_4_is_rendered_for_2_3_only() -> None:
    with node_root() as root:
        _write_config(root, "version = 4\n")
        dump = config_dump(root, BUILDS[1])
        assert dump.returncode != 0
        assert "expected containerd config version equal to or less than `3`, got `4`" in dump.stderr


@pytest.mark.timeout(60)
def test_containerd_2_3_converts_a_schema_3_file_at_every_start_with_a_warning() -> None:
    with node_root() as root:
        _write_config(root, "version = 3\n")
        with running_containerd(root, BUILDS[2]) as containerd:
            assert containerd.cri_status() == "ok"
            assert any("Configuration migrated from version 3" in w for w in containerd.config_warnings())


def _grpc_address(dump: str) -> str:
    return str(tomllib.loads(dump)["plugins"]["io.containerd.server.v1.grpc"]["address"])


@pytest.mark.timeout(60)
def test_containerd_2_3_does_not_read_a_top_level_grpc_address_in_a_schema_4_file() -> None:
    # why the renderer moves an admin's [grpc] into plugins."io.containerd.server.v1.grpc" for schema 4
    containerd_23 = BUILDS[2]
    with node_root() as root:
        moved = f"{root.path}/moved.sock"
        _write_config(root, f'version = 3\n[grpc]\n  address = "{moved}"\n')
        assert _grpc_address(config_dump(root, containerd_23).stdout) == moved  # converted from 3
        Path(root.layout.config_file).write_text(f'version = 4\n[grpc]\n  address = "{moved}"\n')
        dump = config_dump(root, containerd_23)
        assert dump.returncode == 0, dump.stderr  # accepted without a word, and the default socket used
        assert _grpc_address(dump.stdout) == "/run/containerd/containerd.sock"
        Path(root.layout.config_file).write_text(
            f'version = 4\n[plugins."io.containerd.server.v1.grpc"]\n  address = "{moved}"\n'
        )
        assert _grpc_address(config_dump(root, containerd_23).stdout) == moved


@pytest.mark.timeout(60)
@pytest.mark.parametrize("build", BUILDS, ids=BUILD_IDS)
def test_the_kubelets_cni_directories_carried_are_the_ones_containerd_reads(build: Build) -> None:
    with node_root() as root:
        facts = facts_from_json_text((REPO / "examples" / "facts" / "kubeadm-systemd.json").read_text())
        bin_dir, conf_dir = f"{root.path}/cni/bin", f"{root.path}/cni/net.d"
        flags = (*facts.kubelet.flags, ("cni-bin-dir", bin_dir), ("cni-conf-dir", conf_dir))
        facts = dataclasses.replace(
            facts, containerd_version=build.version, kubelet=dataclasses.replace(facts.kubelet, flags=flags)
        )
        rendered = render_node_config(_spec(EXAMPLES[0]), facts, _material(), root.layout)
        assert rendered.report.config_version == build.schema
        root.write(rendered)
        dump = config_dump(root, build)
        assert dump.returncode == 0, dump.stderr
        assert ignored_keys(rendered.config_toml.text, dump.stdout) == []
        plugin = "io.containerd.grpc.v1.cri" if build.schema == 2 else "io.containerd.cri.v1.runtime"
        cni = tomllib.loads(dump.stdout)["plugins"][plugin]["cni"]
        assert [bin_dir] in (cni.get("bin_dirs"), [cni.get("bin_dir")]) and cni["conf_dir"] == conf_dir
        with running_containerd(root, build) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-3000:]
            assert containerd.config_warnings() == []
            deprecated = [ln for ln in containerd.log().splitlines() if "bin_dir` is deprecated" in ln]
            assert deprecated == [], deprecated  # 2.1 and later get bin_dirs
