"""Bounds on untrusted input, and the readers and parsers that enforce them.

Manifests come from pull requests (`shimshift validate` in CI), snapshots and facts from other
machines, config files from the nodes themselves. None of them may stall, crash or exhaust the process:

- files are read only when they are regular files (never a FIFO, a device or a link to one), opened
  non-blocking, and only up to a size cap;
- YAML is composed by a guarded composer that caps nesting depth and the nodes YAML aliases add (an
  "alias bomb" of a few hundred bytes otherwise expands to billions of nodes); libyaml's C parser is
  used when present, but never its C composer, which recurses on the C stack and segfaults on deep
  nesting (a 200 KB file is enough);
- TOML and JSON parsing turns `RecursionError` into a clear `InputLimitError`.

Every failure is an `InputLimitError` (a `ValueError`), whose message names what was refused and the
limit. Pure apart from `read_regular_file`, which reads the one file it is given.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

MiB = 1 << 20
#: A NodeMigration manifest file (the CRD's own fields are far smaller; 5,000 nodeNames are ~100 KB).
MAX_MANIFEST_BYTES = 1 * MiB
#: One file from a node: config.toml, daemon.json, a kubelet config or env file.
MAX_NODE_FILE_BYTES = 1 * MiB
#: One facts/<node>.json (a node with thousands of images is a few MB).
MAX_FACTS_BYTES = 32 * MiB
#: One object file of a snapshot (pods.json of 150,000 pods is about 130 MB).
MAX_SNAPSHOT_FILE_BYTES = 2048 * MiB
#: Nesting depth of any YAML/JSON/TOML document (Kubernetes objects nest about 15 deep).
MAX_DEPTH = 100
#: YAML aliases may add at most this many nodes per node written out, plus ALIAS_ALLOWANCE.
ALIAS_RATIO = 10
ALIAS_ALLOWANCE = 10_000


class InputLimitError(ValueError):
    """An input refused because it is too large, too deep or expands too far; the message says which."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`, else InputLimitError/OSError.

    Opened with O_NONBLOCK so that a FIFO swapped in after any check cannot block the open; the type is
    checked on the open descriptor (links are followed, so a link to /dev/urandom is refused too).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputLimitError(
                f"{path} is not a regular file ({_file_kind(info.st_mode)}); refusing to read it"
            )
        if info.st_size > max_bytes:
            raise InputLimitError(f"{path} is {info.st_size} bytes; the limit is {_size(max_bytes)}")
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 16 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InputLimitError(f"{path} is larger than the limit of {_size(max_bytes)}")
    return data


def read_text(path: Path, max_bytes: int) -> str:
    """`read_regular_file` decoded as UTF-8 (a UnicodeDecodeError says it is not text)."""
    return read_regular_file(path, max_bytes).decode("utf-8")


def check_size(text: str, max_bytes: int, what: str) -> None:
    if len(text) > max_bytes:
        raise InputLimitError(f"{what} is {len(text)} characters; the limit is {_size(max_bytes)}")


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n} bytes"


class _GuardedComposer(Composer):
    """Composer that refuses nesting deeper than `max_depth` and alias expansion past a budget.

    An alias adds the size of the node it names (counted when that node was composed), so the count is
    of the document as a consumer walking it would see it, not of the text.
    """

    max_depth = MAX_DEPTH
    max_nodes: int | None = None
    # the parser's, mixed in by the loader classes (annotations only: no attribute is shadowed)
    check_event: Any
    peek_event: Any

    def _guard_init(self) -> None:
        self._depth = 0
        self._written = 0  # nodes in the text
        self._expanded = 0  # nodes added by aliases
        self._sizes: dict[str, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        if self.check_event(AliasEvent):
            anchor = self.peek_event().anchor
            node: Any = super().compose_node(parent, index)  # raises on an undefined alias
            self._expanded += self._sizes.get(anchor, 1)
            if self._expanded > ALIAS_RATIO * self._written + ALIAS_ALLOWANCE:
                raise InputLimitError(
                    f"YAML aliases expand to more than {ALIAS_RATIO} times the document "
                    f"(alias *{anchor}, line {node.start_mark.line + 1}); refusing a possible alias bomb"
                )
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            mark = self.peek_event().start_mark
            raise InputLimitError(
                f"YAML nested more than {self.max_depth} levels deep at line {mark.line + 1}"
            )
        anchor = getattr(self.peek_event(), "anchor", None)
        before = self._written + self._expanded
        self._written += 1
        if self.max_nodes is not None and self._written > self.max_nodes:
            raise InputLimitError(f"YAML document has more than {self.max_nodes} nodes")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._sizes[anchor] = self._written + self._expanded - before
        return node

    def compose_document(self) -> Node | None:
        self._sizes = {}
        return super().compose_document()


class _PureLoader(yaml.SafeLoader, _GuardedComposer):
    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._guard_init()


_CParser: Any = getattr(getattr(yaml, "_yaml", None), "CParser", None)

if _CParser is not None:

    class _FastLoader(_CParser, _GuardedComposer, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's C scanner and parser (iterative), the guarded Python composer, safe construction."""

        # CParser has its own (recursive, C-stack) composer; these names take the Python one instead.
        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._guard_init()

    _Loader: Any = _FastLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _PureLoader


def yaml_load_all(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None) -> Iterator[Any]:
    """The documents of `text` (safe tags only), or yaml.YAMLError / InputLimitError.

    A value the constructor cannot convert (a number over 4,300 digits, an impossible date) is an
    InputLimitError too.
    """
    loader = _Loader(text)
    loader.max_depth = max_depth
    loader.max_nodes = max_nodes
    try:
        while loader.check_data():
            yield loader.get_data()
    except RecursionError as e:  # pragma: no cover - the depth guard stops far earlier
        raise InputLimitError(f"YAML nested too deep (more than {max_depth} levels)") from e
    except InputLimitError:
        raise
    except ValueError as e:  # the constructor's int("9" * 5000), or a date such as 2026-13-45
        raise InputLimitError(f"a YAML value cannot be read: {e}"[:500]) from e
    finally:
        loader.dispose()


def yaml_load(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None) -> Any:
    """The single document of `text` (None if empty), guarded like `yaml_load_all`."""
    docs = list(yaml_load_all(text, max_depth=max_depth, max_nodes=max_nodes))
    if len(docs) > 1:
        raise yaml.YAMLError("expected a single document, found several")
    return docs[0] if docs else None


def json_loads(text: str | bytes) -> Any:
    """`json.loads`, with nesting too deep for the parser as an InputLimitError (JSON errors are
    `json.JSONDecodeError`, a ValueError)."""
    try:
        return json.loads(text)
    except RecursionError as e:
        raise InputLimitError("JSON nested too deep") from e


def toml_loads(
    text: str, *, max_bytes: int = MAX_NODE_FILE_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """`tomllib.loads` with a size cap and a depth cap; too large or too deep is an InputLimitError,
    bad TOML a `tomllib.TOMLDecodeError` as usual."""
    check_size(text, max_bytes, "the TOML text")
    try:
        doc = tomllib.loads(text)
    except RecursionError as e:
        raise InputLimitError("the TOML text is nested too deep to parse") from e
    if depth_exceeds(doc, max_depth):
        raise InputLimitError(f"the TOML text nests tables or arrays more than {max_depth} levels deep")
    return doc


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` (dicts and lists) nests deeper than `max_depth`; iterative, stops early."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
