"""End-to-end: the operator as a separate process (`shimshift run`) against the API emulator, or, in a
module marked `pytest.mark.realapi`, the real API server behind the fault-injecting proxy with the
operator as the chart's ServiceAccount (`tests.e2e.realapi`).

The node side is `tests.e2e.simnodes` (state files count every real change; the operator is then
started through tests/e2e/run_operator.py) unless a test brings fake nodes (`Operator(..., ssh=True)`).
Each test gets a fresh cluster (the emulator reset, or the real server's objects of the last test
deleted) with the CRDs installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from testbed.kubeapi import KubeApi
from testbed.nodes import Cluster
from testbed.waiting import wait_until

from shimshift.model.nodestate import migration_selector, record_of
from shimshift.model.status import MigrationStatus
from shimshift.resources import load_crd, load_node_crd
from tests.e2e.realapi import RealCluster, realapi_stack, realcluster, secret
from tests.integration.kube.conftest import migration as migration  # shared with the e2e tests

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

pytestmark = pytest.mark.e2e
__all__ = ["realapi_stack", "realcluster", "secret"]  # fixtures, for the modules marked realapi


def eventually(
    predicate: Callable[[], T | Literal[False] | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """``testbed.waiting.wait_until`` in the e2e tests' positional form (polled every 0.1 s)."""
    return wait_until(predicate, timeout, what=what, interval=interval)


class Operator:
    """The operator in a subprocess; kill() is SIGKILL, as an OOM killer or a node loss would be.

    With `ssh` it is the shipped `shimshift run`, reaching nodes over SSH; otherwise the tests' launcher
    `tests.e2e.run_operator` (the same command with tests.e2e.simnodes' simulated node steps)."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        env: dict[str, str],
        *,
        ssh: bool = False,
        run_args: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.env = env
        self.ssh = ssh
        self.extra_args: list[str] = []
        #: the arguments after `run` (the chart's, on the real server); default: the emulator tests'
        self.run_args = run_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"operator-{self.starts}.log").open("wb")
        # the working tree's package first, whatever copy of shimshift is installed
        env = {**os.environ, **self.env, "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}"}
        args = self.run_args
        if args is not None and self.extra_args:  # the test's own metrics port and probes win
            args = [*(a for a in args if not a.startswith("--metrics-port")), *self.extra_args]
        if args is None:
            args = [
                *(self.extra_args or ["--metrics-port", "0"]),
                "--namespace",
                "default",
                "--log-format",
                os.environ.get("SHIMSHIFT_E2E_LOG_FORMAT", "plain"),
            ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shimshift" if self.ssh else "tests.e2e.run_operator",
                "run",
                "--kubeconfig",
                str(self.kubeconfig),
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("operator-*.log")))


def ssh_operator(cluster: KubeApi | RealCluster, workdir: Path) -> Operator:
    """The shipped ``shimshift run``, reaching the testbed's nodes over SSH, not started: on the real
    server as the chart's ServiceAccount with the chart's arguments, through the proxy."""
    if not isinstance(cluster, RealCluster):
        return Operator(cluster.kubeconfig, workdir, {}, ssh=True)
    stack = cluster.stack
    return Operator(
        cluster.operator_kubeconfig,
        workdir,
        stack.operator_env(workdir / "sim"),
        ssh=True,
        run_args=[*stack.chart_args(), "--metrics-port=0"],
    )


def operator_namespace(cluster: Any) -> str:
    """Where the operator writes its Events and report ConfigMaps: the chart's namespace on the real
    server, `default` (the tests' `--namespace`) on the emulator."""
    return cluster.stack.namespace if isinstance(cluster, RealCluster) else "default"


def on_real_api(request: pytest.FixtureRequest) -> bool:
    """The test's module is marked `realapi`: the real API server behind the proxy."""
    return request.node.get_closest_marker("realapi") is not None


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> KubeApi | RealCluster:
    if on_real_api(request):
        real: RealCluster = request.getfixturevalue("realcluster")
        return real  # the chart's CRDs are the session's baseline
    kubeapi: KubeApi = request.getfixturevalue("kubeapi")
    kubeapi.seed([load_crd(), load_node_crd()])
    return kubeapi


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    return tmp_path / "sim"


@pytest.fixture
def operator_factory(
    cluster: KubeApi | RealCluster, tmp_path: Path, sim_dir: Path
) -> Iterator[Callable[..., Operator]]:
    """Operators in subprocesses: on the emulator with its kubeconfig; on the real server as the
    chart's ServiceAccount through the proxy, with the chart's arguments and environment."""
    started: list[Operator] = []

    def make(**env: str) -> Operator:
        if isinstance(cluster, RealCluster):
            stack = cluster.stack
            op = Operator(
                cluster.operator_kubeconfig,
                tmp_path,
                {**stack.operator_env(sim_dir), **env},
                run_args=[*stack.chart_args(), "--metrics-port=0"],
            )
        else:
            op = Operator(cluster.kubeconfig, tmp_path, {"SHIMSHIFT_SIM_DIR": str(sim_dir), **env})
        started.append(op)
        return op

    yield make
    for op in started:
        op.stop()


def status_of(kubeapi: KubeApi, name: str = "m") -> MigrationStatus:
    """The NodeMigration's stored status with the record of every node it started (its
    NodeMigrationNode objects; a status a previous version wrote keeps its own `nodes`)."""
    obj = kubeapi.get("nodemigrations.shimshift.io", name) or {}
    status = MigrationStatus.from_storage(obj.get("status") or {})
    if status.nodes:
        return status
    children = kubeapi.list("nodemigrationnodes.shimshift.io", label_selector=migration_selector(name))
    records = sorted((record_of(c) for c in children), key=lambda r: r.name)
    return replace(status, nodes=tuple(records))


def raw_status(kubeapi: Any, name: str) -> dict[str, Any]:
    """The NodeMigration's stored status as a dict, with `nodes` holding the record of every node it
    started in storage form (from its NodeMigrationNode objects), as the tests read it."""
    status = dict((kubeapi.get("nodemigrations.shimshift.io", name) or {}).get("status") or {})
    if not status.get("nodes"):
        children = kubeapi.list("nodemigrationnodes.shimshift.io", label_selector=migration_selector(name))
        records = sorted((record_of(c) for c in children), key=lambda r: r.name)
        status["nodes"] = [r.for_storage() for r in records]
    return status


def node(name: str, *, labels: dict[str, str] | None = None, unschedulable: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        # the hostname label a kubelet sets, the topology of the pods' anti-affinity (`web`)
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "pool": "workers", **(labels or {})},
        },
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"containerRuntimeVersion": "docker://20.10.24", "kubeletVersion": "v1.23.17"},
        },
    }


