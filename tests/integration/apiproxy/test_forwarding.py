"""What the proxy does to a request on its way, judged by an upstream that echoes what it received:
the bearer token passes unchanged on a connection without a client certificate, a tokenless request
gets the configured upstream identity, bodies pass byte for byte, streams are relayed as they come,
and an upstream that fails its TLS check is a 502 Status, not a traceback."""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from testbed.apiproxy import FaultProxy, running_proxy
from testbed.apiproxy.pki import ServingPki, issue_client_cert, make_serving_pki

from .conftest import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Echo:
    """An HTTPS upstream on its own loop; ``release`` lets a held stream send its second event."""

    pki: ServingPki
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    url: str = ""
    release: asyncio.Event | None = None
    runner: web.AppRunner | None = None
    thread: threading.Thread | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/gzip", self.gzipped)
        app.router.add_route("GET", "/api/v1/configmaps", self.stream)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        return app

    async def echo(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        raw = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": base64.b64encode(raw).decode(),
                "peer": subject.get("commonName", ""),
            },
            status=201 if request.method == "POST" else 200,
            headers={"Warning": '299 - "first"', "X-Echo": "1"},
        )

    async def gzipped(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"kind":"Status"}'),
            headers={"Content-Encoding": "gzip"},
            content_type="application/json",
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        out.enable_chunked_encoding()
        await out.prepare(request)
        await out.write(b'{"type":"ADDED","object":{"n":1}}\n')
        assert self.release is not None
        await self.release.wait()
        await out.write(b'{"type":"ADDED",')  # one event in two writes: relayed whole
        await asyncio.sleep(0.05)
        await out.write(b'"object":{"n":2}}\n')
        await out.write_eof()
        return out

    async def _start(self) -> str:
        self.release = asyncio.Event()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(self.pki.ca_cert)
        self.runner = runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"https://{host}:{port}"

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.url = self.loop.run_until_complete(self._start())
            started.set()
            self.loop.run_forever()
            if self.runner is not None:
                self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True, name="apiproxy-echo")
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)


