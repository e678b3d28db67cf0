"""The layering contract is real: a pure-core module that imports paramiko breaks the build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "operator")}
    exe = shutil.which("lint-imports") or "lint-imports"
    return subprocess.run([exe], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "operator", root / "operator", ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contract_holds_on_the_tree() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_pure_module_importing_paramiko_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/planning/leak.py").write_text("import paramiko  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "The pure core never imports kubernetes, paramiko, kopf or asyncio BROKEN" in result.stdout


def test_the_model_importing_a_higher_layer_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/model/leak.py").write_text("import shimshift.kube  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "shimshift.model is not allowed to import shimshift.kube" in result.stdout
    assert "shimshift.model.leak -> shimshift.kube" in result.stdout


def test_a_pure_module_touching_the_garbage_collector_breaks_the_contract(tmp_path: Path) -> None:
    # GC tuning is process-wide: it belongs to the entry point that owns the process (plancli), not
    # to planning, which tests and the operator call inside processes of their own.
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/planning/leak.py").write_text("import gc  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "shimshift.planning is not allowed to import gc" in result.stdout
