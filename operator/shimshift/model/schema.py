"""The CRD's structural schema, applied offline as the API server would: defaults, then validation.

The schema comes from the CRD file itself (never a copy). The OpenAPI v3 dialect is translated to JSON
Schema (int-or-string, nullable, unknown fields rejected as `kubectl apply`'s strict field validation
does), and every failure becomes a `Problem` whose path names the field and whose message teaches the
format.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from shimshift.model.errors import Problem
from shimshift.model.names import OBJECT_NAME, SECRET_KEY

# Patterns are opaque to a reader; say what they mean instead.
_PATTERN_HINTS = {
    r"^([0-9]{1,10}(\.[0-9]{1,9})?(ms|s|m|h)){1,8}$": "must be a duration such as 30s, 5m or 1h30m "
    "(at most 10 digits per number; at most 8760h)",
    r"^[0-9]{1,3}%$": 'must be a count such as 2 or a percentage such as "25%"',
    r"^auto$": 'must be "auto", 2, 3 or 4',
    r"^[a-z_][a-z0-9_-]{0,31}$": "must be a Unix user name (lowercase letters, digits, '_' and '-')",
    r"^unix:///[^\s]+$": "must be a unix socket URL such as unix:///run/containerd/containerd.sock",
    OBJECT_NAME.pattern: "must be an object name: lowercase letters, digits, '-' and '.', starting and "
    "ending with a letter or digit",
    SECRET_KEY.pattern: "must be a Secret data key: letters, digits, '-', '_' and '.'",
}
#: A pattern hint for a Secret reference's name, which a reader might take for a path.
_REF_NAME_HINT = (
    "must be the name of a Secret in the operator's namespace (a Secret name, never a path): "
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)
#: Values an earlier version accepted and this one refuses, by (field path, value): what to do instead.
_RETIRED_VALUES = {
    ("spec.docker", "Remove"): (
        'is not supported: it never removed Docker Engine, it did exactly what "Stop" does; use "Stop", '
        "and remove Docker Engine with the node's own package manager once the node no longer needs to "
        "roll back (without Docker Engine it cannot)"
    ),
}
_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one OpenAPI v3 (Kubernetes structural) schema node to JSON Schema."""
    out: dict[str, Any] = {}
    for key in (
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "required",
        "uniqueItems",
    ):
        if key in node:
            out[key] = node[key]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    if "properties" in node:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = to_json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    return out


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """Return a copy of `value` with the schema's defaults filled in, as the API server does on write.

    Defaults apply to absent fields of objects that exist; a defaulted object is itself defaulted.
    """
    if isinstance(value, dict):
        out = dict(value)
        props: Mapping[str, Any] = schema.get("properties", {})
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name in out.keys() - props.keys():
                out[name] = apply_defaults(out[name], extra)
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def format_path(parts: Iterator[str | int] | list[str | int] | tuple[str | int, ...]) -> str:
    """`spec.containerd.registries[0].host` from its parts."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 2.0 as an integer; the API server does not, and neither does the typed model.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def validate(value: Any, openapi_schema: Mapping[str, Any], *, root: str = "") -> list[Problem]:
    """Every schema violation in `value` (already defaulted), as located, readable problems."""
    validator = _Validator(to_json_schema(openapi_schema))
    problems = []
    for error in validator.iter_errors(value):
        problems.extend(_describe(error, root))
    return sorted(set(problems))


def _describe(error: jsonschema.ValidationError, root: str) -> list[Problem]:
    parts: list[str | int] = [root] if root else []
    parts.extend(error.absolute_path)
    path = format_path(parts)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    inst: Any = error.instance
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        unknown = sorted(set(inst) - set(known)) if isinstance(inst, Mapping) else []
        out = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else f"; known fields: {', '.join(known)}"
            out.append(Problem(format_path([*parts, name]), f'unknown field "{name}"{hint}'))
        return out
    if kind == "required":
        missing = [n for n in schema.get("required", []) if isinstance(inst, Mapping) and n not in inst]
        return [Problem(format_path([*parts, n]), "Required value") for n in missing]
    if kind == "enum":
        retired = _RETIRED_VALUES.get((path, inst)) if isinstance(inst, str) else None
        if retired is not None:
            return [Problem(path, f'"{inst}" {retired}')]
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        return [Problem(path, f'Unsupported value: "{inst}": supported values: {allowed}')]
    if kind == "type":
        expected = schema["type"]
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        got = _JSON_TYPE_NAMES.get(type(inst), type(inst).__name__)
        return [Problem(path, f"must be of type {expected_text}, not {got} ({inst!r})")]
    if kind == "pattern":
        hint = _PATTERN_HINTS.get(schema["pattern"], f"must match the pattern {schema['pattern']}")
        if schema["pattern"] == OBJECT_NAME.pattern and path.endswith("SecretRef.name"):
            hint = _REF_NAME_HINT
        return [Problem(path, f"invalid value {inst!r}: {hint}")]
    if kind in ("minimum", "maximum"):
        op = ">=" if kind == "minimum" else "<="
        return [Problem(path, f"must be {op} {schema[kind]}, not {inst}")]
    if kind in ("minLength", "maxLength"):
        what = "at least" if kind == "minLength" else "at most"
        return [Problem(path, f"must be {what} {schema[kind]} characters long")]
    if kind in ("minItems", "maxItems"):
        what = "at least" if kind == "minItems" else "at most"
        return [Problem(path, f"must have {what} {schema[kind]} items")]
    return [Problem(path, error.message)]
