"""The size limits a real cluster enforces, with the real servers' answers (Kubernetes 1.24 texts).

- a request body over 3 MiB: the API server answers 413 ``RequestEntityTooLarge`` before decoding it;
- an object over 1.5 MiB as stored: etcd refuses the write (``--max-request-bytes``) and the API server
  passes its error on as a 500 without a reason. Custom resources are stored as JSON, so their JSON
  size is the stored size; built-in kinds are stored as protobuf, smaller than their JSON, so for them
  this check is stricter than etcd by the encoding's difference;
- a ConfigMap's or a Secret's data over 1 MiB, and an object's annotations over 256 KiB: validation
  answers 422 ``Invalid`` with a ``TooLong`` cause.

The emulator enforces them so that a test on it sees what a real cluster would refuse.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import ApiError, FieldError

MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
MAX_STORED_BYTES = 3 * 1024 * 1024 // 2  # etcd's default --max-request-bytes, 1.5 MiB
MAX_CONFIGMAP_BYTES = 1024 * 1024  # core.MaxSecretSize, used for ConfigMaps too
MAX_ANNOTATION_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB


def check_body(method: str, raw: bytes) -> None:
    if method in ("POST", "PUT", "PATCH") and len(raw) > MAX_REQUEST_BODY_BYTES:
        raise ApiError(
            413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"
        )


def check_stored(obj: dict[str, Any]) -> None:
    if len(json.dumps(obj, separators=(",", ":"))) > MAX_STORED_BYTES:
        raise ApiError(500, "", "etcdserver: request is too large")


def _too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: must have at most {limit} bytes")


def _decoded(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except ValueError:
        return len(str(value))


def _data_bytes(obj: dict[str, Any], *, text: str | None, binary: str) -> int:
    """Bytes of keys and values, as validation counts them (base64 fields decoded)."""
    total = sum(len(str(k)) + len(str(v).encode()) for k, v in (obj.get(text) or {}).items()) if text else 0
    return total + sum(len(str(k)) + _decoded(v) for k, v in (obj.get(binary) or {}).items())


def field_errors(gk: tuple[str, str], obj: dict[str, Any]) -> list[FieldError]:
    """The TooLong causes of `obj`, as validation reports them."""
    errors: list[FieldError] = []
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if sum(len(str(k)) + len(str(v).encode()) for k, v in annotations.items()) > MAX_ANNOTATION_BYTES:
        errors.append(_too_long("metadata.annotations", MAX_ANNOTATION_BYTES))
    if gk == ("", "configmaps") and _data_bytes(obj, text="data", binary="binaryData") > MAX_CONFIGMAP_BYTES:
        errors.append(_too_long("[]", MAX_CONFIGMAP_BYTES))
    if gk == ("", "secrets") and _data_bytes(obj, text="stringData", binary="data") > MAX_CONFIGMAP_BYTES:
        errors.append(_too_long("data", MAX_CONFIGMAP_BYTES))
    return errors
