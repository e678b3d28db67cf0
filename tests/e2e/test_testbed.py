"""The whole product on the testbed: the operator process, the API emulator, and fake nodes with real
sshd, containerd 1.6 and dockerd 20.10 whose fake kubelets report to the emulator. Nodes move over SSH
with the real playbooks (`--node-port ssh`), and the kubelet itself reports containerd:// at the end.

The emulator runs its scheduler and workload and PDB controllers but starts no pod itself (as the
demo's does): the fake kubelets report their pods Running once their runtime can run them, so a drain
meets a real budget and the evicted pods come back only where the runtime works.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi.kubectl import Kubectl, find_kubectl
from testbed.nodes.images import kube_proxy_image

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER
from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import Operator, emulator_for, eventually, secret
from tests.e2e.history import is_ready, max_cordoned, min_healthy_after_ready, operator_requests

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(280)]

#: node1-node4 migrate together (both cgroup drivers, both kubelet layouts, all registry setups); node5
#: first gets a containerd that cannot start its CRI plugin and rolls back, then is migrated under
#: SIGKILLs. Not cri-dockerd: its kubelet 1.27 runs another kube-proxy image than the DaemonSet's.
SCRATCH_PROFILES = ["kubeadm-systemd", "kubeadm-cgroupfs", "kubespray", "kubeadm-systemd", "kubeadm-cgroupfs"]
CRI_STATE_DIR = "/var/lib/containerd/io.containerd.grpc.v1.cri"
ORDER = [str(s) for s in STEP_ORDER]
APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in every node's Docker (testbed seeding)
WEB_NODE_LABEL = "shimshift.test/web"
REPLICAS, MIN_AVAILABLE = 4, 3  # the budget lets one web pod be down at a time


@pytest.fixture(scope="module")
def stack(scratch_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    with emulator_for(scratch_cluster, tmp_path_factory.mktemp("stack"), workloads=True) as api:
        yield scratch_cluster, api


def _ready_on(node: dict[str, Any], runtime: str) -> bool:
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    return ready and str((status.get("nodeInfo") or {}).get("containerRuntimeVersion", "")).startswith(
        runtime
    )


def _migrate(
    nodes: Any, api: Any, tmp_path: Path, name: str, node_names: list[str]
) -> tuple[str, Any, Operator]:
    """Run the operator on a NodeMigration of `node_names` until it settles; (phase, status, operator)."""
    eventually(
        lambda: all(_ready_on(api.get("nodes", n) or {}, "docker://") for n in node_names),
        60,
        "kubelets on Docker",
    )
    if api.get("secrets", "ssh", "default") is None:
        api.seed(
            [
                secret("ssh", "ssh-privatekey", nodes.private_key.read_text()),
                secret("known-hosts", "known_hosts", nodes.known_hosts.read_text()),
            ]
        )
    operator = Operator(api.kubeconfig, tmp_path, {}, node_port="ssh")
    operator.start()
    try:
        api.seed(
            {
                "apiVersion": "shimshift.io/v1alpha1",
                "kind": "NodeMigration",
                "metadata": {"name": name},
                "spec": {
                    "mode": "Migrate",
                    "nodeNames": node_names,
                    "rollout": {"maxUnavailable": 2},
                    "ssh": {
                        "user": "root",
                        "port": nodes.ssh_port,
                        "privateKeySecretRef": {"name": "ssh"},
                        "knownHostsSecretRef": {"name": "known-hosts"},
                    },
                },
            }
        )

        def finished() -> Any:
            obj = api.get("nodemigrations.shimshift.io", name) or {}
            phase = (obj.get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(finished, 200, "the migration to settle", 0.5)
    finally:
        operator.stop()
    return phase, (api.get("nodemigrations.shimshift.io", name) or {}).get("status") or {}, operator


def test_a_node_whose_containerd_cannot_start_cri_rolls_back_to_docker_and_the_rollout_pauses(
    stack: tuple[Any, Any], tmp_path: Path
) -> None:
    nodes, api = stack
    broken = nodes.nodes[4]
    config_before = broken.view("/etc/containerd/config.toml").read_bytes()
    # Injected fault: the CRI plugin's state directory is a file, so enabling CRI makes the plugin fail.
    assert (
        broken.exec(["sh", "-c", f"rm -rf {CRI_STATE_DIR} && echo broken > {CRI_STATE_DIR}"]).exit_status == 0
    )
    try:
        phase, status, operator = _migrate(nodes, api, tmp_path, "broken", [broken.name])
    finally:
        broken.exec(["rm", "-f", CRI_STATE_DIR])

    assert phase == Phase.PAUSED, (status, operator.logs()[-4000:])
    (record,) = status["nodes"]
    assert record["phase"] == NodePhase.ROLLED_BACK, record
    assert record["lastError"]["step"] == "configure", record["lastError"]
    paused = next(c for c in status["conditions"] if c["type"] == "Paused")
    assert (
        paused["status"] == "True" and paused["reason"] == "MaxFailures" and broken.name in paused["message"]
    )
    node = eventually(
        lambda: (n := api.get("nodes", broken.name)) and _ready_on(n, "docker://") and n, 60, "Docker"
    )
    assert not node["spec"].get("unschedulable")
    assert keys.LOCK_ANNOTATION not in (node["metadata"].get("annotations") or {})
    assert broken.view("/etc/containerd/config.toml").read_bytes() == config_before


def workload() -> list[dict[str, Any]]:
    """What the drain meets: a Deployment on the labelled nodes whose budget allows one pod down at a
    time, and a kube-proxy DaemonSet on every node (its pods stay, as with --ignore-daemonsets)."""
    web, proxy = {"app": "web"}, {"k8s-app": "kube-proxy"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": web},
                "template": {
                    "metadata": {"labels": web},
                    "spec": {
                        "nodeSelector": {WEB_NODE_LABEL: "true"},
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{"name": "app", "image": APP_IMAGE}],
                    },
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": MIN_AVAILABLE, "selector": {"matchLabels": web}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": proxy},
                "template": {
                    "metadata": {"labels": proxy},
                    "spec": {
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "kube-proxy", "image": kube_proxy_image("1.23.17")}],
                    },
                },
            },
        },
    ]


def _pods(api: Any, namespace: str, label: str, value: str) -> list[dict[str, Any]]:
    return api.list("pods", namespace=namespace, label_selector=f"{label}={value}")  # type: ignore[no-any-return]


def _running_on(pod: dict[str, Any], runtime: str) -> bool:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or [{}]
    return (
        status.get("phase") == "Running"
        and is_ready(pod)
        and not pod["metadata"].get("deletionTimestamp")
        and all(str(c.get("containerID", "")).startswith(runtime) for c in containers)
    )


def _web_pods_running_on(api: Any, runtime: str) -> list[dict[str, Any]] | None:
    """The web pods, once there are `REPLICAS` of them and all are Running and Ready on `runtime`."""
    pods = _pods(api, "default", "app", "web")
    return pods if len(pods) == REPLICAS and all(_running_on(p, runtime) for p in pods) else None


class PrinterColumns(threading.Thread):
    """`kubectl get nm NAME` (the real binary) every few tenths of a second while the operator works;
    keeps each row as {column: value}, cut at the header's column starts as kubectl aligns them (an
    empty cell is blank)."""

    def __init__(self, kubectl: Kubectl, migration: str) -> None:
        super().__init__(daemon=True)
        self.kubectl = kubectl
        self.migration = migration
        self.stop = threading.Event()
        self.rows: list[dict[str, str]] = []
        self.runs = 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                result = self.kubectl.run("get", "nm", self.migration, timeout=10)
            except subprocess.TimeoutExpired:
                continue
            self.runs += 1
            lines = result.stdout.splitlines()
            if result.returncode != 0 or len(lines) != 2:
                continue
            starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
            bounds = zip(starts, [*starts[1:], None], strict=True)
            self.rows.append({lines[0][a:b].strip(): lines[1][a:b].strip() for a, b in bounds})


def test_migrate_mode_moves_four_real_nodes_two_at_a_time_and_evicted_pods_run_again_within_their_budget(
    stack: tuple[Any, Any], tmp_path: Path
) -> None:
    nodes, api = stack
    binary = find_kubectl()
    if binary is None:
        pytest.skip("no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl")
    names = [n.name for n in nodes.nodes[:4]]
    eventually(
        lambda: all(_ready_on(api.get("nodes", n) or {}, "docker://") for n in names),
        60,
        "kubelets on Docker",
    )
    for name in names:
        api.patch("nodes", name, {"metadata": {"labels": {WEB_NODE_LABEL: "true"}}})
    api.seed(workload())
    web = eventually(lambda: _web_pods_running_on(api, "docker://"), 60, "the web pods Running on Docker")
    assert sorted(p["spec"]["nodeName"] for p in web) == sorted(names), "one web pod on each node"
    eventually(
        lambda: (
            sum(_running_on(p, "docker://") for p in _pods(api, "kube-system", "k8s-app", "kube-proxy"))
            == len(nodes.nodes)
        ),
        60,
        "a kube-proxy pod Running on each node",
    )
    since, before = api.resource_version, len(api.requests)
    columns = PrinterColumns(Kubectl(binary, api.kubeconfig, tmp_path / "kubectl-cache"), "four")
    columns.start()
    try:
        phase, status, operator = _migrate(nodes, api, tmp_path, "four", names)
    finally:
        columns.stop.set()
        columns.join(timeout=15)

    assert phase == Phase.SUCCEEDED, (status, operator.logs()[-4000:])
    for record in status["nodes"]:
        assert record["phase"] == NodePhase.SUCCEEDED
        verify = next(s for s in record["steps"] if s["id"] == "verify")
        assert "DaemonSet pods Running and Ready" in verify.get("message", ""), verify
    for name in names:
        node = api.get("nodes", name) or {}
        assert _ready_on(node, "containerd://"), node.get("status")
        assert not node["spec"].get("unschedulable")
        assert node["metadata"]["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
        assert keys.LOCK_ANNOTATION not in (node["metadata"].get("annotations") or {})
    during = list(api.requests)[before:]
    evictions = [r for r in during if r.resource == "pods" and r.subresource == "eviction"]
    evicted = {r.name for r in evictions if r.status == 201}
    assert {p["metadata"]["name"] for p in web} <= evicted, "every node's web pod was evicted"
    assert not [r for r in evictions if r.namespace == "kube-system"], "DaemonSet pods are not evicted"
    assert not [r for r in during if r.method == "DELETE" and r.resource == "pods"]
    again = eventually(
        lambda: _web_pods_running_on(api, "containerd://"), 60, "the web pods Running and Ready on containerd"
    )
    assert not {p["metadata"]["name"] for p in again} & evicted
    for pod in _pods(api, "kube-system", "k8s-app", "kube-proxy"):
        if pod["spec"]["nodeName"] in names:
            assert _running_on(pod, "containerd://"), pod
    lowest = min_healthy_after_ready(api, REPLICAS)
    assert lowest >= MIN_AVAILABLE, f"the web budget was violated: {lowest} of {REPLICAS} pods healthy"
    cordoned = max_cordoned(api, since)
    assert cordoned == 2, f"maxUnavailable 2, yet {cordoned} nodes cordoned at most at one moment"
    progress = [
        row
        for row in columns.rows
        if row.get("PHASE") == Phase.PROGRESSING
        and re.fullmatch(r"[0-3]/4", row.get("DONE", ""))
        and set(row.get("CURRENT", "").split(",")) & set(names)
    ]
    assert progress, f"kubectl get nm never showed a node in progress: {columns.rows[-5:]}"
    trips = [int(m) for m in re.findall(r"finished with (\d+) SSH round trips", operator.logs())]
    calls = len(operator_requests(during))
    refused = sum(1 for r in evictions if r.status == 429)
    print(
        f"\n4 nodes, maxUnavailable 2: SSH round trips per node {trips}, API calls per node "
        f"{calls / len(names):.0f} (operator + kopf), evictions {len(evicted)} (+{refused} refused by the "
        f"budget), fewest web pods healthy {lowest}/{REPLICAS}, most cordoned at once {cordoned}, Done seen "
        f"{sorted({r.get('DONE', '') for r in columns.rows})}"
    )


def test_sigkill_inside_each_changing_step_on_a_real_node_resumes_and_keeps_the_original_backup(
    stack: tuple[Any, Any], tmp_path: Path
) -> None:
    nodes, api = stack
    target = nodes.nodes[4]  # back on Docker after the rollback test
    original = target.view("/etc/containerd/config.toml").read_bytes()
    eventually(
        lambda: _ready_on(api.get("nodes", target.name) or {}, "docker://"), 60, "the kubelet on Docker"
    )
    operator = Operator(api.kubeconfig, tmp_path, {}, node_port="ssh")
    operator.start()
    api.seed(
        {
            "apiVersion": "shimshift.io/v1alpha1",
            "kind": "NodeMigration",
            "metadata": {"name": "crashy"},
            "spec": {
                "mode": "Migrate",
                "nodeNames": [target.name],
                "ssh": {
                    "user": "root",
                    "port": nodes.ssh_port,
                    "privateKeySecretRef": {"name": "ssh"},
                    "knownHostsSecretRef": {"name": "known-hosts"},
                },
            },
        }
    )

    def record() -> dict[str, Any]:
        status = (api.get("nodemigrations.shimshift.io", "crashy") or {}).get("status") or {}
        return next(iter(status.get("nodes") or ()), {})

    killed: list[str] = []
    try:
        for step in ("backup", "configure", "images", "switch", "verify"):

            def at_or_after(step: str = step) -> str | None:
                r = record()
                if r.get("phase") in ("Succeeded", "RolledBack", "Failed"):
                    return "end"
                current = r.get("step")
                return current if current in ORDER and ORDER.index(current) >= ORDER.index(step) else None

            reached = eventually(at_or_after, 120, f"step {step}", 0.05)
            if reached == "end":
                break
            operator.kill()
            killed.append(f"{reached}/{record().get('stepState')}")
            operator.start()
        eventually(
            lambda: record().get("phase") in ("Succeeded", "RolledBack", "Failed"), 200, "the end", 0.5
        )
    finally:
        operator.stop()

    print(f"\nSIGKILL points on a real node: {killed}")
    assert record()["phase"] == NodePhase.SUCCEEDED, (record(), operator.logs()[-3000:])
    assert len(killed) >= 3
    node = api.get("nodes", target.name) or {}
    assert _ready_on(node, "containerd://") and not node["spec"].get("unschedulable")
    backups = target.view("/var/lib/shimshift/crashy/backup")
    saved = [p.read_bytes() for p in backups.rglob("*") if p.is_file()]
    assert original in saved, (
        "the backup of config.toml is not the original: a step ran again after configure"
    )