def kubeconfig(path: Path, url: str, ca: Path, user: dict[str, str]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "up", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "up", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    server = Echo(make_serving_pki(tmp_path_factory.mktemp("echo-pki"), "echo upstream"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin_proxy(echo: Echo, tmp_path: Path) -> Iterator[FaultProxy]:
    """A proxy whose upstream kubeconfig's user is an admin client certificate."""
    cert, key = issue_client_cert(echo.pki, "testbed-admin", tmp_path / "admin")
    source = kubeconfig(
        tmp_path / "admin.kubeconfig",
        echo.url,
        echo.pki.ca_cert,
        {"client-certificate": str(cert), "client-key": str(key)},
    )
    with running_proxy(source, tmp_path / "proxy") as proxy:
        yield proxy


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    proxy: FaultProxy,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    cert: tuple[Path, Path] | None = None,
) -> Answer:
    ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    host, port = proxy.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def test_a_bearer_token_passes_unchanged_on_a_connection_without_the_admin_certificate(
    admin_proxy: FaultProxy,
) -> None:
    answer = call(admin_proxy, "GET", "/api/v1/nodes?limit=2", headers={"Authorization": "Bearer sa.token.x"})
    echoed = answer.json()
    assert ["Authorization", "Bearer sa.token.x"] in echoed["headers"]
    assert echoed["peer"] == ""  # the upstream judges the token, not the admin's certificate
    assert echoed["path_qs"] == "/api/v1/nodes?limit=2"


def test_a_request_without_a_token_is_forwarded_as_the_configured_upstream_identity(
    admin_proxy: FaultProxy,
) -> None:
    echoed = call(admin_proxy, "GET", "/api/v1/nodes").json()
    assert echoed["peer"] == "testbed-admin"
    assert not [h for h in echoed["headers"] if h[0].lower() == "authorization"]


def test_with_a_client_ca_only_a_client_with_its_certificate_is_lent_the_identity(
    echo: Echo, tmp_path: Path
) -> None:
    cert, key = issue_client_cert(echo.pki, "testbed-admin", tmp_path / "admin")
    source = kubeconfig(
        tmp_path / "admin.kubeconfig",
        echo.url,
        echo.pki.ca_cert,
        {"client-certificate": str(cert), "client-key": str(key)},
    )
    clients = make_serving_pki(tmp_path / "clients", "proxy clients")
    with running_proxy(source, tmp_path / "proxy", client_ca=clients.ca_cert) as proxy:
        assert call(proxy, "GET", "/api/v1/nodes").json()["peer"] == ""
        mine = issue_client_cert(clients, "kubectl-user", tmp_path / "mine")
        assert call(proxy, "GET", "/api/v1/nodes", cert=mine).json()["peer"] == "testbed-admin"


def test_bodies_and_headers_pass_byte_for_byte(admin_proxy: FaultProxy) -> None:
    protobuf = b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x05\n\x03\n\x01x\xff\x00"
    answer = call(
        admin_proxy,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
        body=protobuf,
        headers={
            "Content-Type": "application/vnd.kubernetes.protobuf",
            "Accept": "application/json",
            "User-Agent": "me/1",
        },
    )
    assert answer.status == 201
    echoed = answer.json()
    assert base64.b64decode(echoed["body"]) == protobuf
    sent = dict(echoed["headers"])
    assert sent["Content-Type"] == "application/vnd.kubernetes.protobuf"
    assert sent["Accept"] == "application/json" and sent["User-Agent"] == "me/1"
    assert ("Warning", '299 - "first"') in answer.headers and ("X-Echo", "1") in answer.headers
    rec = admin_proxy.requests.filter(method="POST")[0]
    assert (rec.verb, rec.resource, rec.namespace, rec.body, rec.status) == (
        "create",
        "configmaps",
        "default",
        None,
        201,
    )
    assert rec.query == {"fieldManager": "kubectl-create"} and rec.user_agent == "me/1"


def test_a_compressed_answer_is_relayed_compressed(admin_proxy: FaultProxy) -> None:
    answer = call(admin_proxy, "GET", "/gzip", headers={"Accept-Encoding": "gzip"})
    assert ("Content-Encoding", "gzip") in answer.headers
    assert gzip.decompress(answer.body) == b'{"kind":"Status"}'


def test_a_watch_is_relayed_event_by_event_while_the_upstream_holds_it(
    echo: Echo, admin_proxy: FaultProxy
) -> None:
    ctx = ssl.create_default_context(cafile=str(admin_proxy.ca_cert))
    host, port = admin_proxy.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request("GET", "/api/v1/configmaps?watch=true")
        response = conn.getresponse()
        assert response.status == 200
        # the upstream holds the stream open after its first event: that event must arrive now
        assert json.loads(response.readline()) == {"type": "ADDED", "object": {"n": 1}}
        assert admin_proxy.open_watches("configmaps") == 1
        assert echo.release is not None
        echo.loop.call_soon_threadsafe(echo.release.set)
        assert json.loads(response.readline()) == {"type": "ADDED", "object": {"n": 2}}
        assert response.read() == b""
    finally:
        conn.close()
    wait_until(
        lambda: [r.status for r in admin_proxy.requests.filter(verb="watch", resource="configmaps")] == [200],
        what="the watch logged as answered 200",
    )


def test_an_upgrade_is_refused_with_a_status(admin_proxy: FaultProxy) -> None:
    answer = call(
        admin_proxy,
        "GET",
        "/api/v1/namespaces/default/pods/p/exec?command=sh",
        headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"},
    )
    assert answer.status == 400 and answer.json()["kind"] == "Status"
    assert "does not relay upgrades" in answer.json()["message"]


def test_an_upstream_that_fails_verification_is_a_502_status(echo: Echo, tmp_path: Path) -> None:
    other = make_serving_pki(tmp_path / "other", "someone else")
    source = kubeconfig(tmp_path / "wrong-ca.kubeconfig", echo.url, other.ca_cert, {"token": "t"})
    with running_proxy(source, tmp_path / "proxy") as proxy:
        answer = call(proxy, "GET", "/api/v1/nodes", headers={"Authorization": "Bearer t"})
    assert answer.status == 502
    assert answer.json()["kind"] == "Status" and "certificate verify failed" in answer.json()["message"]
