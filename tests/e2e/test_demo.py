"""The README's main command, run as a user would (without a terminal): `python -m testbed.demo`.

It runs on the real control plane with a real kubelet on its kubeadm-cgroupfs node. The first test runs
it with `--keep` and judges the cluster it leaves, not only what it printed: through the API server
every node is Ready on containerd and schedulable and every pod of the workload Running, the real
kubelet's pods with containerd containers; over SSH on that node `crictl ps` lists those pods' running
containers and Docker runs no container any more. Then `python -m testbed down --all` must leave
nothing behind: no process (the control plane's included), mount, network namespace or directory of
the testbed. The second test interrupts the demo during the migration (Ctrl-C) and checks its own
teardown leaves nothing either.

The module holds the real-kubelet host lock (`real_kubelet_host`; tests/conftest.py puts it in the
real-kubelet scope) and tells the demo so (`SHIMSHIFT_HOST_LOCK_HELD`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from testbed import components
from testbed.controlplane.fixtures import missing_component
from testbed.nodes.fixtures import missing_prerequisites
from testbed.nodes.hygiene import leftovers
from testbed.nodes.kube_http import KubeHttp
from testbed.nodes.node import ssh_run
from testbed.nodes.realkubelet import OLD_CONTROL_PLANE, check_built
from testbed.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(720)]

ROOT = Path(__file__).resolve().parents[2]
NAME = "demo-e2e"
NODES = [f"{NAME}-node{i}" for i in (1, 2, 3)]
REAL_NODE = NODES[0]  # kubeadm-cgroupfs, the demo's first profile: the real kubelet
DEMO_TIMEOUT = 540


@dataclass(frozen=True)
class Root:
    """A testbed root of the test's own, and the host-wide traces (another run's named network
    namespaces or host paths) that were there before the demo started, so not the demo's."""

    path: Path
    before: tuple[str, ...]

    def left_behind(self) -> list[str]:
        """Every trace under the root, and host-wide traces that were not there before."""
        return [trace for trace in leftovers(self.path) if trace not in self.before]


