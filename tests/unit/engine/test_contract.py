"""The engine and the handlers stay off the Kubernetes and SSH libraries: they go through kube/ and remote/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_import_contract import _copy_tree, _lint_imports


@pytest.mark.parametrize("library", ["kubernetes", "paramiko"])
def test_the_engine_importing_a_client_library_directly_breaks_the_contract(
    tmp_path: Path, library: str
) -> None:
    root = _copy_tree(tmp_path)
    engine = root / "operator/shimshift/engine.py"
    engine.write_text(engine.read_text() + f"\nimport {library}  # noqa\n")

    result = _lint_imports(root)

    assert result.returncode != 0
    assert f"shimshift.engine is not allowed to import {library}" in result.stdout
