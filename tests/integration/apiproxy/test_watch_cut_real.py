"""A watch cut by the proxy in front of the real API server ends cleanly for the official client and
for shimshift's own client: the stream closes after whole events and the client re-watches from the
last resourceVersion it saw, with no event lost and no ProtocolError.

A cut that drops the connection instead (no last chunk of the chunked body, as a load balancer's idle
timeout or a crashed API server leaves it) is what `ProtocolError: Response ended prematurely` is:
urllib3's answer to a chunked body cut short. The official client's `Watch.stream` raises it to its
caller; shimshift's watch ends its stream there and its waits re-watch from the last resourceVersion,
with no event lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
from testbed.apiproxy import FaultProxy, running_proxy
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi

from shimshift.kube.api import Kube, load_api_client
from shimshift.kube.watching import wait_until as shimshift_wait_until

from .conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def real_proxy(controlplane: ControlPlane, realkube: RealKubeApi, tmp_path: Path) -> Iterator[FaultProxy]:
    with running_proxy(controlplane.admin_kubeconfig, tmp_path / "proxy") as proxy:
        yield proxy


def _configmap(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "default"}}


class OfficialWatcher(threading.Thread):
    """``kubernetes.watch.Watch`` over ConfigMaps, re-watching after every end, recording errors."""

    def __init__(self, kubeconfig: Path, since: str) -> None:
        super().__init__(daemon=True)
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
        self.core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
        self.rv = since
        self.seen: set[str] = set()
        self.errors: list[BaseException] = []
        self.streams = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.streams += 1
            try:
                for event in kubernetes.watch.Watch().stream(
                    self.core.list_namespaced_config_map,
                    "default",
                    resource_version=self.rv,
                    timeout_seconds=30,
                ):
                    obj = event["object"]
                    self.rv = obj.metadata.resource_version
                    self.seen.add(obj.metadata.name)
            except Exception as e:  # what a cut raises is the finding
                self.errors.append(e)
                return


def _watched(watcher: OfficialWatcher, name: str) -> bool:
    return name in watcher.seen or bool(watcher.errors)


def test_the_official_client_sees_a_cut_watch_end_and_rewatches_without_losing_an_event(
    real_proxy: FaultProxy, realkube: RealKubeApi
) -> None:
    watcher = OfficialWatcher(real_proxy.kubeconfig, str(realkube.resource_version))
    watcher.start()
    try:
        cuts = 0
        for i in range(30):
            wait_until(lambda: real_proxy.open_watches("configmaps") > 0, 10, "an open ConfigMap watch")
            if i % 2:  # an idle stream, that has relayed no event yet, is cut too
                cuts += real_proxy.cut_watches("configmaps")
                wait_until(lambda: real_proxy.open_watches("configmaps") > 0, 10, "the re-watch")
            realkube.seed(_configmap(i))
            wait_until(partial(_watched, watcher, f"c{i}"), 10, f"c{i} watched")
            cuts += real_proxy.cut_watches("configmaps")
    finally:
        watcher.stopping.set()
    assert watcher.errors == []
    assert cuts == 45 and watcher.streams >= 45
    assert {f"c{i}" for i in range(30)} <= watcher.seen


def test_shimshift_s_watch_ends_cleanly_when_the_proxy_cuts_it(
    real_proxy: FaultProxy, realkube: RealKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    kube = Kube(load_api_client(str(real_proxy.kubeconfig)))
    since = str(realkube.resource_version)
    seen: list[str] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            for event in kube.watch(
                "/api/v1/namespaces/default/configmaps", resource_version=since, timeout=30
            ):
                seen.append(event["object"]["metadata"]["name"])
        except Exception as e:
            errors.append(e)

    with caplog.at_level(logging.DEBUG, logger="shimshift.kube.api"):
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        wait_until(lambda: real_proxy.open_watches("configmaps") > 0, 10, "an open ConfigMap watch")
        realkube.seed(_configmap(0))
        wait_until(lambda: bool(seen), 10, "c0 watched")
        assert real_proxy.cut_watches("configmaps") == 1
        thread.join(timeout=10)
    assert not thread.is_alive() and errors == [] and seen == ["c0"]
    assert not [r for r in caplog.records if "ended early" in r.getMessage()], caplog.text


def test_a_dropped_watch_connection_is_the_protocol_error_and_shimshift_waits_through_it(
    real_proxy: FaultProxy, realkube: RealKubeApi
) -> None:
    # the official client: the error reaches the caller of Watch.stream
    watcher = OfficialWatcher(real_proxy.kubeconfig, str(realkube.resource_version))
    watcher.start()
    try:
        wait_until(lambda: real_proxy.open_watches("configmaps") > 0, 10, "an open ConfigMap watch")
        realkube.seed(_configmap(100))
        wait_until(partial(_watched, watcher, "c100"), 10, "c100 watched")
        assert real_proxy.cut_watches("configmaps", abrupt=True) == 1
        wait_until(lambda: bool(watcher.errors), 10, "the official client's error")
    finally:
        watcher.stopping.set()
    (error,) = watcher.errors
    assert isinstance(error, urllib3.exceptions.ProtocolError), repr(error)
    assert "Response ended prematurely" in str(error)

    # shimshift's wait: every watch it opens is dropped until the objects it waits for exist
    kube = Kube(load_api_client(str(real_proxy.kubeconfig)))
    names = {f"c{i}" for i in range(101, 106)}
    done = threading.Event()
    dropped = 0

    def create_and_drop() -> None:
        nonlocal dropped
        for i in range(101, 106):
            wait_until(lambda: real_proxy.open_watches("configmaps") > 0, 10, "shimshift's watch")
            realkube.seed(_configmap(i))
            dropped += real_proxy.cut_watches("configmaps", abrupt=True)
        done.set()

    thread = threading.Thread(target=create_and_drop, daemon=True)
    thread.start()
    ok = shimshift_wait_until(
        kube,
        "/api/v1/namespaces/default/configmaps",
        lambda objects: names <= {o["metadata"]["name"] for o in objects.values()},
        timeout=60,
    )
    thread.join(timeout=30)
    assert ok and done.is_set() and dropped >= 4, dropped