@pytest.fixture
def testbed_root(real_kubelet_host: None) -> Iterator[Root]:
    """A testbed root of its own (short: node sockets live under it), so other sessions' clusters
    neither disturb the run nor count as its leftovers."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"the demo needs {', '.join(missing)} (run scripts/setup as root)")
    try:
        check_built(["kubeadm-cgroupfs"], OLD_CONTROL_PLANE)
    except components.ComponentMissing as e:
        missing_component(str(e))
    root = Path(tempfile.mkdtemp(prefix="ssdemo-", dir="/tmp"))
    yield Root(root, tuple(leftovers(root)))
    if root.exists():  # after --keep, or a failure
        down(root)
        shutil.rmtree(root, ignore_errors=True)


def down(root: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "testbed", "--root", str(root), "down", "--all"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def demo_argv(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "testbed.demo", "--name", NAME, "--root", str(root), *extra]


def demo_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}",  # this tree's shimshift
        "SHIMSHIFT_HOST_LOCK_HELD": "1",  # real_kubelet_host holds it for this module
    }


def section(output: str, title: str) -> str:
    """The lines under `$ <title>` up to the next command or section."""
    lines = output.splitlines()
    start = lines.index(f"$ {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(("$ ", "==> "))), len(lines))
    return "\n".join(lines[start:end])


def last_section(output: str, title: str) -> str:
    return section(f"$ {title}" + output.rsplit(f"$ {title}", 1)[1], title)


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def on_node(root: Path, node: str, argv: list[str]) -> str:
    """``argv`` on ``node`` over SSH with the cluster's key, its host key pinned."""
    described = json.loads((root / NAME / "cluster.json").read_text())
    entry = next(n for n in described["nodes"] if n["name"] == node)
    client = paramiko.SSHClient()
    client.load_host_keys(described["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        entry["ssh_host"],
        port=described["ssh_port"],
        username="root",
        key_filename=described["private_key"],
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    try:
        result = ssh_run(client, argv, timeout=30)
    finally:
        client.close()
    assert result.exit_status == 0, (argv, result.stderr)
    return result.stdout


def test_the_demo_moves_every_node_and_the_real_kubelets_pods_to_containerd(testbed_root: Root) -> None:
    try:
        result = subprocess.run(
            demo_argv(testbed_root.path, "--keep"),
            cwd=ROOT,
            env=demo_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"the demo did not finish within {DEMO_TIMEOUT}s; output so far:\n{e.stdout!r}\n{e.stderr!r}"
        )
    output = result.stdout
    assert result.returncode == 0, output[-6000:] + result.stderr[-3000:]
    total = re.search(r"every node is on containerd, schedulable, its pods Running; total (\d+)s", output)
    assert total, output[-3000:]
    print(f"the demo took {total.group(1)}s to its verdict")

    # what it printed: which kubelet is real, the plan, the steps, the runtimes, crictl
    assert f"{REAL_NODE} (kubeadm-cgroupfs): real kubelet 1.23.17" in output
    assert all(f"{node} (" in output and "model kubelet" in output for node in NODES[1:])
    plan = section(
        output,
        f"shimshift plan -f {testbed_root.path}/{NAME}/demo/nodemigration.yaml --probe-namespace shimshift-system",
    )
    assert plan.startswith("# shimshift plan: demo"), plan[:500]
    assert all(f"| {node} |" in plan for node in NODES), plan[:3000]
    changes = [line for line in output.splitlines() if re.match(r"\[\s*[\d.]+s\]   \S+-node\d: ", line)]
    steps = {m.group(1) for line in changes if (m := re.search(r"step (\w+)", line))}
    assert {"drain", "configure", "images", "switch", "verify"} <= steps, changes
    before = section(output, "kubectl get nodes -o wide").splitlines()
    after = last_section(output, "kubectl get nodes -o wide").splitlines()
    for lines, runtime in ((before, "docker://"), (after, "containerd://")):
        assert lines[0].split()[-1] == "CONTAINER-RUNTIME", lines
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert sorted(rows) == NODES, lines
        assert all(row[1] == "Ready" and row[-1].startswith(runtime) for row in rows.values()), lines
    endpoint = "crictl --runtime-endpoint unix:///run/containerd/containerd.sock"
    printed_ps = section(output, f"ssh root@{REAL_NODE} {endpoint} ps")
    images = section(output, f"ssh root@{REAL_NODE} {endpoint} images").splitlines()
    assert ("registry.shimshift.test/team/app", "1.0") in {tuple(r.split()[:2]) for r in images[1:]}, images

    # what it left: the cluster itself, judged through the API server and on the node
    kubeconfig = testbed_root.path / NAME / "controlplane" / NAME / "admin.kubeconfig"
    api = KubeHttp(kubeconfig)
    nodes = {n["metadata"]["name"]: n for n in api.request("GET", "/api/v1/nodes")["items"]}
    assert sorted(nodes) == NODES
    for name, node in nodes.items():
        assert _ready(node), name
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://"), name
        assert not node["spec"].get("unschedulable"), f"{name} left cordoned"
    migration = api.request("GET", "/apis/shimshift.io/v1alpha1/nodemigrations/demo")
    assert migration["status"]["phase"] == "Succeeded", migration["status"]

    def workload() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in api.request("GET", "/api/v1/pods")["items"]
            if p["metadata"]["namespace"] in ("default", "kube-system")
        ]
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and _ready(p)
            and not p["metadata"].get("deletionTimestamp")
        ]
        return running if len(running) == len(pods) == 3 + 3 + 1 else None  # web, kube-proxy, static

    pods = wait_until(workload, 30, what="the demo's 7 pods Running and Ready", interval=0.5)
    labels = [p["metadata"].get("labels") or {} for p in pods]
    assert sum(label.get("app") == "web" for label in labels) == 3, pods
    proxies = {p["spec"]["nodeName"] for p in pods if (p["metadata"].get("labels") or {}).get("k8s-app")}
    assert sorted(proxies) == NODES, pods  # the DaemonSet's pod on every node
    on_real = [p for p in pods if p["spec"]["nodeName"] == REAL_NODE]
    names_on_real = {p["metadata"]["name"] for p in on_real}
    assert f"node-probe-{REAL_NODE}" in names_on_real, names_on_real  # the static pod's mirror
    for pod in on_real:
        for status in pod["status"]["containerStatuses"]:
            assert status["containerID"].startswith("containerd://"), (pod["metadata"]["name"], status)
            assert "running" in status["state"], (pod["metadata"]["name"], status)

    listed = json.loads(on_node(testbed_root.path, REAL_NODE, ["crictl", "ps", "-o", "json"]))["containers"]
    running = {
        (c["labels"]["io.kubernetes.pod.name"], c["id"]) for c in listed if c["state"] == "CONTAINER_RUNNING"
    }
    for pod in on_real:
        for status in pod["status"]["containerStatuses"]:
            container_id = status["containerID"].removeprefix("containerd://")
            assert (pod["metadata"]["name"], container_id) in running, (pod["metadata"]["name"], running)
            assert pod["metadata"]["name"] in printed_ps, printed_ps  # what the demo showed
    # Docker (stopped by the migration: spec.docker Keep leaves it installed) runs no container any
    # more: containerd's "moby" namespace, where dockerd ran them, has no running task
    docker_tasks = on_node(testbed_root.path, REAL_NODE, ["ctr", "-n", "moby", "tasks", "ls"]).splitlines()
    assert not [t for t in docker_tasks[1:] if "RUNNING" in t], docker_tasks

    down(testbed_root.path)
    assert testbed_root.left_behind() == [], "the demo and `testbed down --all` left this behind"
    assert not any(testbed_root.path.iterdir())
    assert not list(Path("/dev/shm").glob(f"shimshift-controlplane-{NAME}-*")), "etcd's data was left"


