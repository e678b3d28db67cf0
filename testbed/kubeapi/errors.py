"""API errors shaped like the real API server's ``kind: Status`` answers.

Clients parse these: kubectl formats ``Invalid`` causes into "The Kind "name" is invalid: ..." lines,
kopf and the ``kubernetes`` client read ``code`` and ``reason``. The message texts follow
k8s.io/apimachinery/pkg/api/errors so that output matches a real cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testbed.apirequests.status import status_body as status_body  # shared with the proxy


def success_body(code: int = 200, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    }
    if details:
        body["details"] = details
    return body


@dataclass
class ApiError(Exception):
    """An error the server answers with a ``Status`` body."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        f" (got {content_type!r})",
    )


def gone(requested: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


@dataclass(frozen=True)
class FieldError:
    """One field-path cause, as k8s.io/apimachinery/pkg/util/validation/field.Error renders it."""

    type: str  # cause reason, e.g. FieldValueNotSupported
    field: str  # e.g. spec.mode
    message: str  # the error body without the field, e.g. 'Unsupported value: "Foo": supported ...'

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def render_value(value: Any) -> str:
    """Format a bad value like Go's field.Error does (strings quoted, numbers bare)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{render_value(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(render_value(v) for v in value) + "]"
    return str(value)


def invalid(kind: str, group: str, name: str, causes: list[FieldError]) -> ApiError:
    qkind = f"{kind}.{group}" if group else kind
    summary = str(causes[0]) if len(causes) == 1 else "[" + ", ".join(str(c) for c in causes) + "]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": c.type, "message": c.message, "field": c.field} for c in causes],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qkind} "{name}" is invalid: {summary}', details)
