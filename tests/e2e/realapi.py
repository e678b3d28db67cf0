"""The e2e tests' Kubernetes side on the real control plane, behind the fault-injecting proxy.

A test module switches from the API emulator to the real server with ``pytest.mark.realapi`` (in its
``pytestmark``): its ``cluster`` is then a ``RealCluster`` and its ``operator_factory`` starts the
operator as the chart's ServiceAccount, through the proxy. ``RealCluster`` has the interface the tests
use on the emulator's ``KubeApi``: ``seed``/``get``/``list``/``patch``/``delete`` (the admin, straight
to the API server: never logged, never faulted), ``requests`` (every request that went through the
proxy: the operator's and kubectl's; the simulated kubelet reports with the admin's own credentials,
straight to the server), ``faults`` (rules, random faults, triggers), ``cut_watches``/``open_watches``, ``kubeconfig`` (the
admin through the proxy, for kubectl) and ``resource_version``; and, in place of the emulator's
history, a watch of pods and nodes recorded from the test's start (``history``).

One control plane per xdist worker (the session's ``e2e_controlplane``, apart from the chart tests' ``controlplane``), one proxy in front of it, and the
chart (CRDs, RBAC, its namespace, the peering object) applied once: the session's baseline. Between
tests everything else is deleted (``RealKubeApi.reset``), not restarted. After each test the API
server's audit log must show no 403 for the operator's account: the chart's RBAC is enforced.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from testbed.apiproxy import FaultProxy, ProxiedApi, ProxyConfig, ProxyThread
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.fixtures import audit_events, missing_component
from testbed.kubeapi.kubectl import Kubectl, find_kubectl
from testbed.nodes import Cluster, Node
from testbed.nodes.kube_http import KubeHttp
from testbed.waiting import wait_until

from tests.e2e.chart_account import VALUES, Answer, apply_chart
from tests.unit.chart import helm

#: the objects of the chart the session applies once and every reset keeps
CHART_CRD = "nodemigrations.shimshift.io"


@dataclass(frozen=True)
class WatchEvent:
    """One change the API server reported, as the emulator's history holds it."""

    type: str
    key: tuple[str, str]  # (namespace, name)
    rv: int
    obj: dict[str, Any]


class Recorder(threading.Thread):
    """Every change of one resource after ``since`` (a resourceVersion), from a watch of the admin's
    straight to the API server (never cut by the proxy); re-watches from the last event if the server
    ends the stream."""

    def __init__(self, http: KubeHttp, collection: str, since: int) -> None:
        super().__init__(daemon=True, name=f"record-{collection.rsplit('/', 1)[-1]}")
        self.http = http
        self.collection = collection
        self.rv = since
        self.events: list[WatchEvent] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.stream: Any = None  # the open watch's response

    def run(self) -> None:
        while not self.stopping.is_set():
            url = f"{self.http.server}{self.collection}?watch=1&resourceVersion={self.rv}&timeoutSeconds=5"
            request = urllib.request.Request(url, headers=self.http.headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=30, context=self.http.context) as stream:  # noqa: S310
                    with self.lock:
                        self.stream = stream
                    if self.stopping.is_set():
                        return
                    for line in stream:
                        if self.stopping.is_set():
                            return
                        self._add(json.loads(line))
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
                if self.stopping.wait(0.2):
                    return
            finally:
                with self.lock:
                    self.stream = None

    def stop(self) -> None:
        """Stop now: the watch's connection is shut down, not waited on until the server ends it (up
        to its 5 s timeout, in every test's teardown)."""
        self.stopping.set()
        with self.lock:
            stream = self.stream
        connection = getattr(getattr(getattr(stream, "fp", None), "raw", None), "_sock", None)
        if isinstance(connection, socket.socket):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _add(self, event: dict[str, Any]) -> None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if event.get("type") == "ERROR":  # too old a resourceVersion: nothing more can be replayed
            raise AssertionError(f"the recorded watch of {self.collection} failed: {obj}")
        rv = int(meta.get("resourceVersion") or 0)
        with self.lock:
            if event.get("type") != "BOOKMARK":
                self.events.append(
                    WatchEvent(event["type"], (meta.get("namespace", ""), meta.get("name", "")), rv, obj)
                )
            self.rv = max(self.rv, rv)

    def caught_up(self, listed: dict[tuple[str, str], int], since: int) -> bool:
        """The recorded changes reach the state a list returned (each object's resourceVersion
        there, and nothing alive here that the list no longer has): a watch only sends an object's
        events, so the server's own resourceVersion may never be reached by it."""
        latest: dict[tuple[str, str], tuple[str, int]] = {}
        with self.lock:
            for e in self.events:
                latest[e.key] = (e.type, e.rv)
        for key, rv in listed.items():
            kind, seen = latest.get(key, ("", since))
            if kind == "DELETED" or seen < rv:
                return False
        return all(kind == "DELETED" or key in listed for key, (kind, _) in latest.items())

    def snapshot(self) -> list[WatchEvent]:
        with self.lock:
            return list(self.events)


