"""Decoding the few protobuf request bodies real clients send, so they need no JSON fallback.

client-go typed clients may be configured for ``application/vnd.kubernetes.protobuf`` (helm 4 does
this for its release Secrets). Answers stay JSON, which client-go accepts whatever it asked for;
only request bodies need decoding. Covered: the ``k8s\\x00`` + runtime.Unknown envelope, ObjectMeta,
Namespace, ServiceAccount, Secret, ConfigMap and DeleteOptions (field numbers from
k8s.io/api/core/v1/generated.proto): what `kubectl create namespace|serviceaccount|secret|configmap`
and helm send. Any other kind (e.g. `kubectl create deployment`) is answered with 415 so the gap is
loud; `kubectl apply` sends JSON and works for every kind.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            yield number, buf[pos : pos + 8]
            pos += 8
        elif wire == 5:
            yield number, buf[pos : pos + 4]
            pos += 4
        else:
            raise ApiError(400, "BadRequest", f"protobuf: unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, v in fields(buf):
        if number == 1:
            key = _text(v)
        elif number == 2 and isinstance(v, bytes):
            value = v
    return key, value


def _owner_reference(buf: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion", 6: "controller", 7: "blockOwnerDeletion"}
    ref: dict[str, Any] = {}
    for number, v in fields(buf):
        if number in (6, 7):
            ref[names[number]] = bool(v)
        elif number in names:
            ref[names[number]] = _text(v)
    return ref


def object_meta(buf: bytes) -> dict[str, Any]:
    scalars = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for number, v in fields(buf):
        if number in scalars:
            meta[scalars[number]] = _text(v)
        elif number == 7 and isinstance(v, int):
            meta["generation"] = v
        elif number in (11, 12) and isinstance(v, bytes):
            key, value = _map_entry(v)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = value.decode()
        elif number == 13 and isinstance(v, bytes):
            meta.setdefault("ownerReferences", []).append(_owner_reference(v))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(v))
    return meta


def _secret(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, v in fields(buf):
        if number == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif number in (2, 4) and isinstance(v, bytes):
            key, value = _map_entry(v)
            if number == 2:
                obj.setdefault("data", {})[key] = base64.b64encode(value).decode()
            else:
                obj.setdefault("stringData", {})[key] = value.decode()
        elif number == 3:
            obj["type"] = _text(v)
        elif number == 5:
            obj["immutable"] = bool(v)
    return obj


def _configmap(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, v in fields(buf):
        if number == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif number in (2, 3) and isinstance(v, bytes):
            key, value = _map_entry(v)
            if number == 2:
                obj.setdefault("data", {})[key] = value.decode()
            else:
                obj.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4:
            obj["immutable"] = bool(v)
    return obj


def _delete_options(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, v in fields(buf):
        if number == 1 and isinstance(v, int):
            obj["gracePeriodSeconds"] = v
        elif number == 2 and isinstance(v, bytes):
            obj["preconditions"] = {
                ("uid" if n == 1 else "resourceVersion"): _text(pv) for n, pv in fields(v)
            }
        elif number == 3:
            obj["orphanDependents"] = bool(v)
        elif number == 4:
            obj["propagationPolicy"] = _text(v)
        elif number == 5:
            obj.setdefault("dryRun", []).append(_text(v))
    return obj


def _namespace(buf: bytes) -> dict[str, Any]:
    # Namespace{metadata=1, spec=2{finalizers=1}}; a create carries no status
    obj: dict[str, Any] = {}
    for number, v in fields(buf):
        if number == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif number == 2 and isinstance(v, bytes):
            finalizers = [_text(f) for n, f in fields(v) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _object_reference(buf: bytes) -> dict[str, Any]:
    names = {1: "kind", 2: "namespace", 3: "name", 4: "uid", 5: "apiVersion", 6: "resourceVersion"}
    return {names[n]: _text(v) for n, v in fields(buf) if n in names}


def _service_account(buf: bytes) -> dict[str, Any]:
    # ServiceAccount{metadata=1, secrets=2, imagePullSecrets=3{name=1}, automountServiceAccountToken=4}
    obj: dict[str, Any] = {}
    for number, v in fields(buf):
        if number == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif number == 2 and isinstance(v, bytes):
            obj.setdefault("secrets", []).append(_object_reference(v))
        elif number == 3 and isinstance(v, bytes):
            name = next((_text(n) for k, n in fields(v) if k == 1), "")
            obj.setdefault("imagePullSecrets", []).append({"name": name})
        elif number == 4:
            obj["automountServiceAccountToken"] = bool(v)
    return obj


_KINDS = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ServiceAccount"): _service_account,
    ("v1", "Secret"): _secret,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "DeleteOptions"): _delete_options,
    ("meta.k8s.io/v1", "DeleteOptions"): _delete_options,
}


def decode(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s magic prefix")
    api_version = kind = ""
    payload = b""
    for number, v in fields(raw[len(MAGIC) :]):
        if number == 1 and isinstance(v, bytes):
            for n, tv in fields(v):
                if n == 1:
                    api_version = _text(tv)
                elif n == 2:
                    kind = _text(tv)
        elif number == 2 and isinstance(v, bytes):
            payload = v
    decoder = _KINDS.get((api_version, kind))
    if decoder is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the emulator cannot decode protobuf {api_version}/{kind}; send JSON",
        )
    return {"apiVersion": api_version, "kind": kind, **decoder(payload)}
