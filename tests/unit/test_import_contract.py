"""The layering contract is real: a pure-core module that imports paramiko, a module placed in no layer,
or one step importing another breaks the build."""

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


def _lint_with(tmp_path: Path, module: str, source: str) -> str:
    """lint-imports' report on a copy of the tree where `module` (a path under operator/shimshift)
    gets `source` appended (created if new); the copy must break a contract."""
    root = _copy_tree(tmp_path)
    path = root / "operator/shimshift" / module
    path.write_text((path.read_text() if path.exists() else "") + source)
    result = _lint_imports(root)
    assert result.returncode != 0, result.stdout
    return result.stdout


def test_the_contract_holds_on_the_tree() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_pure_module_importing_paramiko_breaks_the_contract(tmp_path: Path) -> None:
    out = _lint_with(tmp_path, "planning/leak.py", "import paramiko  # noqa\n")
    assert "The pure core never imports kubernetes, paramiko, kopf or asyncio BROKEN" in out


def test_the_model_importing_a_higher_layer_breaks_the_contract(tmp_path: Path) -> None:
    out = _lint_with(tmp_path, "model/leak.py", "import shimshift.kube  # noqa\n")
    assert "shimshift.model is not allowed to import shimshift.kube" in out
    assert "shimshift.model.leak -> shimshift.kube" in out


def test_a_pure_module_touching_the_garbage_collector_breaks_the_contract(tmp_path: Path) -> None:
    # GC tuning is process-wide: it belongs to the entry point that owns the process (plancli), not
    # to planning, which tests and the operator call inside processes of their own.
    out = _lint_with(tmp_path, "planning/leak.py", "import gc  # noqa\n")
    assert "shimshift.planning is not allowed to import gc" in out


def test_a_new_top_level_module_placed_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    # the layers are exhaustive: every module of the package sits in a contract, a new one too
    out = _lint_with(tmp_path, "stray.py", '"""Placed in no layer."""\n')
    assert "shimshift.stray" in out
    assert "The following modules are not listed as layers" in out


def test_a_new_module_of_the_steps_package_placed_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    out = _lint_with(tmp_path, "steps/stray.py", '"""Placed in no layer."""\n')
    assert "The following modules are not listed as layers" in out
    assert "shimshift.steps.stray" in out


def test_one_step_importing_another_step_breaks_the_contract(tmp_path: Path) -> None:
    out = _lint_with(
        tmp_path, "steps/switch/__init__.py", "\nfrom shimshift.steps import configure  # noqa\n"
    )
    assert "Each step is independent of the other steps BROKEN" in out
    assert "shimshift.steps.switch is not allowed to import shimshift.steps.configure" in out


def test_a_step_importing_the_engine_breaks_the_contract(tmp_path: Path) -> None:
    out = _lint_with(tmp_path, "steps/verify.py", "\nimport shimshift.stepexec  # noqa\n")
    assert "shimshift.steps is not allowed to import shimshift.stepexec" in out
