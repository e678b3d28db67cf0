"""`shimshift render`: prints or writes one node's files; problems exit 1 naming the field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from shimshift.entry.cli import main
from shimshift.model.errors import ValidationError
from shimshift.rendering import facts_from_json_text

REPO = Path(__file__).resolve().parents[3]
FACTS = REPO / "examples" / "facts" / "kubeadm-cgroupfs.json"
PLAN = REPO / "examples" / "plan.yaml"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_render_writes_every_file_with_its_mode_under_out(tmp_path: Path) -> None:
    status, text = run("render", "-f", str(PLAN), "--facts", str(FACTS), "--out", str(tmp_path))
    assert status == 0, text
    config = tmp_path / "etc/containerd/config.toml"
    assert "SystemdCgroup = false" in config.read_text()
    assert config.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "etc/containerd/certs.d/registry.shimshift.test/hosts.toml").exists()
    assert "+version = 2" in text


def test_render_refuses_a_spec_it_cannot_honour_and_names_the_field() -> None:
    status, text = run("render", "-f", str(REPO / "examples/air-gapped.yaml"), "--facts", str(FACTS))
    assert status == 1
    assert "spec.containerd.cgroupDriver" in text


def test_render_reports_an_unresolved_secret_reference_with_its_field() -> None:
    status, text = run("render", "-f", str(REPO / "examples/private-registry.yaml"), "--facts", str(FACTS))
    assert status == 1
    assert "spec.containerd.registries[1].caSecretRef" in text


def test_a_facts_file_with_a_misspelt_field_is_refused_with_its_path(tmp_path: Path) -> None:
    raw = json.loads(FACTS.read_text())
    raw["kubelet"]["cgroup_drvier"] = raw["kubelet"].pop("cgroup_driver")
    bad = tmp_path / "facts.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValidationError, match=r"kubelet\.cgroup_drvier: unknown field"):
        facts_from_json_text(bad.read_text(), str(bad))
    status, text = run("render", "-f", str(PLAN), "--facts", str(bad))
    assert status == 1 and "cgroup_drvier" in text
