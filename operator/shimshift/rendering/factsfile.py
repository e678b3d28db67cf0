"""A JSON form of NodeFacts, for `shimshift render --facts FILE` and for example facts files.

The mapping is generic over `shimshift.model.facts`' dataclasses (field names as they are in Python,
nested objects for nested dataclasses, lists for tuples), so fields added there are picked up without
a change here. Unknown keys are rejected with their path, so a misspelt key never goes unnoticed.
Facts never hold key material, so neither does this file.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any

from shimshift.model import facts as facts_module
from shimshift.model.errors import Problem, ValidationError
from shimshift.model.facts import NodeFacts


def facts_to_json(facts: NodeFacts) -> str:
    return json.dumps(_dump(facts), indent=2, sort_keys=False) + "\n"


def facts_from_json(text: str, source: str = "facts") -> NodeFacts:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError([Problem("", f"is not JSON: {e}")], source=source) from e
    problems: list[Problem] = []
    value = _load(raw, NodeFacts, "", problems)
    if problems:
        raise ValidationError(problems, source=source)
    assert isinstance(value, NodeFacts)
    return value


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value


def _load(raw: Any, hint: Any, path: str, problems: list[Problem]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _load(raw, inner[0], path, problems)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(raw, Mapping):
            problems.append(Problem(path, f"must be an object ({hint.__name__})"))
            return None
        hints = typing.get_type_hints(hint, vars(facts_module))
        names = {f.name for f in dataclasses.fields(hint)}
        for key in sorted(set(raw) - names):
            problems.append(Problem(_join(path, key), f"unknown field; known: {', '.join(sorted(names))}"))
        kwargs = {k: _load(v, hints[k], _join(path, k), problems) for k, v in raw.items() if k in names}
        try:
            return hint(**kwargs)
        except TypeError as e:
            problems.append(Problem(path, str(e)))
            return None
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(raw)
        except ValueError:
            known = ", ".join(str(m.value) for m in hint)
            problems.append(Problem(path, f"{raw!r} is not one of {known}"))
            return None
    if origin is tuple:
        if not isinstance(raw, list):
            problems.append(Problem(path, "must be a list"))
            return ()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(raw))
        return tuple(
            _load(v, a, f"{path}[{i}]", problems) for i, (v, a) in enumerate(zip(raw, args, strict=False))
        )
    if origin in (Mapping, dict, typing.Mapping) or hint is dict:
        if not isinstance(raw, Mapping):
            problems.append(Problem(path, "must be an object"))
            return {}
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): _load(v, value_hint, _join(path, str(k)), problems) for k, v in raw.items()}
    if hint in (str, int, bool, float):
        ok = isinstance(raw, hint) and not (hint is int and isinstance(raw, bool))
        if not ok:
            problems.append(Problem(path, f"must be {hint.__name__}, not {type(raw).__name__}"))
        return raw
    return raw


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
