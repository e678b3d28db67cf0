"""Structural-schema handling for custom resources: pruning, defaulting and validation.

The order and the error texts follow the apiextensions-apiserver: unknown fields are pruned (or,
with ``fieldValidation=Strict``, reported), ``default`` values are applied, then the object is
validated against the openAPIV3Schema and every failure becomes a field-path cause such as
``spec.mode: Unsupported value: "Foo": supported values: "Plan", "Migrate"``.
Not covered: CEL rules (``x-kubernetes-validations``), ``format`` checks, list-type uniqueness.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import FieldError, render_value

Schema = dict[str, Any]
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _index(path: str, i: int | str) -> str:
    return f"{path}[{i}]"


# --- pruning ------------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: Schema) -> list[str]:
    """Drop fields the schema does not declare, in place; returns their paths (for strict mode)."""
    unknown: list[str] = []
    for key in list(obj):
        if key in _ROOT_KEEP:
            continue
        props = schema.get("properties") or {}
        if key in props:
            obj[key] = _prune(obj[key], props[key], key, unknown)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            unknown.append(key)
            del obj[key]
    return unknown


def _prune(value: Any, schema: Schema, path: str, unknown: list[str]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            sub = _child(path, key)
            if props and key in props:
                value[key] = _prune(value[key], props[key], sub, unknown)
            elif isinstance(addl, dict):
                value[key] = _prune(value[key], addl, _index(path, key), unknown)
            elif preserve or addl is True or (embedded and key in _ROOT_KEEP):
                continue
            elif props is not None or addl is False or schema.get("type") == "object":
                unknown.append(sub)
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(v, schema["items"], _index(path, i), unknown) for i, v in enumerate(value)]
    return value


# --- defaulting ---------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: Schema) -> Any:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in _ROOT_KEEP and "metadata" in value and key == "metadata":
                continue
            if (key not in value or (value[key] is None and not sub.get("nullable"))) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            props = schema.get("properties") or {}
            for key in value:
                if key not in props:
                    value[key] = apply_defaults(value[key], addl)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


# --- validation ---------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, typ: str) -> bool:
    actual = _type_name(value)
    if typ == "number":
        return actual in ("integer", "number")
    if typ == "integer" and isinstance(value, float):
        return value.is_integer()
    return actual == typ


def _fmt_num(n: Any) -> str:
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


def validate(obj: dict[str, Any], schema: Schema) -> list[FieldError]:
    errors: list[FieldError] = []
    props = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in obj and key not in _ROOT_KEEP:
            errors.append(FieldError("FieldValueRequired", key, "Required value"))
    for key, value in obj.items():
        if key in _ROOT_KEEP or key not in props:
            continue
        _validate(value, props[key], key, errors)
    return errors


def _invalid(errors: list[FieldError], path: str, value: Any, detail: str) -> None:
    errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {render_value(value)}: {detail}"))


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    if value is None:
        if schema.get("nullable"):
            return
        typ = schema.get("type")
        if typ:
            errors.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "null": {path} in body must be of type {typ}: "null"',
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "{_type_name(value)}": {path} in body must be of type '
                    f'integer,string: "{_type_name(value)}"',
                )
            )
            return
    elif (typ := schema.get("type")) and not _type_ok(value, typ):
        actual = _type_name(value)
        errors.append(
            FieldError(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "{actual}": {path} in body must be of type {typ}: "{actual}"',
            )
        )
        return

    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(render_value(v) for v in schema["enum"])
        errors.append(
            FieldError(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {render_value(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                FieldError(
                    "FieldValueTooLong", path, f"Too long: may not be longer than {schema['maxLength']}"
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            _invalid(
                errors, path, value, f"{path} in body should be at least {schema['minLength']} chars long"
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            _invalid(errors, path, value, f"{path} in body should match '{schema['pattern']}'")
    if isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                FieldError(
                    "FieldValueTooMany",
                    path,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            _invalid(
                errors, path, len(value), f"{path} in body should have at least {schema['minItems']} items"
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _validate(item, items, _index(path, i), errors)
    if isinstance(value, dict):
        _validate_object(value, schema, path, errors)
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in schema:
            _validate_combinator(value, schema[combinator], combinator, path, errors)
    if "not" in schema:
        probe: list[FieldError] = []
        _validate(value, schema["not"], path, probe)
        if not probe:
            _invalid(errors, path, value, f"{path} in body must not validate the schema (not)")


def _validate_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    if "maximum" in schema:
        limit = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= limit:
            _invalid(errors, path, value, f"{path} in body should be less than {_fmt_num(limit)}")
        elif value > limit:
            _invalid(errors, path, value, f"{path} in body should be less than or equal to {_fmt_num(limit)}")
    if "minimum" in schema:
        limit = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= limit:
            _invalid(errors, path, value, f"{path} in body should be greater than {_fmt_num(limit)}")
        elif value < limit:
            _invalid(
                errors, path, value, f"{path} in body should be greater than or equal to {_fmt_num(limit)}"
            )
    if (m := schema.get("multipleOf")) and (value / m) != int(value / m):
        _invalid(errors, path, value, f"{path} in body should be a multiple of {_fmt_num(m)}")


def _validate_object(value: dict[str, Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    props = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(FieldError("FieldValueRequired", _child(path, key), "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            FieldError(
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        _invalid(
            errors,
            path,
            len(value),
            f"{path} in body should have at least {schema['minProperties']} properties",
        )
    addl = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _validate(item, props[key], _child(path, key), errors)
        elif isinstance(addl, dict):
            _validate(item, addl, _index(path, key), errors)


def _validate_combinator(
    value: Any, schemas: list[Schema], combinator: str, path: str, errors: list[FieldError]
) -> None:
    results = []
    for sub in schemas:
        probe: list[FieldError] = []
        _validate(value, sub, path, probe)
        results.append(probe)
    passed = sum(1 for r in results if not r)
    if combinator == "allOf":
        for r in results:
            errors.extend(r)
    elif combinator == "anyOf" and passed == 0:
        _invalid(errors, path, value, f"{path} in body must be of type {_alternatives(schemas)}")
    elif combinator == "oneOf" and passed != 1:
        _invalid(errors, path, value, f"{path} in body must validate one and only one schema (oneOf)")


def _alternatives(schemas: list[Schema]) -> str:
    types = [str(s["type"]) for s in schemas if s.get("type")]
    return ",".join(types) if types else "one of the allowed schemas (anyOf)"


def check_structural(schema: object, path: str = "spec.validation.openAPIV3Schema") -> list[FieldError]:
    """The few structural-schema rules whose violation would make validation meaningless."""
    errors: list[FieldError] = []
    if not isinstance(schema, dict):
        return [FieldError("FieldValueRequired", path, "Required value")]
    if schema.get("type") not in (None, "object"):
        errors.append(
            FieldError(
                "FieldValueInvalid",
                f"{path}.type",
                f'Invalid value: "{schema.get("type")}": must be object at the root',
            )
        )
    _forbidden_in_structural(schema, path, errors)
    return errors


def _forbidden_in_structural(schema: Schema, path: str, errors: list[FieldError]) -> None:
    """What a real API server forbids anywhere in a structural schema, with its words: uniqueItems true
    (quadratic to check) and additionalProperties beside properties."""
    if schema.get("uniqueItems") is True:
        errors.append(
            FieldError(
                "FieldValueForbidden",
                f"{path}.uniqueItems",
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    if "additionalProperties" in schema and "properties" in schema:
        errors.append(
            FieldError(
                "FieldValueForbidden",
                f"{path}.additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            )
        )
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            _forbidden_in_structural(sub, f"{path}.properties[{name}]", errors)
    for key in ("items", "additionalProperties", "not"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            _forbidden_in_structural(sub, f"{path}.{key}", errors)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            if isinstance(sub, dict):
                _forbidden_in_structural(sub, f"{path}.{key}[{i}]", errors)
