"""A fault-injecting reverse proxy in front of any Kubernetes API server (test infrastructure).

It listens on loopback with TLS (its own CA, ``pki.make_serving_pki``) and forwards every request to
the upstream server, over TLS verifying the upstream's CA (or plain HTTP to the in-repo emulator).
Each request is parsed into the ``RequestRecord`` the emulator logs (``testbed.apirequests``), kept in
the same ``RequestLog``, and judged by the same ``Faults`` rules before it is forwarded:

- a matching ``Faults.add`` rule or a ``Faults.add_random`` draw answers it with its status and a real
  ``kind: Status`` body, and the upstream never sees it; latency rules delay it first;
- a ``before=True`` trigger runs its action instead of forwarding: 503, nothing changed upstream;
- a trigger runs its action right after the upstream answered 2xx (the write is committed) and before
  a byte of that answer is relayed;
- ``cut_watches`` ends open watch streams cleanly (the client sees the stream end and re-watches).

Identity: a request's ``Authorization`` header (a ServiceAccount's bearer token) is passed through
unchanged on a connection that presents no client certificate, so the upstream's authentication and
RBAC judge the client's real identity. A request without one is forwarded with the configured
upstream client certificate (the admin of the testbed's control plane) when there is one, else
anonymously. The proxy cannot relay a client's own certificate (it never has the key), so with
``client_ca`` set it lends the upstream certificate only to a client that presented a certificate
signed by that CA; without ``client_ca`` every tokenless client on loopback is the admin, which is
why it listens on 127.0.0.1 only and is never shipped.

Bodies go both ways byte for byte (JSON, protobuf, gzip: nothing is decoded or re-encoded on the way);
request bodies are read whole (the record's ``body`` is the parsed JSON, or YAML for apply patches, and
None for protobuf). Watches (and ``follow`` logs) are relayed as they arrive and never buffered: a
JSON watch event by event (so a cut never leaves half an event), anything else chunk by chunk. Other
answers are read whole before they are relayed, which is what lets a trigger act between the commit and
the acknowledgement. Upgrades (exec, attach, port-forward over SPDY or WebSocket) are answered 400: the
operator never uses them, so the proxy does not relay them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from testbed.apirequests.faults import Faults, RequestLog, RequestRecord
from testbed.apirequests.paths import parse_path, request_verb
from testbed.apirequests.status import status_body

from .kubeconfig import Credentials

logger = logging.getLogger(__name__)

# RFC 9110 hop-by-hop fields, and those aiohttp sets itself for the hop it writes
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
MAX_REQUEST_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Upstream:
    """Where the proxy forwards to, and how it proves itself there.

    ``ca_pem`` verifies the upstream's serving certificate (None: the system's trust store);
    ``client_cert``/``client_key`` (files) are the identity lent to requests without a bearer token."""

    url: str
    ca_pem: bytes | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def from_credentials(cls, creds: Credentials, workdir: Path) -> Upstream:
        """The upstream of a kubeconfig's current context; its client certificate, if any, is written to
        ``workdir`` (mode 0600) for the TLS context to load."""
        cert = key = None
        if creds.client_cert_pem and creds.client_key_pem:
            workdir.mkdir(parents=True, exist_ok=True)
            cert, key = workdir / "upstream-client.crt", workdir / "upstream-client.key"
            for path, data in ((cert, creds.client_cert_pem), (key, creds.client_key_pem)):
                path.write_bytes(data)
                path.chmod(0o600)
        return cls(creds.server, creds.ca_pem, creds.insecure, cert, key)

    def ssl_context(self, with_client_cert: bool) -> ssl.SSLContext | bool:
        if not self.url.startswith("https://"):
            return False
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if with_client_cert and self.client_cert and self.client_key:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


@dataclass
class OpenWatch:
    rec: RequestRecord
    upstream: aiohttp.ClientResponse
    cut: bool = False
    abrupt: bool = False  # the cut drops the connection (no last chunk), as a load balancer's timeout does


@dataclass
class ProxyState:
    log: RequestLog = field(default_factory=RequestLog)
    faults: Faults = field(default_factory=Faults)
    watches: dict[int, OpenWatch] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)


def _parse_body(raw: bytes, content_type: str) -> Any:
    """The body as the emulator parses it: YAML for apply patches, protobuf left alone (None), JSON
    otherwise, whatever the content type says (clients may send none)."""
    if not raw or content_type.startswith("application/vnd.kubernetes.protobuf"):
        return None
    try:
        if content_type.startswith("application/apply-patch+yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError):
        return None  # the upstream judges it; the record just has no parsed body


def _streamed(rec: RequestRecord) -> bool:
    return rec.verb == "watch" or rec.query.get("follow", "").lower() in ("true", "1")


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in HOP_BY_HOP:
            out.add(key, value)
    return out


def _status_response(code: int, reason: str, message: str) -> web.Response:
    return web.Response(
        body=json.dumps(status_body(code, reason, message)).encode(),
        status=code,
        content_type="application/json",
    )


class ApiProxy:
    """The proxy's aiohttp application and its state; lives on one event loop."""

    def __init__(
        self, upstream: Upstream, state: ProxyState | None = None, *, client_ca: bool = False
    ) -> None:
        self.upstream = upstream
        self.state = state or ProxyState()
        self.client_ca = client_ca  # the listener verifies client certificates against a CA
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(self._close_sessions)
        return app

    def _session(self, with_client_cert: bool) -> aiohttp.ClientSession:
        """One pool for bearer-token requests (no client certificate on the connection: the upstream
        authenticates a certificate before a token, so it would otherwise win) and one for the rest."""
        session = self._sessions.get(with_client_cert)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.upstream.ssl_context(with_client_cert), limit=0, force_close=False
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
            self._sessions[with_client_cert] = session
        return session

    async def _close_sessions(self, _app: web.Application) -> None:
        self.cut_watches()
        for session in self._sessions.values():
            await session.close()

    # --- the test-facing operations (loop thread only) ----------------------------------------------

    def cut_watches(self, resource: str | None = None, abrupt: bool = False) -> int:
        """End the open watch streams on ``resource`` (plural or plural.group; None: all); how many.
        Cleanly (the chunked stream's last chunk, after whole events), or ``abrupt``: the connection
        closed mid-stream, with no last chunk, as an idle timeout of a load balancer or a crash ends it."""
        cut = 0
        for watch in list(self.state.watches.values()):
            if (resource is None or _names_resource(watch.rec, resource)) and not watch.cut:
                watch.cut = True
                watch.abrupt = abrupt
                watch.upstream.close()
                cut += 1
        return cut

    def open_watches(self, resource: str) -> int:
        """Watch streams on ``resource`` the upstream has answered 200 and that are still open."""
        return sum(
            1
            for w in self.state.watches.values()
            if not w.cut and w.upstream.status == 200 and _names_resource(w.rec, resource)
        )

    # --- requests -----------------------------------------------------------------------------------

    def _lends_client_cert(self, request: web.Request) -> bool:
        if "Authorization" in request.headers or self.upstream.client_cert is None:
            return False
        if not self.client_ca:
            return True  # every tokenless client is lent the identity
        transport = request.transport
        return bool(transport is not None and transport.get_extra_info("peercert"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = parse_path(request.path)
        query = dict(request.query)
        raw = await request.read() if request.can_read_body else b""
        ctype = request.headers.get("Content-Type", "")
        rec = self.state.log.record(
            method=request.method,
            path=request.path,
            query=query,
            verb=request_verb(request.method, target, query),
            group=target.group,
            version=target.version,
            resource=target.plural,
            subresource=target.subresource,
            namespace=target.namespace,
            name=target.name,
            content_type=ctype,
            body=_parse_body(raw, ctype),
            user_agent=request.headers.get("User-Agent", ""),
        )
        status = 502
        try:
            if "upgrade" in request.headers.get("Connection", "").lower():
                status = 400
                return _status_response(
                    400, "BadRequest", "the test proxy does not relay upgrades (exec, attach, port-forward)"
                )
            faults = self.state.faults
            rule = faults.take(rec)
            if rule is not None:
                if rule.latency:
                    await asyncio.sleep(rule.latency)
                if rule.status is not None:
                    status = rule.status
                    return web.Response(
                        body=json.dumps(rule.response()).encode(),
                        status=rule.status,
                        content_type="application/json",
                    )
            if faults.arriving(rec):
                status = 503
                return _status_response(503, "ServiceUnavailable", "a test trigger took this request")
            response = await self._forward(request, rec, raw)
            status = response.status
            return response
        except aiohttp.ClientError as e:
            logger.warning("apiproxy: %s %s: upstream failed: %s", request.method, request.path, e)
            status = 502
            return _status_response(502, "ServiceUnavailable", f"the upstream API server failed: {e}")
        finally:
            self.state.log.finish(rec, status)

    async def _forward(self, request: web.Request, rec: RequestRecord, raw: bytes) -> web.StreamResponse:
        session = self._session(self._lends_client_cert(request))
        url = self.upstream.url + request.raw_path
        upstream = await session.request(
            request.method,
            url,
            headers=_forwardable(request.headers),
            data=raw if raw else None,
            allow_redirects=False,
        )
        if _streamed(rec):
            return await self._relay_stream(request, rec, upstream)
        try:
            body = await upstream.read()
        finally:
            upstream.release()
        self.state.faults.served(rec, upstream.status)
        return web.Response(body=body, status=upstream.status, headers=_response_headers(upstream.headers))

    async def _relay_stream(
        self, request: web.Request, rec: RequestRecord, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        out = web.StreamResponse(status=upstream.status, headers=_response_headers(upstream.headers))
        out.enable_chunked_encoding()
        key = next(self.state.ids)
        watch = OpenWatch(rec, upstream)
        self.state.watches[key] = watch
        by_line = "json" in upstream.headers.get("Content-Type", "")
        pending = b""
        try:
            await out.prepare(request)
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError):
                    break
                if not chunk:
                    break
                if by_line:
                    pending += chunk
                    complete, newline, pending = pending.rpartition(b"\n")
                    if newline:
                        await out.write(complete + newline)
                else:
                    await out.write(chunk)
                if watch.cut:
                    break
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self.state.watches.pop(key, None)
            upstream.close()
        if watch.abrupt and request.transport is not None:
            request.transport.close()  # no last chunk: the client's HTTP library sees the body cut short
            return out
        # a cut ends the stream cleanly, with no half event: the client sees its watch end and re-watches
        with contextlib.suppress(ConnectionResetError, ConnectionError, RuntimeError):
            await out.write_eof()
        return out


def _response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return _forwardable(headers)


def _names_resource(rec: RequestRecord, resource: str) -> bool:
    plural, _, group = resource.partition(".")
    return rec.resource == plural and (not group or rec.group == group)
