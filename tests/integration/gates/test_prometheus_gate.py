"""The Prometheus gate against a real Prometheus (Debian's package) on loopback: its alert rule fires,
then is switched off; an address nobody listens on and a bad query are errors, never open or closed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from testbed.ports import free_port
from testbed.prometheus import ALERT, Prometheus, prometheus_binary
from testbed.waiting import wait_until

from shimshift.entry.gateport import LiveGates
from shimshift.model.gates import AlertFilter, GateReading, Gates, GateState, PrometheusGate, SecretKey
from shimshift.promquery import PrometheusError, query_prometheus

pytestmark = pytest.mark.integration
needs_prometheus = pytest.mark.skipif(
    prometheus_binary() is None, reason="prometheus is not installed (scripts/setup)"
)


class NoObjects:
    """The gate reader's cluster: a token Secret, no object."""

    def __init__(self) -> None:
        self.secret_reads: list[tuple[str, str]] = []

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        raise AssertionError("no condition gate here")

    def read_secret(self, name: str, key: str) -> str:
        self.secret_reads.append((name, key))
        return "s3cr3t-token\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Any:
    prom = Prometheus(Path(tmp_path_factory.mktemp("gates-prometheus")), firing=True).start()
    yield prom
    prom.stop()


def alerts_gate(url: str, **fields: Any) -> Gates:
    return Gates(prometheus=PrometheusGate(url=url, alerts=AlertFilter(ignore_names="^Watchdog$"), **fields))


@needs_prometheus
def test_a_firing_alert_closes_the_gate_and_switching_it_off_opens_it(prometheus: Prometheus) -> None:
    reader = LiveGates(NoObjects())
    gates = alerts_gate(prometheus.url)

    def state() -> GateReading:
        return reader.read_gates(gates)[0]

    closed = wait_until(lambda: (r := state()).state == GateState.CLOSED and r, 30, what="the alert firing")
    assert closed.reason == f"1 alert(s) firing: {ALERT}"  # Watchdog fires too, and is ignored
    prometheus.set_firing(False)
    wait_until(lambda: state().state == GateState.OPEN, 30, what="the gate open once the alert stops")
    prometheus.set_firing(True)
    wait_until(lambda: state().state == GateState.CLOSED, 30, what="the gate closed again")


@needs_prometheus
def test_a_query_under_its_threshold_is_open_and_a_bad_query_is_an_error(prometheus: Prometheus) -> None:
    reader = LiveGates(NoObjects())
    under = Gates(prometheus=PrometheusGate(url=prometheus.url, query="vector(0.2)", threshold=0.5))
    assert reader.read_gates(under)[0].state == GateState.OPEN
    over = Gates(prometheus=PrometheusGate(url=prometheus.url, query="vector(0.7)", threshold=0.5))
    assert reader.read_gates(over)[0].state == GateState.CLOSED
    bad = reader.read_gates(Gates(prometheus=PrometheusGate(url=prometheus.url, query="sum(")))[0]
    assert bad.state == GateState.ERROR and "refused the query" in bad.reason


def test_an_unreachable_prometheus_is_an_error_that_never_shows_the_token() -> None:
    cluster = NoObjects()
    reader = LiveGates(cluster)
    url = f"http://127.0.0.1:{free_port()}"  # reserved, nobody listens
    token = SecretKey("prom-token", "token")
    reading = reader.read_gates(alerts_gate(url, bearer_token=token, request_timeout=2.0))[0]
    assert reading.state == GateState.ERROR
    assert "unreachable" in reading.reason and "s3cr3t" not in reading.reason
    assert cluster.secret_reads == [("prom-token", "token")]
    with pytest.raises(PrometheusError, match="unreachable"):
        query_prometheus(url, "up", timeout=2.0)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_bearer_token_is_sent_in_the_header_only_and_the_query_is_url_encoded() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/prom/"
        answer = query_prometheus(url, 'ALERTS{alertstate="firing"}', token="s3cr3t-token\n", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert answer["status"] == "success"
    path, authorization = _Recorder.seen[-1]
    assert path == "/prom/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D"
    assert authorization == "Bearer s3cr3t-token"
    assert "s3cr3t" not in path
