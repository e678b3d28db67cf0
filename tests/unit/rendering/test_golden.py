"""Golden files: `shimshift render` for every example NodeMigration on every example node's facts.

The facts files include one per testbed node profile. Regenerate with SHIMSHIFT_REGEN_GOLDEN=1 and
review the diff; a golden file changes only when the rendered output really changes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from testbed.nodes.profiles import ProfileName

from shimshift.entry.cli import main
from shimshift.rendering import facts_from_json_text, facts_to_json_text
from tests.unit.rendering.profile_facts import all_profiles, profile_facts

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests" / "golden" / "rendering"
MATERIAL = GOLDEN / "material"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
FACTS = sorted((REPO / "examples" / "facts").glob("*.json"))
REGEN = os.environ.get("SHIMSHIFT_REGEN_GOLDEN") == "1"

SECRETS = [
    f"--ca=docker.io={MATERIAL / 'corp-ca.crt'}",
    f"--ca=registry.corp.example.com={MATERIAL / 'corp-ca.crt'}",
    f"--ca=_default={MATERIAL / 'internal-ca.crt'}",
    f"--ca=registry.internal.example:5000={MATERIAL / 'internal-ca.crt'}",
    f"--client-cert=registry.corp.example.com={MATERIAL / 'client.crt'},{MATERIAL / 'client.key'}",
]


def _render(example: Path, facts: Path) -> str:
    out = io.StringIO()
    main(
        ["render", "-f", str(example.relative_to(REPO)), "--facts", str(facts.relative_to(REPO)), *SECRETS],
        out,
    )
    return out.getvalue()


@pytest.mark.parametrize("facts", FACTS, ids=[f.stem for f in FACTS])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_rendered_output_matches_the_reviewed_golden_file(
    example: Path, facts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    got = _render(example, facts)
    golden = GOLDEN / f"{example.stem}--{facts.stem}.txt"
    if REGEN:
        golden.write_text(got, encoding="utf-8")
    assert golden.exists(), f"missing {golden}; run with SHIMSHIFT_REGEN_GOLDEN=1 and review the diff"
    assert got == golden.read_text(encoding="utf-8")


def test_golden_output_never_contains_a_client_key() -> None:
    key_text = (MATERIAL / "client.key").read_text().splitlines()[1]
    goldens = list(GOLDEN.glob("*.txt"))
    assert goldens
    assert any("secret" in g.read_text() for g in goldens)
    for golden in goldens:
        assert key_text not in golden.read_text()


@pytest.mark.parametrize("profile", all_profiles(), ids=str)
def test_example_facts_files_agree_with_the_testbed_node_profiles(profile: ProfileName) -> None:
    facts = profile_facts(profile)
    path = REPO / "examples" / "facts" / f"{facts.node.removesuffix('-1')}.json"
    if REGEN:
        path.write_text(facts_to_json_text(facts), encoding="utf-8")
    assert facts_from_json_text(path.read_text(encoding="utf-8"), str(path)) == facts
