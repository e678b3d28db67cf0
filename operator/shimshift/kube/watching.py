"""Waiting for the cluster to reach a state: list once, then follow a watch, always within a deadline.

Never tight polling: between lists the caller is woken by watch events only. A watch the server ends
(timeoutSeconds) is resumed from the last resourceVersion; a dropped or expired one (410 Gone) is
answered by a fresh list. Transient API errors back off (0.5 s, doubling, at most 4 s) and count
against the same deadline, so a wait always ends by `timeout`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Kube, Object

log = logging.getLogger(__name__)

Objects = Mapping[str, Object]


def object_key(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _rv(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def wait_until(
    kube: Kube,
    path: str,
    predicate: Callable[[Objects], bool],
    *,
    timeout: float,
    query: Sequence[tuple[str, str]] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    known: tuple[Objects, str] | None = None,
) -> bool:
    """True as soon as `predicate(objects at path)` holds; False when `timeout` seconds pass first.
    `known`: the objects at path as of a resourceVersion the caller just read (an object it created,
    a list it made), watched from instead of a first LIST; a watch that ends in 410 Gone lists."""
    deadline = clock() + timeout
    backoff = 0.5
    while True:
        try:
            if known is not None and known[1]:
                objects, rv = dict(known[0]), known[1]
                known = None
            else:
                answer = kube.request("GET", path, query=query)
                objects = {object_key(o): o for o in answer.get("items") or ()}
                rv = str((answer.get("metadata") or {}).get("resourceVersion", ""))
            if predicate(objects):
                return True
            while (remaining := deadline - clock()) > 0:
                gone = False
                for event in kube.watch(path, query=query, resource_version=rv, timeout=remaining):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":  # 410 Gone: our resourceVersion is too old; re-list
                        gone = True
                        break
                    rv = _rv(obj) or rv
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        objects.pop(object_key(obj), None)
                    else:
                        objects[object_key(obj)] = obj
                    if predicate(objects):
                        return True
                if gone:
                    break
            backoff = 0.5
        except (ApiStatusError, ApiUnreachable) as e:
            if isinstance(e, ApiStatusError) and not e.transient:
                raise
            log.debug("wait on %s: %s; retrying in %.1fs", path, e, backoff)
            sleep(min(backoff, max(0.0, deadline - clock())))
            backoff = min(backoff * 2, 4.0)
        if clock() >= deadline:
            return False
