"""The Jinja2 environment for containerd templates: StrictUndefined, and TOML-quoting filters.

Templates never place a value as raw text: strings go through `toml_str` (a TOML basic string with
every control character escaped), booleans through `toml_bool`, lists through `toml_str_list`, table
names through `toml_key` (bare keys only), so no value (a node's daemon.json, a spec field) can inject
TOML. Each filter rejects the wrong type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from shimshift.model.errors import RenderError
from shimshift.resources import data_path

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_str(value: object) -> str:
    """A TOML basic string holding exactly `value`."""
    if not isinstance(value, str):
        raise RenderError(f"template bug: toml_str expects a string, got {type(value).__name__}")
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_bool(value: object) -> str:
    if not isinstance(value, bool):
        raise RenderError(f"template bug: toml_bool expects a bool, got {type(value).__name__}")
    return "true" if value else "false"


def toml_str_list(values: object) -> str:
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise RenderError("template bug: toml_str_list expects a list of strings")
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def toml_pairs(values: object) -> str:
    if not isinstance(values, tuple | list):
        raise RenderError("template bug: toml_pairs expects a list of pairs")
    return "[" + ", ".join(toml_str_list(list(pair)) for pair in values) + "]"


def toml_scalar(value: object) -> str:
    """A string or a boolean as TOML."""
    return toml_bool(value) if isinstance(value, bool) else toml_str(value)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(value: object) -> str:
    """A TOML bare key (letters, digits, - and _): names in table headers are never quoted text."""
    if not isinstance(value, str) or not _BARE_KEY.match(value):
        raise RenderError(f"template bug: toml_key expects a bare key, got {value!r}")
    return value


def toml_comment(value: object) -> str:
    """Text safe inside a TOML comment: printable characters only, no line breaks."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(value))


@cache
def environment() -> jinja2.Environment:
    # autoescape is for HTML; TOML values are quoted by the filters below.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_path("templates", "containerd"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    env.filters.update(
        toml_str=toml_str,
        toml_bool=toml_bool,
        toml_str_list=toml_str_list,
        toml_pairs=toml_pairs,
        toml_comment=toml_comment,
        toml_scalar=toml_scalar,
        toml_key=toml_key,
    )
    return env


def render_template(name: str, values: Mapping[str, Any]) -> str:
    try:
        return environment().get_template(name).render(**values)
    except jinja2.UndefinedError as e:
        raise RenderError(f"template {name}: {e.message}; this is a shimshift bug") from e
