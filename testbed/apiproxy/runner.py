"""Running the proxy in a daemon thread with its own event loop, and the handle tests use.

``FaultProxy`` has the fault-facing half of the emulator's ``KubeApi``: ``.faults``, ``.requests``,
``.cut_watches()``, ``.open_watches()``, ``.url``, ``.kubeconfig`` (the upstream kubeconfig's
credentials, pointed at the proxy) and ``.kubeconfig_for(other)``. ``ProxiedApi`` puts it in front of
any handle with the object half (``seed``/``get``/``list``/``patch``/``delete``: the emulator's
``KubeApi``, or a real control plane's), so a test written against ``KubeApi`` runs unchanged.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from testbed.apirequests.faults import Faults, RequestLog

from .kubeconfig import read_credentials, write_proxy_kubeconfig
from .pki import ServingPki, make_serving_pki
from .proxy import ApiProxy, Upstream

T = TypeVar("T")


@dataclass(frozen=True)
class ProxyConfig:
    """``upstream_kubeconfig``: where to forward and, if its user has a client certificate, the
    identity lent to tokenless requests; ``workdir`` gets the proxy's CA, serving certificate and
    kubeconfig; ``client_ca``: lend that identity only to clients with a certificate it signed."""

    upstream_kubeconfig: Path
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    client_ca: Path | None = None


class ProxyThread:
    """The proxy on its own event loop in a daemon thread."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.pki: ServingPki = make_serving_pki(config.workdir / "pki")
        upstream = Upstream.from_credentials(read_credentials(config.upstream_kubeconfig), config.workdir)
        self.proxy = ApiProxy(upstream, client_ca=config.client_ca is not None)
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="apiproxy", daemon=True)
        self._ready: Future[str] = Future()

    def _server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        if self.config.client_ca is not None:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(self.config.client_ca)
        return ctx

    async def _start(self) -> str:
        self._runner = web.AppRunner(
            self.proxy.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=self._server_ssl())
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"https://{host}:{port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.url = self.loop.run_until_complete(self._start())
        except BaseException as e:  # surface start-up failures in the starting thread
            self._ready.set_exception(e)
            self.loop.close()
            return
        self._ready.set_result(self.url)
        self.loop.run_forever()
        if self._runner is not None:
            self.loop.run_until_complete(self._runner.cleanup())
        # closed TLS connections finish closing on the loop's next turns (aiohttp's advice: 250 ms)
        self.loop.run_until_complete(asyncio.sleep(0.25))
        self.loop.close()

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        return self._ready.result(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run ``fn`` on the proxy's loop (at once when called there: a trigger's action)."""
        if threading.current_thread() is self._thread:
            return fn(*args)

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)


class FaultProxy:
    """The test-facing handle of a running proxy."""

    def __init__(self, thread: ProxyThread) -> None:
        self._thread = thread
        self.kubeconfig = self.kubeconfig_for(thread.config.upstream_kubeconfig)

    @property
    def url(self) -> str:
        return self._thread.url

    @property
    def ca_cert(self) -> Path:
        """The CA that signed the proxy's serving certificate (its kubeconfigs trust it)."""
        return self._thread.pki.ca_cert

    @property
    def faults(self) -> Faults:
        return self._thread.proxy.state.faults

    @property
    def requests(self) -> RequestLog:
        return self._thread.proxy.state.log

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubeconfig_for(self, source: Path, dest: Path | None = None) -> Path:
        """A copy of ``source`` pointing at the proxy with the same credentials (default: next to the
        proxy's other files, named after ``source``)."""
        if dest is None:
            dest = self._thread.config.workdir / "kubeconfigs" / f"{source.parent.name}-{source.name}"
        return write_proxy_kubeconfig(source, dest, self.url, self.ca_cert.read_bytes())

    def cut_watches(self, resource: str | None = None, abrupt: bool = False) -> int:
        """End open watch streams (``resource``: a plural or plural.group; None: all); how many were cut.
        ``abrupt``: drop the connection with no last chunk instead of ending the stream cleanly."""
        return self._thread.call(self._thread.proxy.cut_watches, resource, abrupt)

    def open_watches(self, resource: str) -> int:
        """How many watch streams on ``resource`` are open through the proxy (answered 200 upstream)."""
        return self._thread.call(self._thread.proxy.open_watches, resource)

    def reset(self) -> None:
        """No faults, an empty request log, and no watch left open (each test starts clean)."""
        self.faults.clear()
        self.cut_watches()
        self.requests.clear()


@contextmanager
def running_proxy(
    upstream_kubeconfig: Path, workdir: Path, *, client_ca: Path | None = None
) -> Iterator[FaultProxy]:
    """A proxy in front of ``upstream_kubeconfig``'s server for the ``with`` block."""
    thread = ProxyThread(ProxyConfig(upstream_kubeconfig, workdir, client_ca=client_ca))
    thread.start()
    try:
        yield FaultProxy(thread)
    finally:
        thread.stop()


class ProxiedApi:
    """A ``KubeApi``-shaped handle whose clients go through ``proxy``: ``kubeconfig``, ``env()``,
    ``url``, ``faults``, ``requests``, ``cut_watches`` and ``open_watches`` are the proxy's; everything
    else (``seed``, ``get``, ``list``, ``patch``, ``delete``, ...) is ``api``'s, which reaches its server
    directly, so the test's own reads and writes are neither logged nor faulted, as with the emulator."""

    def __init__(self, api: Any, proxy: FaultProxy) -> None:
        self.api = api
        self.proxy = proxy
        self.kubeconfig = proxy.kubeconfig

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def faults(self) -> Faults:
        return self.proxy.faults

    @property
    def requests(self) -> RequestLog:
        return self.proxy.requests

    def env(self) -> dict[str, str]:
        return self.proxy.env()

    def cut_watches(self, resource: str | None = None, abrupt: bool = False) -> int:
        return self.proxy.cut_watches(resource, abrupt)

    def open_watches(self, resource: str) -> int:
        return self.proxy.open_watches(resource)

    def reset(self) -> None:
        self.proxy.reset()
        if hasattr(self.api, "reset"):
            self.api.reset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)
