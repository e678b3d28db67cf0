"""What the CLI prints carries no control sequence from a node or a manifest."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from shimshift.entry.cli import main
from shimshift.rendering import facts_from_json_text, facts_to_json_text

REPO = Path(__file__).resolve().parents[2]
FACTS = REPO / "examples" / "facts" / "kubeadm-cgroupfs.json"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def raw_controls(text: str) -> set[str]:
    return {
        ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e"
    }


def test_validate_shows_an_escape_in_a_manifest_name_as_visible_text(tmp_path: Path) -> None:
    manifest = tmp_path / "nm.yaml"
    manifest.write_text(
        'apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata:\n  name: "a\\e]8;;x\\a"\n'
    )
    status, text = run("validate", "-f", str(manifest))
    assert status == 1
    assert raw_controls(text) == set()
    assert "a\\x1b]8;;x\\x07" in text


def test_render_shows_c1_and_bidi_characters_of_the_nodes_config_toml_as_visible_text(tmp_path: Path) -> None:
    base = facts_from_json_text(FACTS.read_text(), source=str(FACTS))
    facts = tmp_path / "facts.json"
    config = 'version = 2\n# \u202eevil \x9b2J\n[debug]\n  level = "warn"\n'
    facts.write_text(facts_to_json_text(dataclasses.replace(base, containerd_config=config)))
    status, text = run("render", "-f", str(REPO / "examples" / "plan.yaml"), "--facts", str(facts))
    assert status == 0, text
    assert raw_controls(text) == set()
    assert "\\u202eevil \\x9b2J" in text
