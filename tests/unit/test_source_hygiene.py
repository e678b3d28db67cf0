"""The source tree reads honestly: one name means one thing, and every reference points inside the repository."""

from __future__ import annotations

import ast
import os
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


def test_a_package_re_exports_each_name_under_its_own_name() -> None:
    # `from m import facts_from_json_text as facts_from_json` gave one function two names, the second
    # taken by a function of another signature (a dict, not text) in m itself.
    renamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shimshift"):
                for alias in node.names:
                    module = PACKAGE.parent.joinpath(*(node.module or "").split("."), alias.name)
                    is_module = (
                        module.with_suffix(".py").is_file() or module.is_dir()
                    )  # `import x as y` of a module
                    if alias.asname and alias.asname != alias.name and alias.name.islower() and not is_module:
                        where = path.relative_to(PACKAGE)
                        renamed.append(f"{where}:{node.lineno}: {node.module}.{alias.name} as {alias.asname}")
    assert not renamed, "a function imported under another name:\n" + "\n".join(renamed)


def test_no_two_classes_differ_only_by_a_plural_s() -> None:
    # ImagePlan next to ImagesPlan: a reader cannot tell from the name which one a function takes.
    by_stem: dict[str, set[str]] = defaultdict(set)
    for name, where in _public_definitions().items():
        for module, kind in where:
            if kind == "class":
                by_stem[re.sub(r"s(?=[A-Z]|$)", "", name)].add(f"{name} ({module})")
    clashes = {stem: sorted(names) for stem, names in by_stem.items() if len(names) > 1}
    assert not clashes, f"class names that differ only by a plural s: {clashes}"


#: Where the product's source lives; docs/ may name the project's history, source may not.
SOURCE_DIRS = ("operator", "testbed", "tests", "bench", "scripts", "charts", "playbooks", "templates")
#: Documents and trackers outside this repository: a reader of a clone cannot follow them.
OUTSIDE_REFERENCE = re.compile(r"DESIGN\.md|STYLE\.md|research/|\.\./shared|\bissue\s*#?\d+", re.IGNORECASE)


def _source_files() -> list[Path]:
    files: list[Path] = []
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(
            REPO / top
        ):  # symlinks (operator/shimshift/data) not followed
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            files.extend(Path(dirpath) / name for name in filenames)
    return sorted(files)


def test_no_source_file_cites_a_document_or_an_issue_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in _source_files():
        if path.resolve() == this:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if match := OUTSIDE_REFERENCE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert not found, (
        "cite docs/architecture.md or docs/*.md, or write the reason out, instead of:\n" + "\n".join(found)
    )
