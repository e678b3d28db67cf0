"""Small helpers over raw object dicts: timestamps, names, pod readiness, owner references."""

from __future__ import annotations

import copy
import datetime as dt
import random
import re
import uuid
from typing import Any

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    conditions: list[dict[str, Any]] = (obj.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if cond.get("type") == ctype:
            return cond
    return None


def pod_is_ready(pod: dict[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def node_is_ready(node: dict[str, Any]) -> bool:
    cond = condition(node, "Ready")
    return cond is None or cond.get("status") == "True"


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    refs: list[dict[str, Any]] = obj.get("metadata", {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """k8s.io/apimachinery intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        scaled = total * pct
        return -(-scaled // 100) if round_up else scaled // 100
    return int(text)


def tolerates(pod: dict[str, Any], taint: dict[str, Any]) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or ():
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False
