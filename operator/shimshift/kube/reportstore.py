"""A NodeMigration's plan report in ConfigMaps, at any size, and read back whole.

A ConfigMap holds at most 1 MiB of data and binaryData together. `pack` lays the report's files
(`report.md`, `report.json`, `report.html`) out in as few ConfigMaps as that allows:

- when all of them fit as text in one ConfigMap: `<name>-plan`, its `data` holding each file as it is
  (`kubectl get cm <name>-plan -o jsonpath='{.data.report\\.md}'` prints it);
- else each file gzipped and cut into pieces in `binaryData` (`report.md.gz.0000`, `.0001`, ...), the
  pieces filling `<name>-plan`, `<name>-plan-1`, `<name>-plan-2`, ... in order. Every piece but a
  file's last is a multiple of 3 bytes long, so the pieces' base64 values concatenated are the base64
  of the whole gzip stream: sorting a file's keys across the ConfigMaps and joining their values gives
  it back with kubectl, jq, base64 and gunzip alone (docs/plan-reports.md).

Every piece is labelled `shimshift.io/report-for=<name>` and owned by the NodeMigration (deleted with
it). `<name>-plan` always holds `index.json`: the layout, each file's size and sha256, and the
ConfigMaps in use. `store_report` writes the other ConfigMaps first and `<name>-plan` last, then deletes
the labelled ConfigMaps of an earlier plan that the new one does not use; `read_report` follows the
index and checks each file's size and sha256, so a report read while a new plan replaces it is refused,
never returned mixed.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shimshift.kube.api import Kube, NotFound, Object
from shimshift.kube.paths import segment
from shimshift.model import keys
from shimshift.model.errors import Problem, ShimshiftError, ValidationError

STORE_FORMAT = "shimshift.io/plan-report-store/v1"
INDEX_KEY = "index.json"
#: What a ConfigMap holds (data and binaryData, keys included), less room for its index.
CONFIGMAP_LIMIT = 1024 * 1024
BUDGET = CONFIGMAP_LIMIT - 64 * 1024
#: Below this much room left, the next piece starts a new ConfigMap instead.
MIN_PIECE = 16 * 1024
FILES = ("report.md", "report.json", "report.html")


class ReportUnreadable(ShimshiftError):
    """The stored report is missing, incomplete or changed while it was read: reading it again can
    succeed once a plan being written is stored."""

    transient = True


@dataclass(frozen=True)
class Piece:
    config_map: str
    key: str
    data: bytes


def config_map_name(name: str, index: int) -> str:
    return f"{name}-plan" if index == 0 else f"{name}-plan-{index}"


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


def pack(name: str, files: Mapping[str, str]) -> list[tuple[dict[str, str], dict[str, bytes]]]:
    """(data, binaryData) of each ConfigMap, the first (`<name>-plan`) holding `index.json`. Pure."""
    plain = sum(len(k) + len(v.encode()) for k, v in files.items())
    index: dict[str, Any] = {"format": STORE_FORMAT, "files": {}}
    if plain <= BUDGET:
        index["encoding"] = "identity"
        index["configMaps"] = [config_map_name(name, 0)]
        for key, text in files.items():
            raw = text.encode()
            index["files"][key] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        return [({**files, INDEX_KEY: json.dumps(index, indent=1, sort_keys=True)}, {})]
    index["encoding"] = "gzip"
    boxes: list[dict[str, bytes]] = [{}]
    room = BUDGET
    for key, text in files.items():
        raw = text.encode()
        blob = _gzip(text)
        pieces: list[list[str]] = []
        offset = 0
        while offset < len(blob):
            if room < MIN_PIECE:
                boxes.append({})
                room = BUDGET
            piece_key = f"{key}.gz.{len(pieces):04d}"
            take = room - len(piece_key)
            if offset + take < len(blob):
                take -= take % 3  # whole base64 quanta: the values concatenate
            chunk = blob[offset : offset + take]
            boxes[-1][piece_key] = chunk
            pieces.append([config_map_name(name, len(boxes) - 1), piece_key])
            room -= len(piece_key) + len(chunk)
            offset += len(chunk)
        index["files"][key] = {
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "gzipBytes": len(blob),
            "pieces": pieces,
        }
    index["configMaps"] = [config_map_name(name, i) for i in range(len(boxes))]
    out: list[tuple[dict[str, str], dict[str, bytes]]] = [({}, box) for box in boxes]
    out[0][0][INDEX_KEY] = json.dumps(index, indent=1, sort_keys=True)
    return out


def _base(namespace: str) -> str:
    return f"/api/v1/namespaces/{segment(namespace, 'namespace')}/configmaps"


def _body(
    namespace: str, name: str, uid: str, cm_name: str, data: Mapping[str, str], binary: Mapping[str, bytes]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": namespace,
            "labels": {keys.REPORT_LABEL: name},
            "ownerReferences": [{"apiVersion": keys.API_VERSION, "kind": keys.KIND, "name": name, "uid": uid}]
            if uid
            else [],
        },
        "data": dict(data),
    }
    if binary:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return body


def _put(kube: Kube, namespace: str, body: Mapping[str, Any]) -> None:
    path = _base(namespace)
    cm_name = body["metadata"]["name"]
    try:
        kube.request("PUT", f"{path}/{segment(cm_name, 'ConfigMap name')}", body=dict(body))
    except NotFound:
        kube.request("POST", path, body=dict(body))


def store_report(kube: Kube, namespace: str, name: str, uid: str, files: Mapping[str, str]) -> str:
    """Write the report's ConfigMaps (see the module's docstring) and remove those of an earlier plan
    it no longer uses; `namespace/<name>-plan`."""
    boxes = pack(name, files)
    names = [config_map_name(name, i) for i in range(len(boxes))]
    for i in [*range(1, len(boxes)), 0]:  # the index last: it points only at pieces already written
        data, binary = boxes[i]
        _put(kube, namespace, _body(namespace, name, uid, names[i], data, binary))
    listed = kube.request("GET", _base(namespace), query=[("labelSelector", f"{keys.REPORT_LABEL}={name}")])
    for item in listed.get("items") or []:
        old = (item.get("metadata") or {}).get("name", "")
        if old not in names and old.startswith(f"{name}-plan-"):
            with contextlib.suppress(NotFound):
                kube.request("DELETE", f"{_base(namespace)}/{segment(old, 'ConfigMap name')}")
    return f"{namespace}/{names[0]}"


def _get(kube: Kube, namespace: str, cm_name: str) -> Object:
    try:
        return kube.request("GET", f"{_base(namespace)}/{segment(cm_name, 'ConfigMap name')}")
    except NotFound:
        raise ReportUnreadable(f"ConfigMap {namespace}/{cm_name} not found") from None


def read_report(kube: Kube, namespace: str, name: str, file: str) -> str:
    """The whole file (`report.md`, `report.json` or `report.html`) of NodeMigration `name`'s plan."""
    first = _get(kube, namespace, config_map_name(name, 0))
    data: Mapping[str, str] = first.get("data") or {}
    if INDEX_KEY not in data:  # written before the index existed: text only
        if file in data:
            return data[file]
        raise ReportUnreadable(f"ConfigMap {namespace}/{config_map_name(name, 0)} holds no {file}")
    index = json.loads(data[INDEX_KEY])
    if index.get("format") != STORE_FORMAT:
        raise ReportUnreadable(f"unknown report store format {index.get('format')!r}")
    entry = (index.get("files") or {}).get(file)
    if entry is None:
        raise ReportUnreadable(f"the stored plan of {name} has no {file}")
    if index.get("encoding") == "identity":
        raw = data.get(file, "").encode()
    else:
        objects: dict[str, Object] = {config_map_name(name, 0): first}
        blob = bytearray()
        for cm_name, key in entry["pieces"]:
            if cm_name not in objects:
                objects[cm_name] = _get(kube, namespace, cm_name)
            value = (objects[cm_name].get("binaryData") or {}).get(key)
            if value is None:
                raise ReportUnreadable(f"piece {key} missing from ConfigMap {namespace}/{cm_name}")
            blob += base64.b64decode(value)
        try:
            raw = gzip.decompress(bytes(blob))
        except (OSError, EOFError) as e:
            raise ReportUnreadable(f"the stored {file} is incomplete ({e}): read it again") from None
    if len(raw) != entry["bytes"] or hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        raise ReportUnreadable(f"the stored {file} changed while it was read (a new plan?): read it again")
    return raw.decode()


def report_file(fmt: str) -> str:
    names = {"md": "report.md", "markdown": "report.md", "json": "report.json", "html": "report.html"}
    if fmt not in names:
        raise ValidationError([Problem("--format", f"{fmt!r}: one of md, json, html")])
    return names[fmt]


def stored_sizes(boxes: Sequence[tuple[Mapping[str, str], Mapping[str, bytes]]]) -> list[int]:
    """Bytes of data and binaryData (keys included) of each ConfigMap `pack` laid out."""
    return [
        sum(len(k) + len(v.encode()) for k, v in data.items())
        + sum(len(k) + len(v) for k, v in binary.items())
        for data, binary in boxes
    ]
