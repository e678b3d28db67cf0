"""The proxy in front of the API emulator served over HTTPS, so both hops are TLS as on a real cluster.

- ``tls_emulator``: a session emulator on HTTPS (its own CA) and its kubeconfig;
- ``proxy``: a session ``FaultProxy`` in front of it, reset for each test;
- ``proxied``: ``ProxiedApi``: the emulator's ``KubeApi`` for objects, the proxy for clients and faults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import kubernetes
import pytest
from testbed import waiting
from testbed.apiproxy import FaultProxy, ProxiedApi, ProxyConfig, ProxyThread
from testbed.apiproxy.pki import make_serving_pki
from testbed.kubeapi import EmulatorConfig, EmulatorThread, KubeApi, write_kubeconfig

T = TypeVar("T")

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsEmulator:
    thread: EmulatorThread
    kubeconfig: Path
    ca_cert: Path

    def handle(self) -> KubeApi:
        return KubeApi(self.thread, self.kubeconfig)


@pytest.fixture(scope="session")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsEmulator]:
    workdir = tmp_path_factory.mktemp("apiproxy-upstream")
    pki = make_serving_pki(workdir / "pki", "kubeapi emulator")
    thread = EmulatorThread(
        EmulatorConfig(time_factor=0.05, tls_cert=pki.server_cert, tls_key=pki.server_key)
    )
    url = thread.start()
    assert url.startswith("https://"), url
    try:
        yield TlsEmulator(
            thread, write_kubeconfig(workdir / "kubeconfig", url, ca_cert=pki.ca_cert), pki.ca_cert
        )
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def proxy_thread(
    tls_emulator: TlsEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyThread]:
    thread = ProxyThread(ProxyConfig(tls_emulator.kubeconfig, tmp_path_factory.mktemp("apiproxy")))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def proxy(proxy_thread: ProxyThread) -> Iterator[FaultProxy]:
    handle = FaultProxy(proxy_thread)
    handle.reset()
    yield handle
    handle.reset()


@pytest.fixture
def upstream(tls_emulator: TlsEmulator) -> KubeApi:
    api = tls_emulator.handle()
    api.reset()
    return api


@pytest.fixture
def proxied(upstream: KubeApi, proxy: FaultProxy) -> ProxiedApi:
    return ProxiedApi(upstream, proxy)


@pytest.fixture
def core(proxy: FaultProxy) -> Iterator[kubernetes.client.CoreV1Api]:
    """The official client through the proxy, configured from the proxy's kubeconfig (TLS, its CA)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(proxy.kubeconfig), client_configuration=config)
    with kubernetes.client.ApiClient(config) as client:
        yield kubernetes.client.CoreV1Api(client)


def wait_until(
    predicate: Callable[[], T | Literal[False] | None], timeout: float = 10.0, what: str = ""
) -> T:
    return waiting.wait_until(predicate, timeout, what=what or repr(predicate), interval=0.05)
