"""pytest fixtures: one real control plane per session, what each test created removed after it.

Register with ``pytest_plugins = ["testbed.controlplane.fixtures"]`` (tests/conftest.py does).

- ``controlplane``: session-scoped ``ControlPlane`` (the first listed Kubernetes version, or
  ``SHIMSHIFT_CONTROLPLANE_VERSION``, e.g. v1.34.4), its API
  server auditing every request at Metadata level (the response code of each) to ``audit.log``.
- ``realkube``: function-scoped ``RealKubeApi`` (admin); after the test, ``reset()`` deletes what
  the test created.
- ``realkube_kubectl``: a ``Kubectl`` runner bound to the admin kubeconfig.

Without the built binaries the fixtures skip, except under CI (``CI=true``), where a missing
component fails the test with the message saying what to build: CI must not pass a check it skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from testbed import components
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import DEFAULT_ROOT, ControlPlane, binaries, default_version, teardown_dir
from testbed.kubeapi.kubectl import Kubectl, find_kubectl
from testbed.nodes.cluster import Cluster
from testbed.nodes.fixtures import missing_prerequisites
from testbed.nodes.processes import pid_alive
from testbed.nodes.profiles import Profile
from testbed.nodes.realkubelet import OLD_CONTROL_PLANE, check_built, real_stack

#: Metadata level records who asked what and the response code, without bodies.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def missing_component(message: str) -> NoReturn:
    """Fail under CI (the check must run there), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs the real control plane: {message}", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def real_kubelet_stack(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    profiles: Sequence[str | Profile],
    control_plane: str = OLD_CONTROL_PLANE,
) -> Iterator[tuple[ControlPlane, Cluster]]:
    """A test module's control plane and real-kubelet nodes (`realkubelet.real_stack`) under a fresh
    directory named `name`: skipped without the testbed's prerequisites, and without the built
    components skipped, or failed under CI naming what to build (`missing_component`)."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"testbed nodes need {', '.join(missing)} (run scripts/setup as root)")
    try:
        check_built(profiles, control_plane)
    except components.ComponentMissing as e:
        missing_component(str(e))
    with real_stack(name, profiles, Path(tmp_path_factory.mktemp(name)), control_plane) as stack:
        yield stack


def audit_events(plane: ControlPlane, offset: int = 0) -> list[dict[str, Any]]:
    """The audit events the API server wrote after byte ``offset`` of its audit log."""
    if plane.audit_log is None or not plane.audit_log.exists():
        return []
    with plane.audit_log.open("rb") as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def cleanup_stale(root: Path = DEFAULT_ROOT) -> list[Path]:
    """Tear down the control planes of pytest sessions that died without doing it (``pytest-<pid>``
    whose process is gone); returns their run directories."""
    cleaned = []
    for directory in sorted(root.glob("pytest-*")) if root.is_dir() else []:
        owner = directory.name.removeprefix("pytest-").split("-", 1)[0]  # pytest-<pid>[-e2e]
        if owner.isdigit() and not pid_alive(int(owner)):
            teardown_dir(directory)
            cleaned.append(directory)
    return cleaned


def _session_plane(suffix: str = "") -> Iterator[ControlPlane]:
    cleanup_stale()
    try:
        version = os.environ.get("SHIMSHIFT_CONTROLPLANE_VERSION") or default_version()
        binaries(version)
    except components.ComponentMissing as e:
        missing_component(str(e))
    plane = ControlPlane.up(f"pytest-{os.getpid()}{suffix}", version=version, audit_policy=AUDIT_POLICY)
    try:
        yield plane
    finally:
        plane.down()


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    yield from _session_plane()


@pytest.fixture(scope="session")
def e2e_controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A second control plane of the worker's session, for the e2e modules that keep the chart
    installed on it as their baseline (tests/e2e/realapi.py): the chart's own install tests helm
    install and uninstall it on `controlplane`, and neither may see the other's chart."""
    yield from _session_plane("-e2e")


@pytest.fixture(scope="session")
def realkube_session(controlplane: ControlPlane) -> RealKubeApi:
    return RealKubeApi(controlplane.admin_kubeconfig)


@pytest.fixture
def realkube(realkube_session: RealKubeApi) -> Iterator[RealKubeApi]:
    yield realkube_session
    realkube_session.reset()


@pytest.fixture
def realkube_kubectl(realkube: RealKubeApi, tmp_path: Path) -> Kubectl:
    binary = find_kubectl()
    if binary is None:
        missing_component("no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl")
    return Kubectl(binary, realkube.kubeconfig, tmp_path / "kubectl-cache")
