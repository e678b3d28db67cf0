"""A watch-fed cache of one kind of object (client-go's informer pattern): list once, then follow a
watch, so the operator reads Nodes and its own NodeMigrationNodes from memory on every pass instead of
LISTing the fleet each time.

A background thread lists `path` (with its selectors), then watches from the list's resourceVersion;
a watch the server ends is resumed, a 410 Gone (or any other error) is answered by a fresh list after
a short doubling backoff (0.5 s to 8 s). Each object is stored as `transform(raw)`, so a cache of
5,000 Nodes keeps five thousand small parsed values, not the raw JSON. Writes the operator makes go
into the cache at once (`store`), and an event older than what is cached (a lower resourceVersion)
never replaces it, so a pass that follows a write reads that write, not an older copy.

Readers wait (bounded) for the first list (`wait_synced`); `wait_for` blocks until a predicate over one
object holds, woken by watch events, never by polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Object
from shimshift.kube.watching import object_key
from shimshift.model.errors import KubeError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Lists the objects (the API's answer to a LIST).
Lister = Callable[[], Object]
#: Watches them from a resourceVersion for at most so many seconds (`Kube.watch`).
Watcher = Callable[[str, float], Iterator[Object]]

#: How long one watch request stays open before it is resumed (the server may end it sooner).
WATCH_SECONDS = 240.0
MAX_BACKOFF = 8.0


class NotSynced(KubeError):
    """The cache has not finished its first list yet; the pass is tried again shortly."""

    transient = True


def resource_version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _newer(incoming: str, cached: str) -> bool:
    """Whether an object at `incoming` may replace one at `cached`: etcd's resourceVersions are
    increasing integers; anything else is taken as newer (the server's word is the last one)."""
    if incoming.isdigit() and cached.isdigit():
        return int(incoming) >= int(cached)
    return True


class Informer(Generic[T]):
    """A cache of the objects `list_` and `watch` serve (the caller binds the path, so the RBAC scan
    of the package sees each request), kept by a daemon thread until `stop`."""

    def __init__(
        self,
        list_: Lister,
        watch: Watcher,
        transform: Callable[[Object], T],
        *,
        name: str,
        if_missing: str = "",
    ) -> None:
        self.name = name
        self.if_missing = if_missing  # what to do when the server does not serve the resource (404)
        self._list_objects = list_
        self._watch_objects = watch
        self.transform = transform
        self._items: dict[str, tuple[str, T]] = {}
        self._changed = threading.Condition()
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"shimshift-informer-{name}", daemon=True)
        self.lists = 0  # how many times the cache (re)listed: once, unless watches broke
        self.last_error = ""  # why the last list or watch failed (a missing CRD, RBAC), for NotSynced

    def start(self) -> Informer[T]:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._changed:
            self._changed.notify_all()

    # --- reading -------------------------------------------------------------------------------------

    def wait_synced(self, timeout: float) -> None:
        if not self._synced.wait(timeout):
            why = f": {self.last_error}" if self.last_error else ""
            raise NotSynced(f"the cache of {self.name} has no first list after {timeout:.0f}s{why}")

    def values(self) -> list[T]:
        with self._changed:
            return [value for _, value in self._items.values()]

    def get(self, key: str) -> T | None:
        with self._changed:
            item = self._items.get(key)
        return None if item is None else item[1]

    def get_versioned(self, key: str) -> tuple[str, T] | None:
        """The cached object at `key` with the resourceVersion it was cached at."""
        with self._changed:
            return self._items.get(key)

    def wait_for(self, key: str, predicate: Callable[[T | None], bool], timeout: float) -> bool:
        """True as soon as `predicate(the object at key, or None)` holds; False after `timeout` s."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                item = self._items.get(key)
                if predicate(None if item is None else item[1]):
                    return True
                left = end - time.monotonic()
                if left <= 0 or self._stopped.is_set():
                    return False
                self._changed.wait(left)

    # --- writing through -----------------------------------------------------------------------------

    def store(self, obj: Object) -> None:
        """Put an object the operator just wrote (the API's answer) into the cache."""
        self._apply("MODIFIED", obj)

    def _apply(self, kind: str, obj: Object) -> None:
        key, rv = object_key(obj), resource_version(obj)
        with self._changed:
            cached = self._items.get(key)
            if cached is not None and not _newer(rv, cached[0]):
                return
            if kind == "DELETED":
                self._items.pop(key, None)
            else:
                self._items[key] = (rv, self.transform(obj))
            self._changed.notify_all()

    # --- the thread ----------------------------------------------------------------------------------

    def _list(self) -> str:
        answer = self._list_objects()
        self.lists += 1
        fresh = {object_key(o): (resource_version(o), self.transform(o)) for o in answer.get("items") or ()}
        with self._changed:
            for key, (rv, value) in self._items.items():  # written through while the list was served
                if key in fresh and not _newer(fresh[key][0], rv):
                    fresh[key] = (rv, value)
            self._items = fresh
            self._changed.notify_all()
        self._synced.set()
        return str((answer.get("metadata") or {}).get("resourceVersion", ""))

    def _run(self) -> None:
        backoff = 0.5
        rv = ""
        while not self._stopped.is_set():
            try:
                if not rv:
                    rv = self._list()
                expired = False
                for event in self._watch_objects(rv, WATCH_SECONDS):
                    if self._stopped.is_set():
                        return
                    kind = str(event.get("type"))
                    obj = event.get("object") or {}
                    if kind == "ERROR":  # 410 Gone: too old to resume; list again
                        expired = True
                        break
                    rv = resource_version(obj) or rv
                    if kind != "BOOKMARK":
                        self._apply(kind, obj)
                if expired:
                    rv = ""
                backoff = 0.5
            except (ApiStatusError, ApiUnreachable) as e:
                self.last_error = str(e)[:300]
                if isinstance(e, ApiStatusError) and e.status == 404 and self.if_missing:
                    self.last_error += f" ({self.if_missing})"
                log.debug("cache of %s: %s; listing again in %.1fs", self.name, e, backoff)
                rv = ""
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as e:  # a bug must not kill the cache silently: log it and start over
                log.error("cache of %s: unexpected error; listing again", self.name, exc_info=e)
                rv = ""
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
