"""``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``: server-side printing for kubectl get.

Columns follow the real API server's printers (pkg/printers/internalversion) for the types that
people look at, and a CRD's additionalPrinterColumns for custom resources.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from .objects import condition, parse_iso, utcnow
from .registry import ResourceType

Row = list[Any]
Col = tuple[str, str, int]  # name, type, priority


def human_duration(delta: dt.timedelta) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"


def age(obj: dict[str, Any]) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    return human_duration(utcnow() - parse_iso(ts)) if ts else "<unknown>"


def _pod(obj: dict[str, Any]) -> Row:
    status = obj.get("status") or {}
    cs = status.get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Pending"
    for c in cs:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    spec = obj.get("spec") or {}
    return [
        obj["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts,
        age(obj),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _node(obj: dict[str, Any]) -> Row:
    ready = condition(obj, "Ready")
    state = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1]
        for k in (obj["metadata"].get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    status = obj.get("status") or {}
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
    return [
        obj["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        age(obj),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP", "<none>"),
        addrs.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _s(obj: dict[str, Any], *path: str, default: Any = 0) -> Any:
    cur: Any = obj
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return default if cur is None else cur


def _pdb(obj: dict[str, Any]) -> Row:
    spec = obj.get("spec") or {}
    return [
        obj["metadata"]["name"],
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        _s(obj, "status", "disruptionsAllowed"),
        age(obj),
    ]


def _event(obj: dict[str, Any]) -> Row:
    inv = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    seen = human_duration(utcnow() - parse_iso(last)) if last else "<unknown>"
    return [
        seen,
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}",
        obj.get("message", ""),
    ]


PRINTERS: dict[str, tuple[list[Col], Callable[[dict[str, Any]], Row]]] = {
    "Pod": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod,
    ),
    "Node": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node,
    ),
    "Namespace": (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], _s(o, "status", "phase", default="Active"), age(o)],
    ),
    "Deployment": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        lambda o: [
            o["metadata"]["name"],
            f"{_s(o, 'status', 'readyReplicas')}/{_s(o, 'spec', 'replicas', default=1)}",
            _s(o, "status", "updatedReplicas"),
            _s(o, "status", "availableReplicas"),
            age(o),
        ],
    ),
    "ReplicaSet": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        lambda o: [
            o["metadata"]["name"],
            _s(o, "spec", "replicas", default=1),
            _s(o, "status", "replicas"),
            _s(o, "status", "readyReplicas"),
            age(o),
        ],
    ),
    "StatefulSet": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0)],
        lambda o: [
            o["metadata"]["name"],
            f"{_s(o, 'status', 'readyReplicas')}/{_s(o, 'spec', 'replicas', default=1)}",
            age(o),
        ],
    ),
    "DaemonSet": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
        ],
        lambda o: [
            o["metadata"]["name"],
            _s(o, "status", "desiredNumberScheduled"),
            _s(o, "status", "currentNumberScheduled"),
            _s(o, "status", "numberReady"),
            _s(o, "status", "updatedNumberScheduled"),
            _s(o, "status", "numberAvailable"),
            ",".join(
                f"{k}={v}" for k, v in (_s(o, "spec", "template", "spec", "nodeSelector", default={})).items()
            )
            or "<none>",
            age(o),
        ],
    ),
    "PodDisruptionBudget": (
        [
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        _pdb,
    ),
    "ConfigMap": (
        [("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)],
    ),
    "Secret": (
        [("Name", "string", 0), ("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}), age(o)],
    ),
    "Event": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event,
    ),
    "CustomResourceDefinition": (
        [("Name", "string", 0), ("Created At", "date", 0)],
        lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")],
    ),
}


_FILTER = re.compile(r"\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of kubectl JSONPath that printer columns use: .a.b, .a[0].b, .a[?(@.k=="v")].b."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    tokens = re.findall(r"\[\?\(@\.[\w.]+\s*==\s*['\"][^'\"]*['\"]\)\]|\[\d+\]|\[\*\]|[^.\[\]]+", path)
    current: Any = obj
    for tok in tokens:
        if current is None:
            return None
        m = _FILTER.fullmatch(tok)
        if m:
            key, value = m.groups()
            current = (
                next(
                    (
                        item
                        for item in current or ()
                        if isinstance(item, dict) and str(jsonpath(item, "." + key)) == value
                    ),
                    None,
                )
                if isinstance(current, list)
                else None
            )
        elif tok.startswith("[") and tok[1:-1].isdigit():
            idx = int(tok[1:-1])
            current = current[idx] if isinstance(current, list) and idx < len(current) else None
        elif tok == "[*]":
            continue
        else:
            current = current.get(tok) if isinstance(current, dict) else None
    return current


def _custom_columns(rt: ResourceType) -> tuple[list[Col], Callable[[dict[str, Any]], Row]]:
    columns = list(rt.printer_columns)
    cols: list[Col] = [("Name", "string", 0)]
    cols += [(c["name"], c.get("type", "string"), int(c.get("priority", 0))) for c in columns]
    if not columns:
        cols.append(("Age", "date", 0))

    def row(obj: dict[str, Any]) -> Row:
        cells: Row = [obj["metadata"]["name"]]
        for c in columns:
            value = jsonpath(obj, c["jsonPath"])
            if c.get("type") == "date" and isinstance(value, str):
                value = human_duration(utcnow() - parse_iso(value))  # as ConvertToHumanReadableDateType
            cells.append(value)
        if not columns:
            cells.append(age(obj))
        return cells

    return cols, row


def printer(rt: ResourceType) -> tuple[list[Col], Callable[[dict[str, Any]], Row]]:
    if rt.crd_name is not None:
        return _custom_columns(rt)
    if rt.kind in PRINTERS:
        return PRINTERS[rt.kind]
    return [("Name", "string", 0), ("Age", "string", 0)], lambda o: [o["metadata"]["name"], age(o)]


def column_definitions(cols: list[Col]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": typ,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": prio,
        }
        for name, typ, prio in cols
    ]


def table(
    rt: ResourceType,
    objects: list[dict[str, Any]],
    resource_version: str,
    include_object: str,
    with_headers: bool = True,
    cont: str | None = None,
) -> dict[str, Any]:
    cols, row = printer(rt)
    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(entry)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows}
    out["columnDefinitions"] = column_definitions(cols) if with_headers else []
    return out
