"""The source tree reads honestly: one name means one thing, and every reference points inside the repository."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "shimshift"


def _public_definitions() -> dict[str, list[tuple[str, str]]]:
    """Top-level public classes and functions, by name: [(module path, kind)]."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        for node in ast.parse(path.read_text(), filename=module).body:
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("_"):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                found[node.name].append((module, kind))
    return found


def test_no_two_modules_of_the_package_define_the_same_public_name() -> None:
    clashes = {name: where for name, where in _public_definitions().items() if len(where) > 1}
    assert not clashes, f"one name, several things (rename one so the name says which): {clashes}"


def test_no_two_classes_differ_only_by_a_plural_s() -> None:
    # ImagePlan next to ImagesPlan: a reader cannot tell from the name which one a function takes.
    by_stem: dict[str, set[str]] = defaultdict(set)
    for name, where in _public_definitions().items():
        for module, kind in where:
            if kind == "class":
                by_stem[re.sub(r"s(?=[A-Z]|$)", "", name)].add(f"{name} ({module})")
    clashes = {stem: sorted(names) for stem, names in by_stem.items() if len(names) > 1}
    assert not clashes, f"class names that differ only by a plural s: {clashes}"
