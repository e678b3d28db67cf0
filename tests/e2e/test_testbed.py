"""The whole product on the testbed: the operator process, the API emulator, and fake nodes with real
sshd, containerd 1.6 and dockerd 20.10 whose fake kubelets report to the emulator. Nodes move over SSH
with the real playbooks (`--node-port ssh`), and the kubelet itself reports containerd:// at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.nodes.seeding import daemonset_pod_manifests

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER
from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import Operator, emulator_for, eventually, secret

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(280)]

#: node1 and node2 migrate; node3 gets a containerd that cannot start its CRI plugin and rolls back.
SCRATCH_PROFILES = ["kubeadm-systemd", "kubespray", "kubeadm-cgroupfs"]
CRI_STATE_DIR = "/var/lib/containerd/io.containerd.grpc.v1.cri"
ORDER = [str(s) for s in STEP_ORDER]


@pytest.fixture(scope="module")
def stack(scratch_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    with emulator_for(scratch_cluster, tmp_path_factory.mktemp("stack")) as api:
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
    broken = nodes.nodes[2]
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


def test_migrate_mode_moves_real_testbed_nodes_to_containerd_over_ssh(
    stack: tuple[Any, Any], tmp_path: Path
) -> None:
    nodes, api = stack
    names = [n.name for n in nodes.nodes[:2]]
    daemonset_pods = [m for n in nodes.nodes[:2] for m in daemonset_pod_manifests(n)]
    api.seed(daemonset_pods)  # kube-proxy on each node: the verify waits until it runs on containerd
    before = len(api.requests)

    phase, status, operator = _migrate(nodes, api, tmp_path, "real", names)

    assert phase == Phase.SUCCEEDED, (status, operator.logs()[-4000:])
    for record in status["nodes"]:
        assert record["phase"] == NodePhase.SUCCEEDED
        verify = next(s for s in record["steps"] if s["id"] == "verify")
        assert "DaemonSet pods Running and Ready" in verify.get("message", ""), verify
    for manifest in daemonset_pods:
        pod = api.get("pods", manifest["metadata"]["name"], "kube-system") or {}
        containers = (pod.get("status") or {}).get("containerStatuses") or [{}]
        assert containers[0].get("ready") and containers[0]["containerID"].startswith("containerd://"), pod
    for name in names:
        node = api.get("nodes", name) or {}
        assert _ready_on(node, "containerd://"), node.get("status")
        assert not node["spec"].get("unschedulable")
        assert node["metadata"]["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
    trips = [int(m) for m in re.findall(r"finished with (\d+) SSH round trips", operator.logs())]
    calls = [r for r in list(api.requests)[before:] if r.resource]
    print(
        f"\nper migrated node: SSH round trips {trips}, API calls {len(calls) / len(names):.0f} (operator + kopf)"
    )


def test_sigkill_inside_each_changing_step_on_a_real_node_resumes_and_keeps_the_original_backup(
    stack: tuple[Any, Any], tmp_path: Path
) -> None:
    nodes, api = stack
    target = nodes.nodes[2]  # back on Docker after the rollback test
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
