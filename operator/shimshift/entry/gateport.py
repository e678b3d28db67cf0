"""The production GatePort: `spec.rollout.gates` read from Prometheus (`shimshift.promquery`) and from
the named objects (`shimshift.kube.objects`), judged by `shimshift.planning.healthgates`.

Read only. The Prometheus token and CA come from Secrets in the operator's namespace, read on every
reading (a rotated token is used at once) and never logged; a gate that cannot be read becomes an
error reading that says what failed, never an exception and never "open".
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shimshift.model.errors import ShimshiftError
from shimshift.model.gates import GateReading, Gates, GateState, PrometheusGate
from shimshift.planning.healthgates import judge_condition, judge_prometheus
from shimshift.promquery import query_prometheus

log = logging.getLogger(__name__)


class GateCluster(Protocol):
    """What reading the gates asks of the API (`shimshift.kube.cluster.KubeCluster`)."""

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]: ...
    def read_secret(self, name: str, key: str) -> str: ...


class LiveGates:
    def __init__(self, cluster: GateCluster) -> None:
        self.cluster = cluster

    def _prometheus(self, gate: PrometheusGate) -> GateReading:
        try:
            token = (
                self.cluster.read_secret(gate.bearer_token.name, gate.bearer_token.key)
                if gate.bearer_token
                else None
            )
            ca = self.cluster.read_secret(gate.ca.name, gate.ca.key) if gate.ca else None
            answer = query_prometheus(
                gate.url, gate.expression, token=token, ca=ca, timeout=gate.request_timeout
            )
        except ShimshiftError as e:
            return GateReading(gate.name, GateState.ERROR, str(e)[:300])
        return judge_prometheus(gate, answer)

    def read_gates(self, gates: Gates) -> tuple[GateReading, ...]:
        readings = []
        if gates.prometheus is not None:
            readings.append(self._prometheus(gates.prometheus))
        for gate in gates.conditions:
            try:
                obj = self.cluster.read_object(gate.api_version, gate.kind, gate.namespace, gate.name)
            except ShimshiftError as e:
                readings.append(GateReading(gate.gate_name, GateState.ERROR, str(e)[:300]))
                continue
            readings.append(judge_condition(gate, obj))
        return tuple(readings)
