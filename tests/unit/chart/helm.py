"""Running helm and kubernetes-validate against charts/shimshift, offline, with throwaway helm homes.

Shared by the chart tests (unit: lint, template, validate, RBAC; integration: install into the API
emulator). helm and kubectl come from `scripts/setup` (.tools/bin, from npm); kubernetes-validate from
the dev extras.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "shimshift"
VALUE_SETS_DIR = Path(__file__).resolve().parent / "values"
NAMESPACE = "shimshift-system"
RELEASE = "shimshift"
TIMEOUT = 120  # seconds; any one helm or validator run takes a second or two


class HelmMissing(RuntimeError):
    pass


def helm_binary() -> str:
    """helm from .tools/bin (scripts/setup), else from PATH."""
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("helm")
    if found is None:
        raise HelmMissing("helm not found: run scripts/setup (it installs .tools/bin/helm from npm)")
    return found


@cache
def helm_env() -> Mapping[str, str]:
    """The environment helm runs in: its cache, config and data homes in a temporary directory."""
    home = Path(tempfile.mkdtemp(prefix="shimshift-helm-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        (home / var).mkdir()
        env[var] = str(home / var)
    env.pop("KUBECONFIG", None)
    return env


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_helm(*args: str, env: Mapping[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(env if env is not None else helm_env()),
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def value_sets() -> list[str]:
    """Names of the value files in tests/unit/chart/values ("default" is the chart's own values)."""
    return ["default", *sorted(p.stem for p in VALUE_SETS_DIR.glob("*.yaml"))]


def value_args(value_set: str) -> list[str]:
    return [] if value_set == "default" else ["-f", str(VALUE_SETS_DIR / f"{value_set}.yaml")]


def template(*args: str, include_crds: bool = False) -> Result:
    """`helm template` of the chart with the given extra arguments."""
    extra = ["--include-crds"] if include_crds else []
    return run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra, *args)


@cache
def rendered_text(value_set: str) -> str:
    result = template(*value_args(value_set), include_crds=True)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed for {value_set}:\n{result.stderr}")
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def rendered(value_set: str) -> list[dict[str, Any]]:
    return documents(rendered_text(value_set))


def only(docs: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kubernetes_validate(paths: Sequence[Path], kubernetes_version: str) -> Result:
    """`kubernetes-validate --strict` on rendered files (the console script of the installed package)."""
    exe = Path(sys.executable).with_name("kubernetes-validate")
    cmd = [str(exe)] if exe.exists() else ["kubernetes-validate"]
    proc = subprocess.run(
        [*cmd, "--strict", "--kubernetes-version", kubernetes_version, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
