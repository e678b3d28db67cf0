"""NodeFacts to and from JSON, for snapshot directories (`facts/<node>.json`).

The codec follows the dataclass type hints of `shimshift.model.facts`, so a field the probe gains is
carried without a change here. Keys are the Python field names, exactly as `shimshift render --facts`
reads them (`shimshift.rendering.factsfile`, a sibling layer this one may not import), so one facts
file serves both commands; a test holds the two codecs to the same format. Unknown keys are rejected
with their path, so a misspelt hand-written facts file fails loudly. Pure.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from shimshift.model import facts as facts_module
from shimshift.model.errors import Problem, ValidationError
from shimshift.model.facts import NodeFacts

T = TypeVar("T")


def camel(name: str) -> str:
    """`schema_version` -> `schemaVersion`: the report's JSON keys (facts keep the field names)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(facts_module))


def to_jsonable(value: Any, key: Callable[[str], str] = camel) -> Any:
    """Plain JSON values for a (nested) frozen dataclass; enums become their values, tuples lists;
    dataclass field names go through `key`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key(f.name): to_jsonable(getattr(value, f.name), key) for f in _fields(type(value))}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, key) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_jsonable(v, key) for v in value]
    return value


@cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def _same(name: str) -> str:
    return name


def _fail(path: str, message: str) -> ValidationError:
    return ValidationError([Problem(path, message)])


def _decode(tp: Any, raw: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return raw
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], raw, path)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_dataclass(tp, raw, path)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(raw)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise _fail(path, f"{raw!r} is not one of {choices}") from None
    if origin is tuple:
        if not isinstance(raw, list):
            raise _fail(path, f"expected a list, got {type(raw).__name__}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(raw))
        if len(raw) != len(args):
            raise _fail(path, f"expected {len(args)} items, got {len(raw)}")
        return tuple(_decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, raw, strict=True)))
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        if not isinstance(raw, Mapping):
            raise _fail(path, f"expected an object, got {type(raw).__name__}")
        args = get_args(tp)
        value_tp = args[1] if len(args) == 2 else Any
        return {str(k): _decode(value_tp, v, f"{path}.{k}") for k, v in raw.items()}
    if tp is bool:
        if not isinstance(raw, bool):
            raise _fail(path, f"expected true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _fail(path, f"expected an integer, got {raw!r}")
        return raw
    if tp is str:
        if not isinstance(raw, str):
            raise _fail(path, f"expected a string, got {raw!r}")
        return raw
    raise _fail(path, f"cannot decode type {tp!r}")  # pragma: no cover - a new kind of field in facts.py


def _decode_dataclass(cls: type[T], raw: Any, path: str) -> T:
    if not isinstance(raw, Mapping):
        raise _fail(path, f"expected an object, got {type(raw).__name__}")
    hints = _hints(typing.cast(type, cls))
    by_key = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(by_key))
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown field; known fields: {', '.join(sorted(by_key))}")
    kwargs = {}
    for key, f in by_key.items():
        if key in raw:
            kwargs[f.name] = _decode(hints[f.name], raw[key], f"{path}.{key}" if path else key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(f"{path}.{key}" if path else key, "Required value")
    return cls(**kwargs)


def facts_to_json(node_facts: NodeFacts) -> dict[str, Any]:
    """The JSON object of `node_facts`."""
    out: dict[str, Any] = to_jsonable(node_facts, _same)
    return out


def facts_from_json(raw: Any, *, source: str = "") -> NodeFacts:
    """NodeFacts from its JSON object; a ValidationError names the bad field path and `source`."""
    try:
        return _decode_dataclass(NodeFacts, raw, "")
    except ValidationError as e:
        raise ValidationError(e.problems, source=source) from None
