"""pytest fixtures: one emulator per session in a background thread, reset before each test.

Register with ``pytest_plugins = ["testbed.kubeapi.fixtures"]`` (tests/conftest.py does).

- ``kubeapi_server``: session-scoped ``EmulatorThread`` (time factor 0.05, pod start-up 1 s scaled).
- ``kubeapi``: function-scoped ``KubeApi`` handle on a freshly reset cluster.
- ``kubeapi_kubectl``: a ``Kubectl`` runner bound to the emulator's kubeconfig (skips if no kubectl).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .kubectl import Kubectl, find_kubectl
from .runner import EmulatorConfig, EmulatorThread, KubeApi, write_kubeconfig

DEFAULT_TEST_TIME_FACTOR = 0.05


@pytest.fixture(scope="session")
def kubeapi_server() -> Iterator[EmulatorThread]:
    thread = EmulatorThread(EmulatorConfig(time_factor=DEFAULT_TEST_TIME_FACTOR, bookmark_interval=1.0))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def kubeapi_kubeconfig(kubeapi_server: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kubeconfig(tmp_path_factory.mktemp("kubeapi") / "kubeconfig", kubeapi_server.emulator.url)


@pytest.fixture
def kubeapi(kubeapi_server: EmulatorThread, kubeapi_kubeconfig: Path) -> Iterator[KubeApi]:
    handle = KubeApi(kubeapi_server, kubeapi_kubeconfig)
    handle.reset()
    yield handle
    kubeapi_server.call(kubeapi_server.emulator.store.cut_watches)


@pytest.fixture
def kubeapi_kubectl(kubeapi: KubeApi, tmp_path: Path) -> Kubectl:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl")
    return Kubectl(binary, kubeapi.kubeconfig, tmp_path / "kubectl-cache")