def test_ctrl_c_during_the_migration_tears_everything_down(testbed_root: Root) -> None:
    proc = subprocess.Popen(
        demo_argv(testbed_root.path),
        cwd=ROOT,
        env=demo_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("==> migrate"):
                proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends the demo
                break
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert any(line.startswith("==> migrate") for line in seen), output[-4000:]
    assert proc.returncode == 130, output[-4000:]
    assert "done: no process, namespace or mount of the demo left" in output, output[-3000:]
    assert testbed_root.left_behind() == [], "the interrupted demo left this behind"
    assert not any(testbed_root.path.iterdir())
    assert not list(Path("/dev/shm").glob(f"shimshift-controlplane-{NAME}-*")), "etcd's data was left"


def test_the_live_table_shows_each_nodes_step_and_runtime_on_an_80_column_terminal() -> None:
    from testbed.demo import NodeView, View, render_view

    cordoned = NodeView("demotty-node2", "docker://20.10.24+dfsg1", True, True, "InProgress", "configure")
    done = NodeView("demotty-node1", "containerd://1.6.20~ds1", True, False, "Succeeded", "finish done")
    view = View("Migrate", "Progressing", "1/2", "demotty-node2", "2026-11-28T01:00:00Z", (done, cordoned))

    shown = [line[:79] for line in render_view(view)]  # what Console.redraw keeps of each line

    rows = {line.split()[0]: line.split() for line in shown if line.startswith("demotty-node")}
    assert rows["demotty-node2"][1:4] == ["InProgress", "configure", "Ready,Cordoned"], shown
    assert rows["demotty-node2"][4].startswith("docker://"), shown
    assert rows["demotty-node1"][1:4] == ["Succeeded", "finish", "done"], shown
    assert rows["demotty-node1"][5].startswith("containerd://"), shown
