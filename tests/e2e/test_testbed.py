"""The whole product on the testbed: the operator process, the API emulator, and fake nodes with real
sshd, containerd 1.6 and dockerd 20.10 whose fake kubelets report to the emulator. Nodes move over SSH
with the real playbooks (the shipped `shimshift run`), and the kubelet itself reports containerd:// at the end.

The emulator runs its scheduler and workload and PDB controllers but starts no pod itself (as the
demo's does): the fake kubelets report their pods Running once their runtime can run them, so a drain
meets a real budget and the evicted pods come back only where the runtime works.

The crash-resume points on a real node: one operator run per point on node5, killed once (SIGKILL) at
an exact point by an emulator trigger on the status write recording a step (the end of each changing
step whose Done record never lands, the start of the switch, the end of configure, the rollback) or
inside a long step when the node's fake systemctl is asked to restart containerd or stop the kubelet;
restarted, it must finish the node with every step recorded once, the original files in the backup,
and no node change made twice: the fake systemctl's calls and containerd's image events are counted
on the node (the same as a clean run).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord
from testbed.kubeapi.kubectl import Kubectl, find_kubectl
from testbed.nodes import Cluster
from testbed.nodes.docker_api import DockerClient
from testbed.nodes.images import kube_proxy_image

from shimshift.model import keys
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import MigrationStatus, NodePhase, NodeRecord, Phase, StepState
from shimshift.remote import NodeConnection, SshNodePort, SshOptions, SshTarget
from shimshift.steps.switch import staged_files
from tests.e2e.conftest import Operator, emulator_for, eventually, raw_status, secret, ssh_operator
from tests.e2e.history import is_ready, max_cordoned, min_healthy_after_ready, operator_requests

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(280)]

#: node1-node4 migrate together (both cgroup drivers, both kubelet layouts, all registry setups); node5
#: first gets a containerd that cannot start its CRI plugin and rolls back, then is migrated once per
#: SIGKILL point, and put back on Docker in between. Not cri-dockerd: its kubelet 1.27 runs another kube-proxy image than the DaemonSet's.
SCRATCH_PROFILES = ["kubeadm-systemd", "kubeadm-cgroupfs", "kubespray", "kubeadm-systemd", "kubeadm-cgroupfs"]
CRI_STATE_DIR = "/var/lib/containerd/io.containerd.grpc.v1.cri"
ORDER = [str(s) for s in STEP_ORDER]
APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in every node's Docker (testbed seeding)
WEB_NODE_LABEL = "shimshift.test/web"
REPLICAS, MIN_AVAILABLE = 4, 3  # the budget lets one web pod be down at a time


@pytest.fixture(scope="module")
def stack(
    scratch_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, KubeApi]]:
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


def _seed_ssh_secrets(nodes: Any, api: Any) -> None:
    if api.get("secrets", "ssh", "default") is None:
        api.seed(
            [
                secret("ssh", "ssh-privatekey", nodes.private_key.read_text()),
                secret("known-hosts", "known_hosts", nodes.known_hosts.read_text()),
            ]
        )


def ssh_migration(nodes: Any, name: str, **spec: Any) -> dict[str, Any]:
    """A NodeMigration `name` with `spec`, reaching the testbed's nodes as root with the seeded Secrets."""
    ssh = {
        "user": "root",
        "port": nodes.ssh_port,
        "privateKeySecretRef": {"name": "ssh"},
        "knownHostsSecretRef": {"name": "known-hosts"},
    }
    return {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": name},
        "spec": {**spec, "ssh": ssh},
    }


