"""kubectl against the standalone emulator (``python -m testbed.kubeapi``), as a user would run it.

kubectl is the project's static v1.35 (``.tools/bin/kubectl``, installed by scripts/setup) when present,
else the machine's. The tests marked ``both_kubectls`` also run with the other binary if it exists.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import yaml
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import REPO, Kubectl, find_kubectl
from testbed.kubeapi.standalone import standalone_server
from testbed.waiting import wait_until

pytestmark = pytest.mark.integration

KUBECTLS = [k for k in dict.fromkeys([find_kubectl(), "/usr/bin/kubectl"]) if k and os.access(k, os.X_OK)]
NO_KUBECTL: list[str | None] = [None]  # the one case when there is none: it skips
NODES = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {node-role.kubernetes.io/worker: ""}}
  status:
    conditions: [{type: Ready, status: "True"}]
    addresses: [{type: InternalIP, address: 10.0.0.11}]
    nodeInfo: {kubeletVersion: v1.23.17, containerRuntimeVersion: "docker://20.10.24", osImage: Debian 12,
               kernelVersion: "6.1.0"}
- apiVersion: v1
  kind: Node
  metadata: {name: n2}
  status: {conditions: [{type: Ready, status: "True"}]}
"""
WIDGET_CRD = REPO / "tests" / "integration" / "kubeapi" / "widget-crd.yaml"


def replicaset(name: str, replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [{"name": "c", "image": "nginx"}],
                    },
                },
            },
        }
    )


def pdb(name: str, app: str, min_available: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
        }
    )


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Path]:
    """A fresh standalone emulator per test (time factor 0.05, pods ready 1 s after binding); yields its kubeconfig."""
    with standalone_server(
        tmp_path / "kubeconfig", "--time-factor", "0.05", "--pod-startup-seconds", "20"
    ) as server:
        yield server.kubeconfig


@pytest.fixture(params=KUBECTLS[:1] or NO_KUBECTL, ids=lambda k: Path(k).parent.parent.name if k else "none")
def kubectl(request: pytest.FixtureRequest, standalone: Path, tmp_path: Path) -> Kubectl:
    if request.param is None:
        pytest.skip("no kubectl available (scripts/setup installs .tools/bin/kubectl)")
    return Kubectl(request.param, standalone, tmp_path / "cache")


@pytest.fixture(params=KUBECTLS or NO_KUBECTL, ids=lambda k: k or "none")
def any_kubectl(request: pytest.FixtureRequest, standalone: Path, tmp_path: Path) -> Kubectl:
    if request.param is None:
        pytest.skip("no kubectl available")
    return Kubectl(request.param, standalone, tmp_path / "cache")


def ok(kubectl: Kubectl, *args: str, stdin: str | None = None, timeout: float = 30) -> str:
    result = kubectl.run(*args, input=stdin, timeout=timeout)
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_for(kubectl: Kubectl, args: tuple[str, ...], text: str, timeout: float = 15) -> str:
    last = [""]

    def output() -> str | None:
        last[0] = kubectl.run(*args).stdout
        return last[0] if text in last[0] else None

    return wait_until(
        output,
        timeout,
        what=f"{text!r} in `kubectl {' '.join(args)}`",
        interval=0.1,
        detail=lambda: f"last output:\n{last[0]}",
    )


class Lines:
    """The lines a process prints, read on a thread so that a test can wait for one with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def any(self, predicate: Callable[[list[str]], bool]) -> bool:
        """Whether a line printed so far, split into words, satisfies ``predicate``."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.seen.append(self._queue.get_nowait())
        return any(predicate(line.split()) for line in self.seen)


def header_and_rows(out: str) -> tuple[list[str], list[list[str]]]:
    lines = [line.split() for line in out.strip().splitlines()]
    return lines[0], lines[1:]