class RealCluster(ProxiedApi):
    """``ProxiedApi`` over the session's control plane, with the operator's account and the history."""

    def __init__(self, stack: RealStack, test_dir: Path, api: RealKubeApi | None = None) -> None:
        super().__init__(api or stack.api, FaultProxy(stack.proxy))
        self.stack = stack
        self.plane = stack.plane
        self.test_dir = test_dir
        self.audit_offset = stack.plane.audit_log.stat().st_size if stack.plane.audit_log else 0
        self.since = since = self.api.resource_version
        self.recorders = {
            "pods": Recorder(stack.api.http, "/api/v1/pods", since),
            "nodes": Recorder(stack.api.http, "/api/v1/nodes", since),
        }
        for recorder in self.recorders.values():
            recorder.start()

    def seed(self, source: Any) -> list[dict[str, Any]]:
        """``RealKubeApi.seed``; a Node seeded is then waited for until it can take pods (the stand-in
        for its kubelet, ``podlife``, has given it capacity), as an
        emulator's Node can at once."""
        created: list[dict[str, Any]] = self.api.seed(source)
        names = [o["metadata"]["name"] for o in created if o.get("kind") == "Node"]
        for name in names:
            wait_until(partial(self._takes_pods, name), 30, what=f"node {name} to take pods")
        return created

    def _takes_pods(self, name: str) -> bool:
        allocatable = ((self.api.get("nodes", name) or {}).get("status") or {}).get("allocatable") or {}
        return int(allocatable.get("pods", "0")) > 0

    @property
    def operator_kubeconfig(self) -> Path:
        """The chart's ServiceAccount's token, through the proxy."""
        return self.stack.operator_kubeconfig

    @property
    def admin_kubeconfig(self) -> Path:
        """The admin straight to the API server (the simulated kubelet's credentials)."""
        return self.plane.admin_kubeconfig

    def history(self, resource: str, since_rv: int = 0) -> list[WatchEvent]:
        """Every recorded change of ``resource`` (pods or nodes) after ``since_rv``, up to now."""
        recorder = self.recorders[resource]

        def caught_up() -> bool:
            listed = {
                (o["metadata"].get("namespace", ""), o["metadata"]["name"]): int(
                    o["metadata"]["resourceVersion"]
                )
                for o in self.api.list(resource)
            }
            return recorder.caught_up(listed, self.since)

        wait_until(caught_up, 10, what=f"the recorded {resource} watch to catch up", interval=0.1)
        return [e for e in recorder.snapshot() if e.rv > since_rv]

    def answers(self) -> Counter[Answer]:
        """How often the operator's account got each (verb, resource/subresource, namespace, code)."""
        counted: Counter[Answer] = Counter()
        for e in audit_events(self.plane, self.audit_offset):
            if (
                e.get("stage") != "ResponseComplete"
                or (e.get("user") or {}).get("username") != self.stack.user
            ):
                continue
            ref = e.get("objectRef") or {}
            resource = ref.get("resource", "") + "/" + ref.get("subresource", "")
            counted[(e["verb"], resource, ref.get("namespace", ""), e["responseStatus"]["code"])] += 1
        return counted

    def table(self, path: str) -> dict[str, Any]:
        """``path`` as a Table (the printer columns kubectl shows), read by the admin straight from the
        API server (so not in the proxy's log)."""
        http = KubeHttp(self.plane.admin_kubeconfig)
        http.headers["Accept"] = "application/json;as=Table;v=v1;g=meta.k8s.io"
        answer: dict[str, Any] = http.request("GET", path)
        return answer

    def kubectl(self) -> Kubectl:
        binary = find_kubectl()
        if binary is None:
            missing_component(
                "no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl"
            )
        return Kubectl(binary, self.kubeconfig, self.test_dir / "kubectl-cache")

    def close(self) -> None:
        for recorder in self.recorders.values():
            recorder.stop()
        for recorder in self.recorders.values():
            recorder.join(timeout=10)


