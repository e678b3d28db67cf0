"""A node whose Docker runs with the nvidia runtime as its default moves to containerd with that runtime
as containerd's default, its default-ulimits in a base OCI spec and its containers' open-file limit kept in
containerd.service.d/limits.conf,
and the undo brings every file back byte for byte: on the testbed's real
dockerd 20.10, containerd 1.6 (schema 2) and containerd 2.3 (schema 4), sshd and fake systemctl.

The node's `nvidia-container-runtime` is a stand-in that runs runc (there is no GPU here); Docker is
restarted with the daemon.json that registers it, so the file is one a real dockerd starts with. After
the switch the node's own crictl shows what the kubelet's CRI sees: `defaultRuntimeName` nvidia with
that binary.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.remote import NodeSteps
from tests.integration.remote.test_migrate import (
    FORWARD,
    active,
    connect,
    facts_of,
    in_parallel,
    node_of,
    plan_for,
    snapshot,
    touched_paths,
    wait_runtime,
    wait_until,
)

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster, Node
    from testbed.nodes.fixtures import ApiEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

#: a cgroupfs node on Debian's containerd 1.6 and a systemd-driver one on containerd 2.3
SCRATCH_PROFILES = ["kubeadm-cgroupfs", "containerd-2.3"]
RUNTIME = "/usr/local/bin/nvidia-container-runtime"  # /usr/local/bin is the node's own
CALLS = "/var/log/nvidia-stand-in.log"
STAND_IN = (
    "#!/bin/sh\n# testbed stand-in for nvidia-container-runtime: no GPU, runc as it is\n"
    f'echo "$*" >>{CALLS}\nexec /usr/sbin/runc "$@"\n'
)
CRI = "unix:///run/containerd/containerd.sock"
LIMITS = "/etc/systemd/system/containerd.service.d/limits.conf"
BASE_SPEC = "/etc/containerd/cri-base.json"
#: a pod sandbox as the kubelet asks for one without a RuntimeClass (host network: no CNI needed)
POD = {
    "metadata": {"name": "gpu", "namespace": "default", "uid": "ss-gpu-1"},
    "log_directory": "/tmp/ss-gpu-pod",
    "linux": {"security_context": {"namespace_options": {"network": 2}}},
}


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    scratch_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    yield scratch_cluster


def gpu_node(node: Node) -> None:
    """The nvidia runtime on the node and Docker running with it as its default."""
    node.view(RUNTIME).write_text(STAND_IN)
    node.view(RUNTIME).chmod(0o755)
    daemon = json.loads(node.read("/etc/docker/daemon.json"))
    daemon["default-runtime"] = "nvidia"
    daemon["runtimes"] = {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}
    daemon["default-ulimits"] = {"nofile": {"Name": "nofile", "Soft": 4096, "Hard": 8192}}
    node.view("/etc/docker/daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")
    restarted = node.exec(["systemctl", "restart", "docker"], timeout=90)
    assert restarted.exit_status == 0, restarted.stderr
    info = node.exec(["docker", "info", "--format", "{{.DefaultRuntime}} {{json .Runtimes}}"])
    assert info.stdout.startswith("nvidia "), info.stdout + info.stderr
    # and an agent that set the running containerd's open files at run time (prlimit), which its unit
    # (infinity) does not say: what the containers started since have
    raised = node.exec(["sh", "-c", 'prlimit --pid "$(pidof -s containerd)" --nofile=20000:20000'])
    assert raised.exit_status == 0, raised.stderr


def facts_sandbox(facts: NodeFacts) -> str:
    infra = facts.kubelet.pod_infra_image
    assert infra is not None
    return infra.value


def ran_pod_sandbox(node: Node) -> None:
    """A CRI pod sandbox without a runtime handler runs, through the nvidia runtime's binary."""
    node.view("/tmp/ss-gpu-pod.json").write_text(json.dumps(POD))
    run = node.exec(["crictl", "--runtime-endpoint", CRI, "runp", "/tmp/ss-gpu-pod.json"], timeout=90)
    assert run.exit_status == 0, run.stderr
    sandbox = run.stdout.strip()
    try:
        state = node.exec(["crictl", "--runtime-endpoint", CRI, "inspectp", sandbox])
        assert json.loads(state.stdout)["status"]["state"] == "SANDBOX_READY", state.stdout
        created = [line for line in node.read(CALLS).splitlines() if " create " in f" {line} "]
        assert any(sandbox in line for line in created), node.read(CALLS)
    finally:
        node.exec(["crictl", "--runtime-endpoint", CRI, "stopp", sandbox], timeout=60)
        node.exec(["crictl", "--runtime-endpoint", CRI, "rmp", sandbox], timeout=60)


