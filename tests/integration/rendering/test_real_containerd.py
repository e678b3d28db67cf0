"""Every schema-2 config shimshift renders for the examples runs on the real containerd 1.6 with CRI `ok`.

`config dump` succeeding is not enough (it accepts unknown keys and plugin-level errors), nor is the
daemon being up (CRI can be `error` inside a running containerd): the CRI plugin's own status is asserted.
"""

from __future__ import annotations

import dataclasses
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
from shimshift.resources import load_crd
from tests.integration.rendering.harness import (
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


def _schema2_cases() -> list[tuple[Path, Path]]:
    cases = []
    for example in EXAMPLES:
        for facts_file in FACTS:
            facts = facts_from_json_text(facts_file.read_text())
            if facts.containerd_major == 1:
                cases.append((example, facts_file))
    return cases


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("example", "facts_file"), _schema2_cases(), ids=[f"{e.stem}--{f.stem}" for e, f in _schema2_cases()]
)
def test_rendered_schema2_config_starts_containerd_with_cri_ok(example: Path, facts_file: Path) -> None:
    with node_root() as root:
        facts = _private(facts_from_json_text(facts_file.read_text()), root)
        try:
            rendered = render_node_config(_spec(example), facts, _material(), root.layout)
        except RenderProblems as e:
            # e.g. air-gapped.yaml pins cgroupDriver: systemd, which a cgroupfs kubelet refutes
            assert e.problems and all(p.path.startswith("spec.") for p in e.problems)
            return
        assert rendered.report.config_version == 2
        root.write(rendered)
        dump = config_dump(root)
        assert dump.returncode == 0, dump.stderr
        assert ignored_keys(rendered.config_toml.text, dump.stdout) == []
        with running_containerd(root) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-3000:]


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
