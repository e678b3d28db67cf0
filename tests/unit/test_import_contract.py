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


def test_a_new_top_level_module_placed_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    # the layers are exhaustive: every module of the package sits in a contract, a new one too
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/stray.py").write_text('"""Placed in no layer."""\n')
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "shimshift.stray" in result.stdout
    assert "The following modules are not listed as layers" in result.stdout


def test_a_new_module_of_the_steps_package_placed_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/steps/stray.py").write_text('"""Placed in no layer."""\n')
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "The following modules are not listed as layers" in result.stdout
    assert "shimshift.steps.stray" in result.stdout


def test_one_step_importing_another_step_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    switch = root / "operator/shimshift/steps/switch/__init__.py"
    switch.write_text(switch.read_text() + "\nfrom shimshift.steps import configure  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "Each step is independent of the other steps BROKEN" in result.stdout
    assert "shimshift.steps.switch is not allowed to import shimshift.steps.configure" in result.stdout


def test_a_step_importing_the_engine_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "operator/shimshift/steps/verify.py").write_text(
        (root / "operator/shimshift/steps/verify.py").read_text() + "\nimport shimshift.stepexec  # noqa\n"
    )
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "shimshift.steps is not allowed to import shimshift.stepexec" in result.stdout