def reported(kube_core: CoreV1Api, name: str) -> None:
    """Wait for the node's kubelet to report a status at all (a fresh cluster's Nodes have none yet)."""

    def has_status() -> bool:
        status = kube_core.read_node(name).status
        return status is not None and bool(status.conditions) and status.node_info is not None

    wait_until(has_status, 60, f"node {name} to report its status")


def migrate_and_undo(cluster: Cluster, kube_core: CoreV1Api, profile: str) -> None:
    node = node_of(cluster, profile)
    reported(kube_core, node.name)
    wait_runtime(kube_core, node.name, "docker://")
    gpu_node(node)
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        facts = facts_of(steps, node)
        assert (facts.daemon_json or {}).get("default-runtime") == "nvidia"
        # what else the probe read on this real node: Docker's root on containerd's filesystem (the
        # node's /var/lib binds), the snapshotters containerd loads, its default OCI spec
        assert facts.docker_root == "/var/lib/docker" and facts.roots_share_filesystem is True
        assert facts.snapshotters.get("overlayfs") == "ok"
        assert (facts.containerd_default_spec or "").lstrip().startswith("{")
        plan = plan_for(facts, "m-gpu")
        (config,) = [f for f in plan.containerd_files if f.path == "/etc/containerd/config.toml"]
        assert b'default_runtime_name = "nvidia"' in config.content
        assert b'BinaryName = "nvidia-container-runtime"' in config.content
        before = snapshot(node, touched_paths(plan))
        assert LIMITS not in before or before[LIMITS] is None
        # the running containerd has 20000 open files, not the infinity its containerd.service gives:
        # the drop-in keeps the containers' limit
        running = facts.containerd_limits["LimitNOFILE"]
        assert running == "20000", facts.containerd_limits
        (limits,) = [f for f in plan.containerd_files if f.path == LIMITS]
        assert f"\nLimitNOFILE={running}\n".encode() in limits.content
        calls = len(node.systemctl_calls())
        for step in FORWARD:
            steps.run(step, plan)
            if step is StepId.CONFIGURE:  # the images step moves nothing here: the sandbox image by hand
                moved = node.exec(
                    ["sh", "-c", 'docker save "$0" | ctr -n k8s.io images import -', facts_sandbox(facts)]
                )
                assert moved.exit_status == 0, moved.stderr
        wait_runtime(kube_core, node.name, "containerd://")
        assert not active(node, "docker")
        assert node.view(LIMITS).read_bytes() == limits.content
        # Docker's default-ulimits: the base spec every CRI runtime names, built from this containerd's own
        base = json.loads(node.read(BASE_SPEC))
        assert base["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 8192, "soft": 4096}]
        argv = [c["argv"] for c in node.systemctl_calls()[calls:]]
        assert argv.index(["daemon-reload"]) < argv.index(["restart", "containerd"])
        info = node.exec(["crictl", "--runtime-endpoint", CRI, "info"])
        assert info.exit_status == 0, info.stderr
        cri = json.loads(info.stdout)["config"]["containerd"]
        assert cri["runtimes"]["nvidia"]["baseRuntimeSpec"] == BASE_SPEC
        assert cri["defaultRuntimeName"] == "nvidia"
        options = cri["runtimes"]["nvidia"]["options"]
        assert options["BinaryName"] == "nvidia-container-runtime"
        assert options["SystemdCgroup"] is (node.profile.cgroup_driver == "systemd")
        if node.profile.cgroup_driver == "cgroupfs":  # runc's systemd cgroup manager needs systemd
            ran_pod_sandbox(node)
        steps.rollback(plan)
    assert snapshot(node, touched_paths(plan)) == before
    assert active(node, "docker") and active(node, "kubelet")
    wait_runtime(kube_core, node.name, "docker://")
    info = node.exec(["docker", "info", "--format", "{{.DefaultRuntime}}"])
    assert info.stdout.strip() == "nvidia", "Docker is back with its own default runtime"
    assert not node.view(LIMITS).exists(), "the undo removes the limits drop-in"
    assert not node.view(BASE_SPEC).exists(), "and the base spec"


def test_a_node_on_dockers_nvidia_runtime_keeps_it_as_containerds_default_and_undo_is_byte_identical(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel({p: functools.partial(migrate_and_undo, cluster, kube_core, p) for p in SCRATCH_PROFILES})
