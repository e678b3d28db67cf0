"""Test affordances: a log of every request, and fault injection by method/resource/name.

``Faults.add(status=429, times=2, method="POST", resource="pods", subresource="eviction", name="p2")``
answers the next two matching requests with a 429 Status instead of serving them;
``latency=`` delays matching requests (optionally without failing them); ``cut_watches`` on the
handle drops open watch streams as a flaky network would.
``Faults.add_random(rate=0.10, statuses=(429, 500, 409), seed=8)`` answers each matching request with
an error with probability ``rate`` (a seeded ``random.Random``, so a run's sequence of draws is
reproducible); watches are excluded by default (drop them with ``cut_watches``), and 409 is only
chosen for writes, since a real API server never answers a read with a conflict.
``Faults.add_trigger(predicate, action)`` calls ``action(rec)`` once, right after the first request
for which ``predicate(rec)`` holds has been served with a 2xx and before the answer is sent: a test
can SIGKILL a client at the exact moment its write is committed but not yet acknowledged; with
``before=True`` the action runs instead of serving the request (answered 503, nothing changed): the
moment just before the write.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .status import status_body

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server understood it."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, str]
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection, or ""
    group: str
    version: str
    resource: str  # plural, e.g. "pods"; "" for discovery
    subresource: str
    namespace: str
    name: str
    content_type: str
    body: Any
    status: int = 0
    user_agent: str = ""  # who asked: "shimshift/0.1.0", "kopf/1.37.2", "kubectl/v1.35.0 ...", ...

    @property
    def field_selector(self) -> str:
        return self.query.get("fieldSelector", "")

    @property
    def label_selector(self) -> str:
        return self.query.get("labelSelector", "")


@dataclass
class FaultRule:
    method: str | None
    verb: str | None
    resource: str | None
    subresource: str | None
    name: str | None
    namespace: str | None
    status: int | None
    remaining: int | None  # None: forever
    latency: float
    body: dict[str, Any] | None
    hits: int = 0

    def matches(self, rec: RequestRecord) -> bool:
        return (
            (self.method is None or self.method.upper() == rec.method)
            and (self.verb is None or self.verb == rec.verb)
            and (self.resource is None or self.resource == rec.resource)
            and (self.subresource is None or self.subresource == rec.subresource)
            and (self.name is None or self.name == rec.name)
            and (self.namespace is None or self.namespace == rec.namespace)
            and (self.remaining is None or self.remaining > 0)
        )

    def response(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        code = self.status or 500
        return status_body(code, _REASONS.get(code, "InternalError"), f"injected fault: HTTP {code}")


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class RandomFaultRule:
    """Fail each matching request with probability ``rate``; ``considered`` counts the draws."""

    rate: float
    statuses: tuple[int, ...]
    rng: random.Random
    methods: frozenset[str] | None
    resources: frozenset[str] | None
    exclude_verbs: frozenset[str]
    considered: int = 0
    hits: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def matches(self, rec: RequestRecord) -> bool:
        return (
            rec.verb not in self.exclude_verbs
            and (self.methods is None or rec.method in self.methods)
            and (self.resources is None or rec.resource in self.resources)
        )

    def draw(self, rec: RequestRecord) -> FaultRule | None:
        """One seeded draw: a one-shot rule to answer ``rec`` with, or None to serve it."""
        self.considered += 1
        # exactly two draws per request, so whether the n-th request fails depends on the seed alone
        fail, pick = self.rng.random() < self.rate, self.rng.random()
        statuses = [s for s in self.statuses if s != 409 or rec.verb in WRITE_VERBS] or list(self.statuses)
        status = statuses[int(pick * len(statuses))]
        if not fail:
            return None
        self.hits += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        return FaultRule(None, None, None, None, None, None, status, 0, 0.0, None, hits=1)


@dataclass
class Trigger:
    """Run ``action`` once, at the first request matching ``predicate``: after it was served with a 2xx
    (``before=False``), or instead of serving it (``before=True``); ``fired`` is that request."""

    predicate: Callable[[RequestRecord], bool]
    action: Callable[[RequestRecord], None]
    before: bool = False
    fired: RequestRecord | None = None


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    random_rules: list[RandomFaultRule] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        status: int | None = 500,
        *,
        times: int | None = 1,
        method: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        latency: float = 0.0,
        body: dict[str, Any] | None = None,
    ) -> FaultRule:
        """Answer the next ``times`` matching requests with ``status`` (None: serve them, only delayed)."""
        rule = FaultRule(method, verb, resource, subresource, name, namespace, status, times, latency, body)
        with self._lock:
            self.rules.append(rule)
        return rule

    def add_latency(self, seconds: float, **match: Any) -> FaultRule:
        return self.add(None, times=match.pop("times", None), latency=seconds, **match)

    def add_random(
        self,
        rate: float,
        statuses: tuple[int, ...] = (429, 500, 409),
        *,
        seed: int = 0,
        methods: tuple[str, ...] | None = None,
        resources: tuple[str, ...] | None = None,
        exclude_verbs: tuple[str, ...] = ("watch",),
    ) -> RandomFaultRule:
        """Answer each matching request with one of ``statuses`` with probability ``rate`` (seeded)."""
        if not 0.0 <= rate <= 1.0 or not statuses:
            raise ValueError("add_random: rate must be within [0, 1] and statuses non-empty")
        rule = RandomFaultRule(
            rate,
            tuple(statuses),
            random.Random(seed),
            None if methods is None else frozenset(m.upper() for m in methods),
            None if resources is None else frozenset(resources),
            frozenset(exclude_verbs),
        )
        with self._lock:
            self.random_rules.append(rule)
        return rule

    def add_trigger(
        self,
        predicate: Callable[[RequestRecord], bool],
        action: Callable[[RequestRecord], None],
        *,
        before: bool = False,
    ) -> Trigger:
        """Call ``action(rec)`` once, at the first request matching ``predicate`` (watches never match):
        after it was served with a 2xx (its change committed) and before the answer leaves; or, with
        ``before``, before it is served at all: it is then answered 503 and changes nothing."""
        trigger = Trigger(predicate, action, before)
        with self._lock:
            self.triggers.append(trigger)
        return trigger

    def _fire(self, rec: RequestRecord, before: bool) -> bool:
        if rec.verb == "watch":
            return False
        with self._lock:
            due = [t for t in self.triggers if t.fired is None and t.before == before and t.predicate(rec)]
            for trigger in due:
                trigger.fired = rec
        for trigger in due:
            trigger.action(rec)
        return bool(due)

    def arriving(self, rec: RequestRecord) -> bool:
        """Called by the server before serving ``rec``; True: a ``before`` trigger fired, do not serve it."""
        return self._fire(rec, before=True)

    def served(self, rec: RequestRecord, status: int) -> None:
        """Called by the server once ``rec`` is answered with ``status`` and before the answer is sent."""
        if 200 <= status < 300:
            self._fire(rec, before=False)

    def take(self, rec: RequestRecord) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(rec):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
            for random_rule in self.random_rules:
                if random_rule.matches(rec):
                    drawn = random_rule.draw(rec)
                    if drawn is not None:
                        return drawn
        return None

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.random_rules.clear()
            self.triggers.clear()


@dataclass
class RequestLog:
    records: list[RequestRecord] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, **kwargs: Any) -> RequestRecord:
        rec = RequestRecord(seq=next(self._seq), time=time.monotonic(), **kwargs)
        with self._lock:
            self.records.append(rec)
        return rec

    def finish(self, rec: RequestRecord, status: int) -> None:
        done = RequestRecord(**{**rec.__dict__, "status": status})
        with self._lock:
            for i in range(len(self.records) - 1, -1, -1):
                if self.records[i].seq == rec.seq:
                    self.records[i] = done
                    break

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def filter(
        self,
        method: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
    ) -> list[RequestRecord]:
        with self._lock:
            records = list(self.records)
        return [
            r
            for r in records
            if (method is None or r.method == method.upper())
            and (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (subresource is None or r.subresource == subresource)
            and (name is None or r.name == name)
            and (namespace is None or r.namespace == namespace)
        ]

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
