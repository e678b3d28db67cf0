"""The object store: objects by (group, plural, namespace, name), one global resourceVersion,
an event history for watch resumption, indexes for the hot field selectors, and watch fan-out.

Everything here runs on the server's event loop thread; nothing is locked. Stored dicts are never
mutated after they are put: every write stores a fresh dict, so history events and open watches
can share them, and each object's JSON is serialised at most once.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import gone
from .selectors import FieldSelector, LabelSelector

GK = tuple[str, str]  # (group, plural)
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects

# Field paths kept in an index, per (group, plural); LIST and WATCH use them for equality terms.
INDEXED_FIELDS: dict[GK, tuple[str, ...]] = {
    ("", "pods"): ("spec.nodeName",),
}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(eq=False)
class Stored:
    obj: dict[str, Any]
    _raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.obj["metadata"]
        return meta

    @property
    def rv(self) -> int:
        return int(self.meta["resourceVersion"])


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    gk: GK
    key: Key
    new: Stored  # for DELETED: the last state
    old: Stored | None


def _field(obj: dict[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    return "" if current is None else str(current)


@dataclass
class Bucket:
    gk: GK
    items: dict[Key, Stored] = field(default_factory=dict)
    by_ns: dict[str, dict[str, Stored]] = field(default_factory=dict)
    index: dict[str, dict[str, set[Key]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in INDEXED_FIELDS.get(self.gk, ()):
            self.index[path] = {}

    def put(self, key: Key, stored: Stored) -> Stored | None:
        old = self.items.get(key)
        self.items[key] = stored
        self.by_ns.setdefault(key[0], {})[key[1]] = stored
        for path, idx in self.index.items():
            if old is not None:
                idx.get(_field(old.obj, path), set()).discard(key)
            idx.setdefault(_field(stored.obj, path), set()).add(key)
        return old

    def remove(self, key: Key) -> Stored | None:
        old = self.items.pop(key, None)
        if old is None:
            return None
        ns_items = self.by_ns.get(key[0])
        if ns_items is not None:
            ns_items.pop(key[1], None)
            if not ns_items:
                del self.by_ns[key[0]]
        for path, idx in self.index.items():
            idx.get(_field(old.obj, path), set()).discard(key)
        return old

    def candidates(self, namespace: str | None, fields: FieldSelector) -> Iterable[tuple[Key, Stored]]:
        for path, idx in self.index.items():
            value = fields.equality(path)
            if value is not None:
                keys = idx.get(value, set())
                return ((k, self.items[k]) for k in keys if namespace is None or k[0] == namespace)
        if namespace is not None:
            return (((namespace, n), s) for n, s in self.by_ns.get(namespace, {}).items())
        return self.items.items()


@dataclass(eq=False)
class Watcher:
    gk: GK
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def matches(self, stored: Stored | None) -> bool:
        if stored is None:
            return False
        meta = stored.meta
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(stored.obj)

    def translate(self, event: Event) -> str | None:
        """The event type this watcher sees, taking objects entering/leaving its selectors into account."""
        now = self.matches(event.new)
        if event.type == "MODIFIED":
            before = self.matches(event.old)
            if now and before:
                return "MODIFIED"
            if now:
                return "ADDED"
            if before:
                return "DELETED"
            return None
        return event.type if now else None


@dataclass
class Store:
    history_size: int = 50_000
    rv: int = 1
    buckets: dict[GK, Bucket] = field(default_factory=dict)
    history: deque[Event] = field(default_factory=deque)
    watchers: dict[GK, set[Watcher]] = field(default_factory=dict)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    owners: dict[str, set[tuple[GK, Key]]] = field(default_factory=dict)

    def bucket(self, gk: GK) -> Bucket:
        b = self.buckets.get(gk)
        if b is None:
            b = self.buckets[gk] = Bucket(gk)
        return b

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def oldest_rv(self) -> int:
        return self.history[0].rv if self.history else self.rv

    def get(self, gk: GK, namespace: str, name: str) -> Stored | None:
        b = self.buckets.get(gk)
        return None if b is None else b.items.get((namespace, name))

    def all(self, gk: GK) -> Iterator[Stored]:
        b = self.buckets.get(gk)
        return iter(()) if b is None else iter(list(b.items.values()))

    def dependents(self, uid: str) -> list[tuple[GK, Key]]:
        return list(self.owners.get(uid, ()))

    def _index_owners(self, gk: GK, key: Key, old: Stored | None, new: Stored | None) -> None:
        for stored, add in ((old, False), (new, True)):
            if stored is None:
                continue
            for ref in stored.meta.get("ownerReferences") or ():
                uid = ref.get("uid")
                if not uid:
                    continue
                if add:
                    self.owners.setdefault(uid, set()).add((gk, key))
                else:
                    refs = self.owners.get(uid)
                    if refs is not None:
                        refs.discard((gk, key))
                        if not refs:
                            del self.owners[uid]

    def put(self, gk: GK, obj: dict[str, Any]) -> Stored:
        """Store a new version of an object (the caller built a fresh dict) and announce it."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        stored = Stored(obj)
        old = self.bucket(gk).put(key, stored)
        self._index_owners(gk, key, old, stored)
        self._announce(Event(rv, "MODIFIED" if old is not None else "ADDED", gk, key, stored, old))
        return stored

    def remove(self, gk: GK, namespace: str, name: str) -> Stored | None:
        b = self.buckets.get(gk)
        if b is None:
            return None
        old = b.remove((namespace, name))
        if old is None:
            return None
        rv = self.next_rv()
        final = {**old.obj, "metadata": {**old.meta, "resourceVersion": str(rv)}}
        stored = Stored(final)
        self._index_owners(gk, (namespace, name), old, None)
        self._announce(Event(rv, "DELETED", gk, (namespace, name), stored, old))
        return stored

    def _announce(self, event: Event) -> None:
        if self.history_size:
            while len(self.history) >= self.history_size:
                self.history.popleft()
            self.history.append(event)
        for watcher in self.watchers.get(event.gk, ()):
            watcher.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(event)

    def list(
        self,
        gk: GK,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        start_after: Key | None = None,
    ) -> list[tuple[Key, Stored]]:
        b = self.buckets.get(gk)
        if b is None:
            return []
        found = [
            (k, s)
            for k, s in b.candidates(namespace, fields)
            if (labels.empty or labels.matches(s.meta.get("labels")))
            and (fields.empty or fields.matches(s.obj))
        ]
        found.sort(key=lambda pair: pair[0])
        if start_after is not None:
            found = found[bisect.bisect_right([k for k, _ in found], start_after) :]
        return found

    def events_since(self, gk: GK, rv: int) -> builtins.list[Event]:
        """History events for one resource after ``rv``; raises 410 Gone if history no longer reaches it."""
        if rv < self.oldest_rv() - 1 and rv < self.rv:
            raise gone(rv, self.oldest_rv())
        start = bisect.bisect_right([e.rv for e in self.history], rv) if self.history else 0
        return [e for e in list(self.history)[start:] if e.gk == gk]

    def add_watcher(self, watcher: Watcher) -> None:
        self.watchers.setdefault(watcher.gk, set()).add(watcher)

    def drop_watcher(self, watcher: Watcher) -> None:
        self.watchers.get(watcher.gk, set()).discard(watcher)

    def cut_watches(self, gk: GK | None = None) -> int:
        """Ends open watches (all, or one resource's) as if the server dropped the connections."""
        count = 0
        for wgk, group in self.watchers.items():
            if gk is None or wgk == gk:
                for watcher in group:
                    watcher.queue.put_nowait(None)
                    count += 1
        return count

    def clear(self) -> None:
        self.cut_watches()
        self.buckets.clear()
        self.history.clear()
        self.owners.clear()
