"""Reading raw API objects whose fields may have any type (snapshot files are hand-editable).

Each reader returns the field's value when it has the expected type and raises `ShapeError` naming the
field otherwise, so `shimshift plan --snapshot` answers a wrongly typed object with the file and the
object path (`pods.yaml: items[3].spec.containers[0].image: expected a string, got a list`) instead of
an AttributeError traceback. Paths are relative to what the reader was given; `each` adds an
item's index only when that item fails, so the 150,000-pod common case builds no path strings. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
SCALARS = (str, int, float)


class ShapeError(ValueError):
    """A raw object field of the wrong type; `path` is relative to the object (`spec.containers[0]`)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def as_map(raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ShapeError(path, f"expected an object, got {kind_of(raw)}")
    return raw


def as_list(raw: Any, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ShapeError(path, f"expected a list, got {kind_of(raw)}")
    return raw


def as_str(raw: Any, path: str, default: str = "") -> str:
    if raw is None:
        return default
    if isinstance(raw, str):
        return raw
    if isinstance(raw, SCALARS) and not isinstance(raw, bool):
        return str(raw)
    raise ShapeError(path, f"expected a string, got {kind_of(raw)}")


def as_strs(raw: Any, path: str) -> tuple[str, ...]:
    if type(raw) is list and all(type(v) is str for v in raw):
        return tuple(raw)
    return tuple(as_str(v, f"{path}[{i}]") for i, v in enumerate(as_list(raw, path)))


def as_str_map(raw: Any, path: str) -> dict[str, str]:
    """Labels and annotations: string keys and values (numbers are taken as their text)."""
    if type(raw) is dict and all(type(k) is str and type(v) is str for k, v in raw.items()):
        return dict(raw)  # the common case, checked without a call per entry
    out = {}
    for k, v in as_map(raw, path).items():
        key = as_str(k, path)
        out[key] = as_str(v, f"{path}.{key}")
    return out


def as_bool(raw: Any, path: str, default: bool = False) -> bool:
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise ShapeError(path, f"expected true or false, got {kind_of(raw)}")
    return raw


def as_int(raw: Any, path: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2**63:
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    raise ShapeError(path, f"expected an integer, got {raw!r}"[:200])


def each(parse: Callable[[Any], T], raw: Any, path: str) -> tuple[T, ...]:
    """`parse` of each item of the list at `path`; a ShapeError gets the item's index in its path.

    Item parsers raise paths relative to the item, so no path string is built unless one fails."""
    items = as_list(raw, path)
    try:
        return tuple(map(parse, items))
    except ShapeError:
        for i, item in enumerate(items):
            try:
                parse(item)
            except ShapeError as e:
                raise ShapeError(f"{path}[{i}]" + (f".{e.path}" if e.path else ""), e.message) from None
        raise  # pragma: no cover - the same items failed once