@dataclass
class RealStack:
    """The session's control plane, its proxy and the chart applied once."""

    plane: ControlPlane
    proxy: ProxyThread
    workdir: Path
    docs: list[dict[str, Any]] = field(default_factory=list)
    user: str = ""
    operator_kubeconfig: Path = Path()
    api: RealKubeApi = field(init=False)

    namespace: str = helm.NAMESPACE

    def admin_kubectl(self) -> Kubectl:
        binary = find_kubectl()
        if binary is None:
            missing_component(
                "no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl"
            )
        return Kubectl(binary, self.plane.admin_kubeconfig, self.workdir / "kubectl-cache")

    def install_chart(self) -> None:
        """Apply the chart as the admin (its CRDs, RBAC, namespace and peering object), mint the
        operator's token, and take the baseline every reset returns to."""
        self.docs = apply_chart(self.admin_kubectl(), self.workdir)
        account = helm.only(self.docs, "ServiceAccount")["metadata"]["name"]
        self.user = f"system:serviceaccount:{helm.NAMESPACE}:{account}"
        direct = self.plane.service_account_kubeconfig(
            self.workdir / "operator-direct.kubeconfig", helm.NAMESPACE, account
        )
        self.operator_kubeconfig = FaultProxy(self.proxy).kubeconfig_for(
            direct, self.workdir / "operator.kubeconfig"
        )
        self.api = RealKubeApi(self.plane.admin_kubeconfig)  # the baseline: the chart is kept

    def clear_events(self) -> None:
        """Events in the namespaces the session keeps (the chart's, default): a reset leaves Events to
        go with their namespace, and a test reading the operator's Events must see its own only."""
        for namespace in (self.namespace, "default"):
            self.api.http.request("DELETE", f"/api/v1/namespaces/{namespace}/events")

    def chart_present(self) -> bool:
        """Another module's ``realkube`` reset (an older baseline) may have removed the chart."""
        account = helm.only(self.docs, "ServiceAccount")["metadata"]["name"]
        return (
            self.api.get("customresourcedefinitions.apiextensions.k8s.io", CHART_CRD) is not None
            and self.api.get("serviceaccounts", account, helm.NAMESPACE) is not None
        )

    def chart_args(self) -> list[str]:
        """The chart's container arguments (after ``run``), without its probes and metrics port."""
        container = helm.only(self.docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        args = [a for a in container["args"] if not a.startswith(("--liveness", "--metrics-port"))]
        assert args[0] == "run", args
        return args[1:]

    def operator_env(self, sim_dir: Path) -> dict[str, str]:
        return {
            "SHIMSHIFT_NAMESPACE": helm.NAMESPACE,  # the Deployment's downward API value
            "SHIMSHIFT_POD_NAME": "shimshift-0",
            "SHIMSHIFT_SIM_DIR": str(sim_dir),
            "SHIMSHIFT_SIM_KUBELET_KUBECONFIG": str(self.plane.admin_kubeconfig),
        }


@pytest.fixture(scope="session")
def realapi_stack(
    e2e_controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealStack]:
    workdir = tmp_path_factory.mktemp("realapi")
    thread = ProxyThread(ProxyConfig(e2e_controlplane.admin_kubeconfig, workdir / "proxy"))
    thread.start()
    try:
        stack = RealStack(e2e_controlplane, thread, workdir)
        stack.install_chart()
        yield stack
    finally:
        thread.stop()


@contextlib.contextmanager
def real_test_cluster(
    stack: RealStack, test_dir: Path, api: RealKubeApi | None = None
) -> Iterator[RealCluster]:
    """The real API server through the proxy for one test: no faults, an empty request log; after it,
    no 403 for the operator in the audit log, then everything the test created since ``api``'s baseline
    (the session's by default) is deleted."""
    if not stack.chart_present():
        stack.install_chart()
    handle = RealCluster(stack, test_dir, api)
    handle.proxy.reset()
    try:
        yield handle
        answers = handle.answers()
        refused = {k: n for k, n in answers.items() if k[3] == 403}
        print(
            f"\naudit: {answers.total()} answers to the operator's ServiceAccount, {len(refused)} kinds refused (403)"
        )
        assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"
    finally:
        handle.close()
        handle.proxy.reset()
        handle.api.reset()
        stack.clear_events()


@pytest.fixture
def realcluster(realapi_stack: RealStack, tmp_path: Path) -> Iterator[RealCluster]:
    """``real_test_cluster`` on the session's baseline."""
    with real_test_cluster(realapi_stack, tmp_path) as handle:
        yield handle


def _stop_kubelet(node: Node) -> bool:
    try:
        return node.exec(["systemctl", "stop", "kubelet"], timeout=60).exit_status == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _registered(api: RealKubeApi, names: list[str]) -> bool:
    found = [api.get("nodes", n) or {} for n in names]
    return all(((o.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") for o in found)


@contextlib.contextmanager
def nodes_on_real_api(
    stack: RealStack, nodes: Cluster, extra_secrets: tuple[str, ...] = ()
) -> Iterator[RealKubeApi]:
    """The testbed ``nodes``' kubelets registered with the session's control plane, each with its own
    node certificate (the Node authorizer and NodeRestriction admit it for its own Node only), and the
    SSH Secrets the chart names, in the chart's namespace (the operator's) and in ``default`` (where
    ``shimshift plan --probe-namespace default`` reads them). ``extra_secrets``: Secret names the
    chart's Role then grants too (``rbac.extraSecretNames``, registry CAs), until the end.

    Yields the admin's handle whose baseline holds all that: a test's reset (``real_test_cluster``
    with it) keeps the Nodes, as the emulator kept them for a module. Afterwards the kubelets are
    stopped and everything goes back to the session's baseline."""
    names = [n.name for n in nodes.nodes]
    stopped: list[bool] = []
    try:
        if extra_secrets:  # the chart's Role as that value renders it, replaced in place (same uid)
            listed = "{" + ",".join(extra_secrets) + "}"
            rendered = helm.template(*VALUES, "--set", f"rbac.extraSecretNames={listed}")
            assert rendered.returncode == 0, rendered.stderr
            stack.api.seed(helm.only(helm.documents(rendered.stdout), "Role"))
        nodes.attach_api(
            stack.plane.url,
            stack.plane.admin_kubeconfig,
            node_kubeconfig=stack.plane.node_kubeconfig,
            admin_kubeconfig=stack.plane.admin_kubeconfig,
        )
        wait_until(partial(_registered, stack.api, names), 60, what="the kubelets to register")
        for namespace in (stack.namespace, "default"):
            stack.api.seed(
                [
                    secret("ssh", "ssh-privatekey", nodes.private_key.read_text(), namespace),
                    secret("known-hosts", "known_hosts", nodes.known_hosts.read_text(), namespace),
                ]
            )
        yield RealKubeApi(stack.plane.admin_kubeconfig)
    finally:
        with ThreadPoolExecutor(max_workers=len(nodes.nodes) or 1) as pool:
            stopped = list(pool.map(_stop_kubelet, nodes.nodes))
        stack.api.reset()  # the Nodes too, their kubelets no longer registering them again
        stack.clear_events()
        if extra_secrets:
            stack.api.seed(helm.only(stack.docs, "Role"))
    failed = [n.name for n, ok in zip(nodes.nodes, stopped, strict=True) if not ok]
    assert not failed, f"the kubelets of {failed} did not stop"


def secret(name: str, key: str, text: str, namespace: str = "default") -> dict[str, Any]:
    """An Opaque Secret holding `text` under `key`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(text.encode()).decode()},
    }