@contextlib.contextmanager
def emulator_for(
    nodes: Cluster, workdir: Path, *, crd: bool = True, workloads: bool = False
) -> Iterator[KubeApi]:
    """An API emulator for a testbed cluster with the nodes' fake kubelets attached; yields its handle,
    with the NodeMigration CRD unless told. The fake kubelets report the pods, so the emulator never
    starts one itself; with `workloads` its scheduler and workload and PDB controllers run (as the
    demo's emulator does, `--no-kubelet`) and grace periods last a tenth, otherwise its controllers are off."""
    from testbed.kubeapi import EmulatorConfig, EmulatorThread, write_kubeconfig

    config = EmulatorConfig(
        controllers=workloads, simulate_kubelet=False, time_factor=0.1 if workloads else 1.0
    )
    thread = EmulatorThread(config)
    thread.start()
    try:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", thread.emulator.url)
        api = KubeApi(thread, kubeconfig)
        if crd:
            api.seed([load_crd(), load_node_crd()])
        nodes.attach_api(thread.emulator.url, kubeconfig)
        yield api
    finally:
        thread.stop()


def web(replicas: int, min_available: int, *, one_per_node: bool = False) -> list[dict[str, Any]]:
    """A ReplicaSet `web` of `replicas` pods guarded by PDB `web-pdb` (minAvailable `min_available`).
    With `one_per_node` no two web pods share a node (a required pod anti-affinity on the hostname):
    the emulator's scheduler spreads them anyway (least loaded first), the real one only when told,
    and a replacement then waits, Pending, for a node without one."""
    labels = {"app": "web"}
    pod_spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx"}]}
    if one_per_node:
        term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        pod_spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web-pdb", "namespace": "default"},
            "spec": {"minAvailable": min_available, "selector": {"matchLabels": labels}},
        },
    ]


def web_pods(cluster: KubeApi | RealCluster) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("pods", namespace="default")
        if (p["metadata"].get("labels") or {}).get("app") == "web"
    ]