def test_get_nodes_wide_prints_the_usual_columns(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    out = ok(kubectl, "get", "nodes", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header == [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    assert out.splitlines()[1].split()[:3] == ["n1", "Ready", "worker"]
    assert "docker://20.10.24" in out and "10.0.0.11" in out


def test_get_pods_shows_readiness_status_and_node(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    ok(kubectl, "apply", "-f", "-", stdin=replicaset("web", 2))
    out = wait_for(kubectl, ("get", "pods", "-o", "wide"), "1/1")
    header, rows = header_and_rows(out)
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and "NODE" in header
    assert {row[2] for row in rows} <= {"Running", "Pending"}
    assert {row[6] for row in rows} <= {"n1", "n2"}


def test_get_watch_streams_changes(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    proc = kubectl.popen("get", "nodes", "-w", "--request-timeout=10s")
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        # kubectl -w lists, prints the list, then watches from the list's resourceVersion: once both nodes
        # are printed, every later change reaches the watch (the emulator resumes from its history).
        wait_until(
            lambda: lines.any(lambda row: row[:1] == ["n1"]) and lines.any(lambda row: row[:1] == ["n2"]),
            10,
            what="kubectl -w to print the listed nodes",
            detail=lambda: f"printed: {lines.seen}",
        )
        ok(kubectl, "cordon", "n2")
        wait_until(
            lambda: lines.any(lambda row: row[:2] == ["n2", "Ready,SchedulingDisabled"]),
            10,
            what="the cordon of n2 in the watch output",
            detail=lambda: f"printed: {lines.seen}",
        )
    finally:
        proc.kill()
        proc.communicate(timeout=5)


def test_describe_node_and_pod(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    ok(kubectl, "apply", "-f", "-", stdin=replicaset("web", 1))
    out = ok(kubectl, "describe", "node", "n1")
    assert "Name:               n1" in out and "Roles:              worker" in out
    pod = wait_for(kubectl, ("get", "pods", "-o", "name"), "pod/web-").strip().splitlines()[0]
    described = ok(kubectl, "describe", pod)
    assert "Controlled By:  ReplicaSet/web" in described


def test_apply_a_crd_then_custom_objects_shows_printer_columns(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", str(WIDGET_CRD))
    ok(
        kubectl,
        "apply",
        "-f",
        "-",
        stdin="apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {mode: Plan}\n",
    )
    header, rows = header_and_rows(ok(kubectl, "get", "widgets"))
    assert header == ["NAME", "MODE", "PHASE"]  # no Age: the CRD declares its columns and omits it
    assert rows[0][:2] == ["w1", "Plan"]
    assert "Mode:  Plan" in ok(kubectl, "describe", "widget", "w1").replace("    ", "  ")


def test_apply_reports_schema_errors_as_a_real_cluster_does(any_kubectl: Kubectl) -> None:
    ok(any_kubectl, "apply", "-f", str(WIDGET_CRD))
    bad = "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: x}\nspec: {mode: Foo}\n"
    result = any_kubectl.run("apply", "-f", "-", input=bad)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'The Widget "x" is invalid: spec.mode: Unsupported value: "Foo": supported values: "Plan", "Migrate"'
    )
    typo = "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: t}\nspec: {mode: Plan, sise: 2}\n"
    result = any_kubectl.run("apply", "-f", "-", input=typo)
    assert 'strict decoding error: unknown field "spec.sise"' in result.stderr


def test_apply_the_nodemigration_crd_and_get_a_schema_error_for_a_bad_object(kubectl: Kubectl) -> None:
    crd = REPO / "crds" / "nodemigration.yaml"
    if not crd.exists():
        pytest.skip("crds/nodemigration.yaml not written yet")
    ok(kubectl, "apply", "-f", str(crd))
    bad = "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: bad}\nspec: {mode: Foo}\n"
    result = kubectl.run("apply", "-f", "-", input=bad)
    assert result.returncode == 1
    assert 'The NodeMigration "bad" is invalid:' in result.stderr
    assert 'spec.mode: Unsupported value: "Foo": supported values: "Plan", "Migrate"' in result.stderr


def test_cordon_and_uncordon(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    assert ok(kubectl, "cordon", "n1").strip() == "node/n1 cordoned"
    assert "Ready,SchedulingDisabled" in ok(kubectl, "get", "node", "n1")
    assert ok(kubectl, "uncordon", "n1").strip() == "node/n1 uncordoned"
    assert ok(kubectl, "get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}") == ""


def test_drain_gives_up_on_a_blocking_budget_like_a_real_cluster(any_kubectl: Kubectl) -> None:
    ok(any_kubectl, "apply", "-f", "-", stdin=NODES)
    ok(any_kubectl, "cordon", "n2")
    ok(any_kubectl, "apply", "-f", "-", stdin=replicaset("web", 2) + "---\n" + pdb("web-pdb", "web", 2))
    wait_for(any_kubectl, ("get", "pdb", "web-pdb", "-o", "jsonpath={.status.currentHealthy}"), "2")
    assert "web-pdb   2               N/A               0" in ok(any_kubectl, "get", "pdb")
    result = any_kubectl.run("drain", "n1", "--timeout=2s", timeout=30)
    assert result.returncode == 1
    assert "node/n1 cordoned" in result.stdout
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert "global timeout reached: 2s" in result.stderr


def test_drain_waits_for_the_budget_and_pods_come_back_elsewhere(kubectl: Kubectl) -> None:
    ok(kubectl, "apply", "-f", "-", stdin=NODES)
    ok(kubectl, "cordon", "n2")
    ok(kubectl, "apply", "-f", "-", stdin=replicaset("web", 2) + "---\n" + pdb("web-pdb", "web", 1))
    wait_for(kubectl, ("get", "pdb", "web-pdb", "-o", "jsonpath={.status.currentHealthy}"), "2")
    assert "web-pdb   1               N/A               1" in ok(kubectl, "get", "pdb")
    ok(kubectl, "uncordon", "n2")
    result = kubectl.run("drain", "n1", "--timeout=40s", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "error when evicting pods/" in result.stderr and "(will retry after 5s)" in result.stderr
    assert result.stdout.count("evicted") == 2 and "node/n1 drained" in result.stdout
    _, rows = header_and_rows(ok(kubectl, "get", "pods", "-o", "wide"))
    assert [row[6] for row in rows] == ["n2", "n2"]


def test_kubectl_create_namespace_and_serviceaccount_send_protobuf_which_the_emulator_decodes(
    kubeapi: KubeApi, kubeapi_kubectl: Kubectl
) -> None:
    created = kubeapi_kubectl.run("create", "namespace", "shimshift-system")
    account = kubeapi_kubectl.run("create", "serviceaccount", "shimshift", "-n", "shimshift-system")
    labelled = kubeapi_kubectl.run("label", "namespace", "shimshift-system", "team=platform")
    other = kubeapi_kubectl.run("create", "deployment", "web", "--image=nginx")

    assert created.returncode == 0, created.stderr
    assert account.returncode == 0, account.stderr
    assert labelled.returncode == 0, labelled.stderr
    namespace = kubeapi.get("namespaces", "shimshift-system") or {}
    assert namespace["metadata"]["labels"]["team"] == "platform"
    assert namespace["status"]["phase"] == "Active"
    assert kubeapi.get("serviceaccounts", "shimshift", "shimshift-system") is not None
    # a kind the emulator cannot decode is refused loudly, never half-read
    assert other.returncode != 0 and "cannot decode protobuf apps/v1/Deployment" in other.stderr
    assert kubeapi.get("deployments.apps", "web", "default") is None
