"""NodeFacts to and from JSON: the one codec behind snapshot directories (`facts/<node>.json`),
`shimshift render --facts FILE` and the plan report's JSON.

The codec follows the dataclass type hints of `shimshift.model.facts`, so a field the probe gains is
carried without a change here. Keys are the Python field names, so one facts file serves every
command. Unknown keys are rejected with their path, so a misspelt hand-written facts file fails
loudly. Facts never hold key material, so neither does a facts file. Pure.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from shimshift.model.errors import Problem, ValidationError
from shimshift.model.facts import NodeFacts
from shimshift.model.limits import InputLimitError, json_loads

T = TypeVar("T")


def camel(name: str) -> str:
    """`schema_version` -> `schemaVersion`: the report's JSON keys (facts keep the field names)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


Encoder = Callable[[Any], Any]
Decoder = Callable[[Any, str | None], Any]
_SIMPLE = (str, int, bool, float)


def _generic(value: Any, key: Callable[[str], str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encoder(type(value), key)(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _generic(v, key) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_generic(v, key) for v in value]
    return value


def _as_is(value: Any) -> Any:
    return value


@cache
def _encoder(tp: Any, key: Callable[[str], str]) -> Encoder:
    """A function turning values of type `tp` into JSON values, built once per type from its hints."""
    origin, args = get_origin(tp), get_args(tp)
    if tp in _SIMPLE:
        return _as_is
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _encoder(next(a for a in args if a is not type(None)), key)
        if inner is _as_is:
            return _as_is
        return lambda v: None if v is None else inner(v)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return lambda v: v.value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_encoder(tp, key)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if args[0] in _SIMPLE:
            return list
        item = _encoder(args[0], key)
        return lambda v: [item(x) for x in v]
    return lambda v: _generic(v, key)


def _dataclass_encoder(tp: type, key: Callable[[str], str]) -> Encoder:
    """Reads every field at once (in field order, which is the key order) and encodes only the fields
    whose values are not JSON values already: report dataclasses are mostly strings and numbers."""
    hints = typing.get_type_hints(tp)
    names = [f.name for f in dataclasses.fields(tp)]
    keys = tuple(key(name) for name in names)
    encoders = [(key(name), _encoder(hints[name], key)) for name in names]
    convert = tuple((k, enc) for k, enc in encoders if enc is not _as_is)

    def each(v: Any) -> tuple[Any, ...]:
        return tuple(getattr(v, name) for name in names)

    # attrgetter of two names or more returns their values as a tuple (of one name, the bare value)
    values: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names) if len(names) > 1 else each

    def encode(v: Any) -> dict[str, Any]:
        out = dict(zip(keys, values(v), strict=True))
        for k, enc in convert:
            out[k] = enc(out[k])
        return out

    return encode


def to_jsonable(value: Any, key: Callable[[str], str] = camel) -> Any:
    """Plain JSON values for a (nested) frozen dataclass; enums become their values, tuples lists;
    dataclass field names go through `key`."""
    return _generic(value, key)


def _same(name: str) -> str:
    return name


# Paths are built only to explain a failure: decoding runs with `path=None` (FAST) first, and a file
# that fails is decoded again with paths for the message. 150,000 images make the difference.
FAST = None


def _fail(path: str | None, message: str) -> ValidationError:
    return ValidationError([Problem(path or "", message)])


def _join(path: str | None, key: str) -> str | None:
    if path is None:
        return None
    return f"{path}.{key}" if path else key


def _index(path: str | None, i: int) -> str | None:
    return None if path is None else f"{path}[{i}]"


def _check(kind: type | tuple[type, ...], what: str) -> Decoder:
    def decode(raw: Any, path: str | None) -> Any:
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            raise _fail(path, f"expected {what}, got {raw!r}")
        return raw

    return decode


@cache
def _decoder(tp: Any) -> Decoder:
    """A validating function from JSON values to `tp`, built once per type from its hints."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return lambda raw, path: raw
    if origin in (Union, types.UnionType):
        inner = _decoder(next(a for a in args if a is not type(None)))
        nullable = type(None) in args
        return lambda raw, path: None if raw is None and nullable else inner(raw, path)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return lambda raw, path: _decode_dataclass(tp, raw, path)
    if isinstance(tp, type) and issubclass(tp, Enum):
        enum_type = tp

        def decode_enum(raw: Any, path: str | None) -> Any:
            try:
                return enum_type(raw)
            except ValueError:
                choices = ", ".join(str(m.value) for m in enum_type)
                raise _fail(path, f"{raw!r} is not one of {choices}") from None

        return decode_enum
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])

            strings = args[0] is str

            def decode_list(raw: Any, path: str | None) -> Any:
                if not isinstance(raw, list):
                    raise _fail(path, f"expected a list, got {type(raw).__name__}")
                if strings and path is None and all(isinstance(v, str) for v in raw):
                    return tuple(raw)  # the common case, checked without a call per item
                if path is None:
                    return tuple(item(v, None) for v in raw)
                return tuple(item(v, _index(path, i)) for i, v in enumerate(raw))

            return decode_list
        items = [_decoder(a) for a in args]

        def decode_tuple(raw: Any, path: str | None) -> Any:
            if not isinstance(raw, list) or len(raw) != len(items):
                raise _fail(path, f"expected a list of {len(items)} items, got {raw!r}")
            return tuple(d(v, _index(path, i)) for i, (d, v) in enumerate(zip(items, raw, strict=True)))

        return decode_tuple
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        value = _decoder(args[1] if len(args) == 2 else Any)

        def decode_mapping(raw: Any, path: str | None) -> Any:
            if not isinstance(raw, Mapping):
                raise _fail(path, f"expected an object, got {type(raw).__name__}")
            return {str(k): value(v, _join(path, str(k))) for k, v in raw.items()}

        return decode_mapping
    names = {bool: "true or false", int: "an integer", str: "a string", float: "a number"}
    if tp in names:
        return _check(tp, names[tp])
    raise _fail("", f"cannot decode type {tp!r}")  # pragma: no cover - a new kind of field in facts.py


def _plain(tp: Any) -> tuple[type, ...]:
    """The exact JSON value types a field of type `tp` takes as they are (str for str, str and None for
    `str | None`); empty when every value goes through the field's decoder."""
    args = get_args(tp)
    if get_origin(tp) in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _plain(next(a for a in args if a is not type(None)))
        return (*inner, type(None)) if inner else ()
    return (tp,) if tp in _SIMPLE else ()


_Fields = dict[str, tuple[dataclasses.Field[Any], Decoder, tuple[type, ...]]]


@cache
def _dataclass_fields(cls: type) -> tuple[_Fields, frozenset[str]]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: (f, _decoder(hints[f.name]), _plain(hints[f.name])) for f in dataclasses.fields(cls)}
    required = frozenset(
        name
        for name, (f, _, _) in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return fields, required


def _decode_dataclass(cls: type[T], raw: Any, path: str | None) -> T:
    if not isinstance(raw, Mapping):
        raise _fail(path, f"expected an object, got {type(raw).__name__}")
    fields, required = _dataclass_fields(typing.cast(type, cls))
    kwargs = {}
    if path is None:  # FAST: the same checks without building paths
        for key, value in raw.items():
            entry = fields.get(key)
            if entry is None:
                raise _fail(None, "unknown field")
            # a value of exactly the field's plain type is what its decoder would return: no call
            kwargs[key] = value if type(value) in entry[2] else entry[1](value, None)
        if not required.issubset(kwargs):
            raise _fail(None, "Required value")
        return cls(**kwargs)
    for key, value in raw.items():
        entry = fields.get(key)
        if entry is None:
            raise _fail(_join(path, str(key)), f"unknown field; known fields: {', '.join(sorted(fields))}")
        kwargs[key] = entry[1](value, _join(path, key))
    missing = sorted(required - set(kwargs))
    if missing:
        raise _fail(_join(path, missing[0]), "Required value")
    return cls(**kwargs)


def facts_to_mapping(node_facts: NodeFacts) -> dict[str, Any]:
    """`node_facts` as a JSON-ready dict (what `facts_to_json_text` dumps and a snapshot stores)."""
    out: dict[str, Any] = to_jsonable(node_facts, _same)
    return out


def facts_from_mapping(raw: Any, *, source: str = "") -> NodeFacts:
    """NodeFacts from a parsed JSON object; a ValidationError names the bad field path and `source`."""
    try:
        return _decode_dataclass(NodeFacts, raw, FAST)
    except ValidationError:
        pass
    try:
        return _decode_dataclass(NodeFacts, raw, "")  # again, with field paths for the message
    except ValidationError as e:
        raise ValidationError(e.problems, source=source) from None


def facts_to_json_text(node_facts: NodeFacts) -> str:
    """A facts file's text."""
    return json.dumps(facts_to_mapping(node_facts), indent=2) + "\n"


def facts_from_json_text(text: str, source: str = "facts") -> NodeFacts:
    """NodeFacts from a facts file's text; a ValidationError says what is wrong and where."""
    try:
        raw = json_loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError([Problem("", f"is not JSON: {e}")], source=source) from e
    except InputLimitError as e:
        raise ValidationError([Problem("", f"refused: {e}")], source=source) from e
    return facts_from_mapping(raw, source=source)
