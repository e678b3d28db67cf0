"""docs/api-reference.md is generated from the CRD's descriptions and never drifts from it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.unit.chart import helm

SCRIPT = helm.REPO / "scripts" / "gen-api-reference"
CRD = helm.REPO / "crds" / "nodemigration.yaml"
PAGE = helm.REPO / "docs" / "api-reference.md"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_committed_api_reference_is_up_to_date_with_the_crd() -> None:
    result = generate("--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_and_says_how_to_fix_a_stale_page(tmp_path: Path) -> None:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    version["properties"]["spec"]["properties"]["mode"]["description"] = "A changed description."
    changed = tmp_path / "crd.yaml"
    changed.write_text(yaml.safe_dump(crd))
    no_readme = str(tmp_path / "absent-README.md")
    result = generate("--check", "--crd", str(changed), "--output", str(PAGE), "--readme", no_readme)
    assert result.returncode == 1
    assert "run scripts/gen-api-reference" in result.stderr
    written = tmp_path / "page.md"
    assert generate("--crd", str(changed), "--output", str(written), "--readme", no_readme).returncode == 0
    assert "A changed description." in written.read_text()


def test_the_readme_reference_is_the_crds_spec_and_a_stale_one_is_caught(tmp_path: Path) -> None:
    readme = (helm.REPO / "README.md").read_text()
    begin = "<!-- BEGIN NodeMigration reference"
    assert begin in readme and "<!-- END NodeMigration reference -->" in readme
    spec = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    assert " ".join(spec["properties"]["rollout"]["description"].split()) in readme
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("`maxUnavailable`", "`maxUnavailableOld`"))
    result = generate("--check", "--readme", str(stale))
    assert result.returncode == 1
    assert "README.md's reference is out of date" in result.stderr
    assert generate("--readme", str(stale), "--output", str(tmp_path / "page.md")).returncode == 0
    assert stale.read_text() == readme


def field_paths(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    obj = schema.get("items", {}) if schema.get("type") == "array" else schema
    for name, sub in obj.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from field_paths(sub, f"{path}.{name}")


def test_every_field_of_spec_and_status_is_documented_with_its_description() -> None:
    page = PAGE.read_text()
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    fields = [f for top in ("spec", "status") for f in field_paths(schema["properties"][top], top)]
    assert len(fields) > 100
    for path, sub in fields:
        name = path.rsplit(".", 1)[1]
        assert f"`{name}`" in page, path
        if "description" in sub:
            assert " ".join(sub["description"].split()).replace("|", "\\|") in page, path
        for value in sub.get("enum", []):
            assert f"`{value}`" in page, f"{path}: enum value {value}"
