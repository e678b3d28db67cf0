"""``kind: Status`` failure bodies, as a real API server answers errors (used by the emulator and the
proxy)."""

from __future__ import annotations

from typing import Any


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if not reason:
        del body["reason"]  # as a real server answers an error that is not a Status (etcd's)
    if details is not None:
        body["details"] = details
    return body
