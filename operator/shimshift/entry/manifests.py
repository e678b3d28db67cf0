"""Reading NodeMigration manifests from files: YAML with located syntax errors, many documents per file.

Manifests may come from untrusted pull requests (CI runs `shimshift validate` on them), so reading is
bounded (`shimshift.model.limits`): regular files of at most 1 MiB, YAML at most 100 levels deep, aliases
that cannot expand past ten times the document. Pure apart from reading the files it is given; used by
the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from shimshift.model.errors import Problem
from shimshift.model.limits import MAX_MANIFEST_BYTES, InputLimitError, check_size, read_text, yaml_load_all

#: YAML nodes in one manifest file, aliases expanded (5,000 nodeNames and every field are ~6,000).
MANIFEST_MAX_NODES = 100_000


def read_stdin(stream: TextIO) -> str:
    """Standard input, at most MAX_MANIFEST_BYTES (one character more, so the cap is seen)."""
    return stream.read(MAX_MANIFEST_BYTES + 1)


@dataclass(frozen=True)
class Document:
    source: str  # "file.yaml" or "file.yaml#2" for the second document
    body: Any


def expand_paths(paths: list[str]) -> Iterator[Path | Problem]:
    """Files named, and the *.yaml/*.yml files in directories named (sorted), or a problem per bad path."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                yield Problem(raw, "directory holds no .yaml or .yml files")
            yield from found
        elif path.is_file() or raw == "-":
            yield path
        elif path.exists():
            yield Problem(raw, "is not a regular file (a FIFO, device or socket?); name a manifest file")
        else:
            yield Problem(raw, "no such file")


def read_documents(path: Path, text: str | None = None) -> tuple[list[Document], list[Problem]]:
    """The documents in one YAML file, or a problem with line and column for a syntax error."""
    name = str(path)
    try:
        if text is None:
            text = read_text(path, MAX_MANIFEST_BYTES)
        check_size(text, MAX_MANIFEST_BYTES, "the manifest")
        bodies = list(yaml_load_all(text, max_nodes=MANIFEST_MAX_NODES))
    except InputLimitError as e:
        return [], [Problem(name, f"refused: {e}")]
    except UnicodeDecodeError:
        return [], [Problem(name, "is not UTF-8 text")]
    except OSError as e:
        return [], [Problem(name, f"cannot be read: {e.strerror or e}")]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or str(e)
        return [], [Problem(name, f"YAML syntax error at {where}{what}")]
    docs = [b for b in bodies if b is not None] or bodies[:1]
    many = len(docs) > 1
    return [Document(f"{name}#{i + 1}" if many else name, b) for i, b in enumerate(docs)], []
