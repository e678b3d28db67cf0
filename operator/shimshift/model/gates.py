"""Health gates (`spec.rollout.gates`): what must hold before each node starts, and what one reading of
them found.

A gate is a Prometheus query (`PrometheusGate`: an expression that must return nothing or values under
a threshold, or the firing alerts less the ignored ones) or a condition of a named Kubernetes object
(`ConditionGate`). Reading them is I/O (`shimshift.promquery`, `shimshift.kube.objects`); judging what
was read is `shimshift.planning.healthgates`; this module holds the values both pass around. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.model.durations import parse_duration

#: `spec.rollout.gates.timeout` and `.interval` when not given (the CRD's defaults say the same).
GATES_TIMEOUT_DEFAULT = "2h"
GATES_INTERVAL_DEFAULT = "1m"
#: What the firing-alerts form asks Prometheus (kured's query).
FIRING_ALERTS_QUERY = 'ALERTS{alertstate="firing"}'
ALL_ALERTS_QUERY = "ALERTS"


class GateState(StrEnum):
    OPEN = "Open"
    CLOSED = "Closed"  # the gate was read and says no
    ERROR = "Error"  # the gate could not be read: neither yes nor no


@dataclass(frozen=True)
class SecretKey:
    name: str
    key: str


@dataclass(frozen=True)
class AlertFilter:
    """The firing-alerts form: `ALERTS{alertstate="firing"}` (or every alert, pending too) less the
    alerts whose name matches `ignore_names` (searched, as kured's alert filter is) and those whose
    labels fully match every regexp of `ignore_labels`."""

    ignore_names: str = ""
    ignore_labels: tuple[tuple[str, str], ...] = ()
    firing_only: bool = True

    @property
    def query(self) -> str:
        return FIRING_ALERTS_QUERY if self.firing_only else ALL_ALERTS_QUERY

    def ignores(self, labels: Mapping[str, str]) -> bool:
        if self.ignore_names and re.search(self.ignore_names, labels.get("alertname", "")):
            return True
        return bool(self.ignore_labels) and all(
            re.fullmatch(pattern, labels.get(label, "")) is not None for label, pattern in self.ignore_labels
        )


@dataclass(frozen=True)
class PrometheusGate:
    url: str
    query: str = ""  # one of query and alerts
    alerts: AlertFilter | None = None
    threshold: float | None = None  # None: the query must return no sample at all
    bearer_token: SecretKey | None = None
    ca: SecretKey | None = None
    request_timeout: float = 10.0

    @property
    def name(self) -> str:
        """The gate's name in messages and in the metric's `gate` label."""
        return "prometheus-alerts" if self.alerts is not None else "prometheus"

    @property
    def expression(self) -> str:
        return self.alerts.query if self.alerts is not None else self.query


@dataclass(frozen=True)
class ConditionGate:
    api_version: str
    kind: str
    name: str
    type: str
    status: str = "True"
    namespace: str = ""  # "" for a cluster-scoped object

    @property
    def object(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    @property
    def gate_name(self) -> str:
        """`Deployment/ns/name:Available` (bounded: one per entry of the spec)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}/{where}:{self.type}"


@dataclass(frozen=True)
class Gates:
    prometheus: PrometheusGate | None = None
    conditions: tuple[ConditionGate, ...] = ()
    timeout: float = 7200.0  # closed (or unreadable) this long: the rollout pauses
    interval: float = 60.0  # how often a closed gate is read again

    @property
    def configured(self) -> bool:
        return self.prometheus is not None or bool(self.conditions)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Gates:
        prom = raw.get("prometheus")
        return cls(
            prometheus=_prometheus(prom) if prom else None,
            conditions=tuple(
                ConditionGate(
                    api_version=c["apiVersion"],
                    kind=c["kind"],
                    name=c["name"],
                    type=c["type"],
                    status=c.get("status", "True"),
                    namespace=c.get("namespace", ""),
                )
                for c in raw.get("conditions") or ()
            ),
            timeout=parse_duration(raw.get("timeout", GATES_TIMEOUT_DEFAULT)),
            interval=parse_duration(raw.get("interval", GATES_INTERVAL_DEFAULT)),
        )


def _key(raw: Mapping[str, Any] | None, default: str) -> SecretKey | None:
    return None if raw is None else SecretKey(raw["name"], raw.get("key", default))


def _prometheus(raw: Mapping[str, Any]) -> PrometheusGate:
    alerts = raw.get("alerts")
    return PrometheusGate(
        url=raw["url"],
        query=raw.get("query", ""),
        alerts=AlertFilter(
            ignore_names=alerts.get("alertFilterRegexp", ""),
            ignore_labels=tuple(sorted((alerts.get("ignoreLabels") or {}).items())),
            firing_only=alerts.get("firingOnly", True),
        )
        if alerts is not None
        else None,
        threshold=float(raw["threshold"]) if raw.get("threshold") is not None else None,
        bearer_token=_key(raw.get("bearerTokenSecretRef"), "token"),
        ca=_key(raw.get("caSecretRef"), "ca.crt"),
        request_timeout=parse_duration(raw.get("requestTimeout", "10s")),
    )


@dataclass(frozen=True)
class GateReading:
    """What one gate said at one instant: open, closed (and why), or an error (and what failed)."""

    gate: str
    state: GateState
    reason: str = ""

    def __str__(self) -> str:
        if self.state == GateState.OPEN:
            return f"{self.gate}: open"
        if self.state == GateState.ERROR:
            return f"{self.gate}: error: {self.reason}"
        return f"{self.gate}: {self.reason}"