def _migrate(
    nodes: Any, api: Any, tmp_path: Path, name: str, node_names: list[str], max_unavailable: int = 2
) -> tuple[str, Any, Operator]:
    """Run the operator on a NodeMigration of `node_names` until it settles; (phase, status, operator)."""
    eventually(
        lambda: all(_ready_on(api.get("nodes", n) or {}, "docker://") for n in node_names),
        60,
        "kubelets on Docker",
    )
    _seed_ssh_secrets(nodes, api)
    operator = ssh_operator(api, tmp_path)
    operator.start()
    try:
        api.seed(
            ssh_migration(
                nodes, name, mode="Migrate", nodeNames=node_names, rollout={"maxUnavailable": max_unavailable}
            )
        )

        def finished() -> Any:
            obj = api.get("nodemigrations.shimshift.io", name) or {}
            phase = (obj.get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(finished, 200, "the migration to settle", 0.5)
    finally:
        operator.stop()
    return phase, raw_status(api, name), operator


def test_a_node_whose_containerd_cannot_start_cri_rolls_back_to_docker_and_the_rollout_pauses(
    stack: tuple[Cluster, KubeApi], tmp_path: Path
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


def _pods(api: KubeApi, namespace: str, label: str, value: str) -> list[dict[str, Any]]:
    return api.list("pods", namespace=namespace, label_selector=f"{label}={value}")


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
    stack: tuple[Cluster, KubeApi], tmp_path: Path
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
    # every node says what it cost, and no node more than 10 from facts to finish (docs/architecture.md:
    # facts, backup, configure, images (3: read, move, name), re-check (1 with nothing new), switch,
    # verify)
    assert len(trips) == len(names), f"a node did not report its SSH round trips: {trips}"
    assert max(trips) <= 10, f"SSH round trips per node {trips}"
    calls = len(operator_requests(during))
    refused = sum(1 for r in evictions if r.status == 429)
    print(
        f"\n4 nodes, maxUnavailable 2: SSH round trips per node {trips}, API calls per node "
        f"{calls / len(names):.0f} (operator + kopf), evictions {len(evicted)} (+{refused} refused by the "
        f"budget), fewest web pods healthy {lowest}/{REPLICAS}, most cordoned at once {cordoned}, Done seen "
        f"{sorted({r.get('DONE', '') for r in columns.rows})}"
    )


# ---- SIGKILL at exact points of node5's migration, one operator run per point ------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where the operator is SIGKILLed: at the status write recording node5's `step` in `state`, after
    it committed, or (`before`) instead of serving it, so the step's work is done and its record never
    lands; or (`inside`) inside a long step, as soon as the node's fake systemctl was asked
    `inside` = (verb, unit) by the step's script, which then goes on without the operator."""

    id: str
    step: StepId | None = None
    state: StepState | None = None
    before: bool = False
    inside: tuple[str, str] | None = None
    broken_cri: bool = False  # containerd cannot start its CRI plugin: configure fails, node5 rolls back


KILL_POINTS = [
    *(
        KillPoint(f"{step}-finished-unrecorded", step, StepState.DONE, before=True)
        for step in STEP_ORDER[STEP_ORDER.index(StepId.BACKUP) :]  # from the first step that changes the node
    ),
    KillPoint("switch-started", StepId.SWITCH, StepState.STARTED),
    KillPoint("configure-done", StepId.CONFIGURE, StepState.DONE),
    # Inside a long step: the node's script goes on without the operator (no pty, so sshd does not
    # hang it up); the restarted operator's re-run of the step waits for it on the node-side lock of
    # the state directory, finds the work done and changes nothing (its log says "unchanged").
    # containerd restarted, its CRI plugin not yet awaited (containerd_apply.sh):
    KillPoint("inside-configure", inside=("restart", "containerd")),
    # the kubelet stopped, Docker not yet (switch.sh):
    KillPoint("inside-switch", inside=("stop", "kubelet")),
    KillPoint("rollback-started", StepId.ROLLBACK, StepState.STARTED, broken_cri=True),
    # the undo has run, its Done record never lands: the restarted operator undoes again
    KillPoint("rollback-finished-unrecorded", StepId.ROLLBACK, StepState.DONE, before=True, broken_cri=True),
]
#: docker: Stop, which changes nothing at the finish: Docker stays enabled and the backups stay until
#: spec.commit (not set here), so every point ends in the rollback window
KILL_SPEC: dict[str, Any] = {"mode": "Migrate", "docker": "Stop"}
SYSTEMCTL_CHANGES = ("start", "stop", "restart", "enable", "disable")
IMAGE_EVENT = re.compile(rb"msg=\"Image(Create|Update|Delete) event &Image\w+\{Name:([^,]+),")
#: What the fake systemctl is asked to change in one clean run of node5 (docker: Stop, not committed),
#: from the playbooks: configure restarts containerd once (containerd_apply.sh; a re-run finds the
#: applied config's sha256 and restarts nothing); switch stops the kubelet and Docker and starts the
#: kubelet (switch.sh; a re-run on a switched node does nothing); the finish changes nothing on the
#: node (Docker is disabled only by the commit step, once the rollback window is committed).
CLEAN_RUN_SYSTEMCTL = Counter(
    {
        ("restart", "containerd"): 1,
        ("stop", "kubelet"): 1,
        ("stop", "docker"): 1,
        ("start", "kubelet"): 1,
    }
)


def _ssh_port(
    nodes: Any, node: Any, spec: NodeMigrationSpec, kubelet_version: str, migration: str
) -> SshNodePort:
    """The node steps of `migration` on `node` over SSH, as the operator's (same spec, same playbooks)."""
    options = SshOptions(
        known_hosts=nodes.known_hosts.read_text(),
        private_key=nodes.private_key.read_text(),
        command_timeout=120.0,
    )
    target = SshTarget(node.name, node.ssh_host, node.ssh_port)
    return SshNodePort(
        migration,
        spec,
        lambda _n: NodeConnection(target, options),
        wait_seconds=30,
        stop_grace_seconds=1,
        kubelet_version=lambda _n: kubelet_version,
    )


@dataclass(frozen=True)
class Node5:
    """node5 on Docker before the first point: its facts (each undo between points plans from them, as
    the operator did), the paths the steps touch and their bytes, modes and owners then."""

    node: Any
    spec: NodeMigrationSpec
    kubelet_version: str
    facts: NodeFacts
    backed_up: tuple[str, ...]  # what the backup step saves: containerd's files, the kubelet's
    paths: tuple[str, ...]  # those and the staged kubelet files
    files: dict[str, Any]

    def port(self, nodes: Any, migration: str) -> SshNodePort:
        return _ssh_port(nodes, self.node, self.spec, self.kubelet_version, migration)

    def snapshot(self) -> dict[str, Any]:
        return _snapshot(self.node, self.paths)

    def planned_backup(self, nodes: Any) -> dict[str, Any]:
        """What the backup step will save from node5 as it is now, from a fresh probe: its plan depends
        on the running containerd (its parent and limits, which an earlier point's undo changes), so a
        plan made when the module started can name a file this run does not back up."""
        port = self.port(nodes, "probe")
        try:
            plan = port.plan(self.node.name, port.facts(self.node.name))
        finally:
            port.close()
        return _snapshot(self.node, (*plan.containerd_paths, *plan.kubelet_paths))

    def backup(self, migration: str) -> dict[str, bytes | None]:
        """What the backup step saved under /var/lib/shimshift/<migration>/backup: {path: bytes, or
        None for a path recorded as absent}."""
        saved: dict[str, bytes | None] = {}
        for entry in sorted(self.node.view(f"/var/lib/shimshift/{migration}/backup").glob("*/entries/*")):
            absent = (entry / "absent").exists()
            saved[(entry / "path").read_text()] = None if absent else (entry / "data").read_bytes()
        return saved


def _snapshot(node: Any, paths: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        view = node.view(path)
        if view.exists():
            st = view.stat()
            out[path] = (view.read_bytes(), st.st_mode, st.st_uid, st.st_gid)
        else:
            out[path] = None
    return out


@pytest.fixture(scope="module")
def node5(stack: tuple[Cluster, KubeApi]) -> Node5:
    nodes, api = stack
    target = nodes.nodes[4]

    def on_docker() -> dict[str, Any] | None:
        node = api.get("nodes", target.name) or {}
        return node if _ready_on(node, "docker://") else None

    node = eventually(on_docker, 60, "node5 on Docker")
    spec = NodeMigrationSpec.from_raw({**KILL_SPEC, "nodeNames": [target.name]})
    version = str(node["status"]["nodeInfo"]["kubeletVersion"])
    port = _ssh_port(nodes, target, spec, version, "probe")
    try:
        facts = port.facts(target.name)
        plan = port.plan(target.name, facts)
    finally:
        port.close()
    backed_up = (*plan.containerd_paths, *plan.kubelet_paths)
    paths = (*backed_up, *(f.path for f in staged_files(plan)))
    return Node5(target, spec, version, facts, backed_up, paths, _snapshot(target, paths))


def _status_records(rec: RequestRecord, migration: str, node: str) -> NodeRecord | None:
    """The record of `node` a status write of its NodeMigrationNode carries (each write holds it whole)."""
    if (
        rec.resource != "nodemigrationnodes"
        or rec.subresource != "status"
        or rec.name != child_name(migration, node)
        or not isinstance(rec.body, dict)
        or not (rec.body.get("status") or {}).get("phase")
    ):
        return None
    return record_of({"spec": {"node": node}, "status": rec.body["status"]})


def _tagged_image_bytes(node: Any) -> int:
    """The sum of Docker's sizes of the node's tagged images, from Docker's API."""
    listed = DockerClient(node.docker_socket).images(all_images=False)
    return sum(
        int(i.get("Size") or 0) for i in listed if any(t != "<none>:<none>" for t in i.get("RepoTags") or ())
    )


def _image_events(node: Any, since: int) -> Counter[tuple[str, str]]:
    """containerd's CRI plugin logs every image create, update and delete in k8s.io (its event monitor):
    (event, name) counts in its log since byte `since`."""
    log = node.view("/var/log/containerd.log").read_bytes()[since:]
    return Counter((kind.decode(), name.decode()) for kind, name in IMAGE_EVENT.findall(log))


def _systemctl_changes(node: Any, since: int) -> Counter[tuple[str, str]]:
    calls = [c["argv"] for c in node.systemctl_calls()[since:]]
    return Counter((a[0], a[1]) for a in calls if len(a) >= 2 and a[0] in SYSTEMCTL_CHANGES)


def _back_to_docker(nodes: Any, api: Any, n5: Node5, migration: str) -> None:
    """node5 back as it was: the node's undo (files, containerd, kubelet, Docker; the images the
    migration added), its kubelet Ready on Docker, the completion label off, its files byte-identical.
    (The seeded kubelet-named containers Docker ran at first stay stopped: only the first point's switch
    waits for them to stop.)"""
    port = n5.port(nodes, migration)
    try:
        port.undo(n5.node.name, n5.facts)  # the images the migration added go too
    finally:
        port.close()
    eventually(
        lambda: _ready_on(api.get("nodes", n5.node.name) or {}, "docker://"), 60, "node5 Ready on Docker"
    )
    api.patch("nodes", n5.node.name, {"metadata": {"labels": {keys.RUNTIME_LABEL: None}}})
    assert n5.snapshot() == n5.files, "node5's files are not back byte-identical"


def test_the_real_node_kill_points_cover_the_end_of_every_changing_step_and_a_rollback() -> None:
    ids = {p.id for p in KILL_POINTS}
    for step in ("backup", "configure", "images", "switch", "verify", "finish"):
        assert f"{step}-finished-unrecorded" in ids
    assert {"inside-configure", "inside-switch", "rollback-started", "rollback-finished-unrecorded"} <= ids
    print(f"\nSIGKILL points on node5, one operator run each: {len(KILL_POINTS)}")


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.id)
def test_a_sigkill_at_this_point_of_a_real_node_resumes_to_the_end_with_nothing_done_twice(
    point: KillPoint, stack: tuple[Cluster, KubeApi], node5: Node5, tmp_path: Path
) -> None:
    nodes, api = stack
    target = node5.node
    name = f"kill-{point.id}"
    started = time.monotonic()
    eventually(lambda: _ready_on(api.get("nodes", target.name) or {}, "docker://"), 60, "node5 on Docker")
    assert node5.snapshot() == node5.files, "node5 does not start from its original files"
    originals = node5.planned_backup(nodes)  # before calls_before: the probe calls no systemctl change
    calls_before = len(target.systemctl_calls())
    log_before = target.view("/var/log/containerd.log").stat().st_size
    image_bytes = _tagged_image_bytes(target)  # before the run: Docker stops at its end
    if point.broken_cri:
        assert (
            target.exec(["sh", "-c", f"rm -rf {CRI_STATE_DIR} && echo broken > {CRI_STATE_DIR}"]).exit_status
            == 0
        )
    _seed_ssh_secrets(nodes, api)
    operator = Operator(api.kubeconfig, tmp_path, {}, ssh=True)

    def kill() -> None:
        assert operator.proc is not None
        os.kill(operator.proc.pid, signal.SIGKILL)  # from a trigger: before the answer leaves the emulator

    def at_point(rec: RequestRecord) -> bool:
        record = _status_records(rec, name, target.name)
        # the first write holding it so (a Done is written with the next step's Started)
        return record is not None and point.step is not None and record.state_of(point.step) == point.state

    trigger = (
        api.faults.add_trigger(at_point, lambda _rec: kill(), before=point.before) if point.step else None
    )
    operator.start()
    try:
        api.seed(ssh_migration(nodes, name, **KILL_SPEC, nodeNames=[target.name]))
        if trigger is not None:
            eventually(lambda: trigger.fired is not None, 120, f"the operator to reach {point.id}", 0.02)
        else:
            inside = point.inside
            assert inside is not None, f"{point.id}: a kill point without a step names a systemctl call"
            eventually(
                lambda: _systemctl_changes(target, calls_before)[inside] > 0, 120, f"{inside} on node5", 0.01
            )
            kill()
        assert operator.proc is not None
        assert operator.proc.wait(timeout=10) == -signal.SIGKILL
        killed_at = time.monotonic() - started
        operator.start()

        def settled() -> Any:
            status = raw_status(api, name)
            return status if status.get("phase") in ("Succeeded", "Failed", "Paused") else None

        raw = eventually(settled, 200, "the migration to settle", 0.25)
    finally:
        operator.stop()
        if point.broken_cri:
            target.exec(["rm", "-f", CRI_STATE_DIR])
    ended = time.monotonic() - started
    systemctl = _systemctl_changes(target, calls_before)
    images = _image_events(target, log_before)
    try:
        assert operator.starts == 2, "one kill, one restart"
        (record,) = raw["nodes"]
        assert raw["summary"] == MigrationStatus.from_storage(raw).summary(), raw["summary"]
        assert raw["summary"]["inProgress"] == 0 and raw["currentNodes"] == "", raw
        node = api.get("nodes", target.name) or {}
        assert not node["spec"].get("unschedulable"), ("node5 left cordoned", raw, operator.logs()[-6000:])
        annotations = node["metadata"].get("annotations") or {}
        assert keys.LOCK_ANNOTATION not in annotations and keys.CORDONED_BY_ANNOTATION not in annotations
        if point.broken_cri:
            _assert_rolled_back(api, raw, record, node, node5, systemctl)
        else:
            _assert_migrated(raw, record, node, node5, originals, name, systemctl, images, operator)
            # the status view's bar: the node's record says it moved all its bytes to move, Docker's
            # sizes of its tagged images (the images step moves them all), also where the step resumed
            moved = record.get("images") or {}
            assert moved.get("bytesMoved") == moved.get("bytesToMove") == image_bytes > 0, (
                moved,
                image_bytes,
            )
    finally:
        _back_to_docker(nodes, api, node5, name)
    print(
        f"\n{point.id}: killed at {killed_at:.1f}s, {record['phase']} at {ended:.1f}s, back on Docker at "
        f"{time.monotonic() - started:.1f}s; systemctl changes {sum(systemctl.values())}, image events "
        f"{sum(images.values())}, images {record.get('images')}"
    )


#: the image counts of the first migrated point of the module (whichever it is), for the others to match
IMAGE_COUNTS: dict[str, dict[str, int]] = {}


def _assert_migrated(
    raw: dict[str, Any],
    record: dict[str, Any],
    node: dict[str, Any],
    n5: Node5,
    originals: dict[str, Any],
    name: str,
    systemctl: Counter[tuple[str, str]],
    images: Counter[tuple[str, str]],
    operator: Operator,
) -> None:
    assert raw["phase"] == Phase.SUCCEEDED, (raw, operator.logs()[-4000:])
    assert raw["summary"]["progress"] == "1/1", raw["summary"]
    assert record["phase"] == NodePhase.SUCCEEDED, record
    assert [s["id"] for s in record["steps"]] == ORDER, record["steps"]
    assert all(s["state"] == StepState.DONE for s in record["steps"]), record["steps"]
    assert _ready_on(node, "containerd://"), node.get("status")
    assert node["metadata"]["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
    # a re-run of backup after later steps changed the files would have saved the changed ones
    saved = n5.backup(name)
    assert set(saved) == set(originals), (sorted(saved), sorted(originals))
    assert saved == {p: (originals[p][0] if originals[p] else None) for p in saved}, (
        "the backup does not hold node5's original files"
    )
    # the change steps that re-ran after the kill found their work done and changed nothing again
    assert systemctl == CLEAN_RUN_SYSTEMCTL, sorted(systemctl.items())
    # the images step imported each image once: every name containerd got was created once and updated
    # at most once (the CRI plugin labels it managed); importing an image that is already there again
    # (`docker save | ctr images import`) logs one more ImageUpdate for its name (checked by hand), and a
    # re-run of the step skips images already in containerd by ID and logs nothing
    created = {n for (kind, n) in images if kind == "Create"}
    assert created and all(images[("Create", n)] == 1 for n in created), sorted(images.items())
    assert all(images[("Update", n)] <= 1 for n in created), sorted(images.items())
    # and the status counts what this migration moved the same at every point, also where the images
    # step's end was never recorded and its re-run found the images there (moved by the earlier run)
    counts = {k: (record.get("images") or {}).get(k, 0) for k in ("transferred", "pulled", "skipped")}
    first = IMAGE_COUNTS.setdefault("first migrated point", counts)
    assert counts == first and counts["transferred"] + counts["pulled"] > 0, (counts, first)


def _assert_rolled_back(
    api: Any,
    raw: dict[str, Any],
    record: dict[str, Any],
    node: dict[str, Any],
    n5: Node5,
    systemctl: Counter[tuple[str, str]],
) -> None:
    assert raw["phase"] == Phase.PAUSED, raw
    assert raw["summary"]["progress"] == "0/1", raw["summary"]
    assert record["phase"] == NodePhase.ROLLED_BACK, record
    assert record["lastError"]["step"] == "configure", record["lastError"]
    # each step recorded once: up to the configure that failed, then the rollback, Done
    assert [s["id"] for s in record["steps"]] == [*ORDER[: ORDER.index("configure") + 1], "rollback"]
    assert record["steps"][-1]["state"] == StepState.DONE, record["steps"]
    assert keys.RUNTIME_LABEL not in node["metadata"].get("labels", {})
    eventually(lambda: _ready_on(api.get("nodes", n5.node.name) or {}, "docker://"), 60, "node5 on Docker")
    assert n5.snapshot() == n5.files, "the rollback did not restore node5's files"
    # configure restarted containerd with the new config, the undo restarted it with the old one: once
    # each; an undo run again (rollback-finished-unrecorded) finds the files restored and restarts nothing
    assert systemctl == Counter({("restart", "containerd"): 2}), sorted(systemctl.items())
