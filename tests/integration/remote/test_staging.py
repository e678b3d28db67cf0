"""Staging before the cordon, on the testbed's real daemons (sshd, containerd, dockerd 20.10 on that same
containerd, real runc, the model kubelet reporting to the API emulator): backup, configure (containerd's
CRI-enabled config installed and containerd restarted) and the real images step run while the node
serves, and Docker's running containers survive it: the same container IDs, the same PIDs, the same
start times in `docker ps` / `docker inspect` before and after, each PID still alive; the node stays
Ready on Docker and its pods stay Ready throughout (sampled while the steps run). The rollback of what
was staged (containerd's old config back, containerd restarted again) keeps them running too.

This is the safety argument of `spec.staging: BeforeCordon` (`shimshift.model.steporder`). Should
containerd's restart kill Docker's containers on some profile, this test fails for that profile.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest
from kubernetes.client.exceptions import ApiException
from testbed.nodes.seeding import daemonset_pod_manifests

from shimshift.model.spec import NodeMigrationSpec
from shimshift.remote import SshNodePort
from tests.integration.remote.test_migrate import (
    active,
    connect,
    in_parallel,
    node_of,
    node_runtime,
    wait_runtime,
    wait_until,
)
from tests.integration.remote.test_migrate import cluster as cluster  # the module's scratch cluster

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api, V1Pod
    from testbed.nodes import Cluster, Node

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(400)]

#: containerd 1.6 under both cgroup drivers and both kubelet layouts, and containerd 2.2. Docker runs
#: its containers on the cgroupfs profiles only: on the systemd driver runc needs a systemd, which the
#: testbed's nodes have not, so there the seeded containers are created but never started (their IDs
#: and states are still compared; the proof of "running containers survive" is on the cgroupfs ones).
SCRATCH_PROFILES = ["kubeadm-systemd", "kubeadm-cgroupfs", "kubespray", "cri-dockerd", "containerd-2.2"]
RUNS_CONTAINERS = {"kubeadm-cgroupfs", "containerd-2.2"}


@dataclass(frozen=True)
class Container:
    """A Docker container as `docker inspect` shows it."""

    status: str  # running, created, exited...
    pid: int
    started_at: str


def docker_containers(node: Node, *, runs_containers: bool) -> dict[str, Container]:
    """Every container of the node's Docker: ID -> state, PID and start time (`docker ps -a`, `inspect`).
    On a profile where Docker runs containers, at least two (a pod's sandbox and its app) must run."""
    listed = node.exec(["docker", "ps", "-a", "-q", "--no-trunc"])
    assert listed.exit_status == 0, listed.stderr
    ids = listed.stdout.split()
    assert ids, f"node {node.name}: Docker has no container to watch"
    fmt = "{{.Id}} {{.State.Status}} {{.State.Pid}} {{.State.StartedAt}}"
    shown = node.exec(["docker", "inspect", "--format", fmt, *ids])
    assert shown.exit_status == 0, shown.stderr
    out: dict[str, Container] = {}
    for line in shown.stdout.splitlines():
        ident, status, pid, started = line.split()
        out[ident] = Container(status, int(pid), started)
    running = [c for c in out.values() if c.status == "running"]
    if runs_containers:
        assert len(running) >= 2, f"node {node.name}: Docker runs {len(running)} container(s), not a pod"
    return out


def alive(node: Node, pid: int) -> bool:
    return node.exec(["test", "-d", f"/proc/{pid}"]).exit_status == 0


@dataclass
class Watch:
    """Samples the node and its pods while the staged steps run; every sample must be healthy."""

    kube_core: CoreV1Api
    node: str
    pods: list[str]
    samples: int = 0
    bad: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        runtime, ready = node_runtime(self.kube_core, self.node)
        if not runtime.startswith("docker://") or ready != "True":
            self.bad.append(f"node {self.node}: {runtime} Ready={ready}")
        for name in self.pods:
            phase, ready = pod_state(self.kube_core, name)
            if phase != "Running" or ready != "True":
                self.bad.append(f"pod {name}: {phase} Ready={ready}")
        self.samples += 1

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.sample()

    def during(self, action: Callable[[], Any]) -> Any:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            return action()
        finally:
            self.stop.set()
            thread.join(timeout=30)
            self.stop.clear()
            self.sample()  # and once more at the end


def pod_state(kube_core: CoreV1Api, name: str) -> tuple[str, str]:
    """The pod's phase and the status of its Ready condition ("" where the kubelet has not said)."""
    status = kube_core.read_namespaced_pod(name, "kube-system").status
    if status is None:
        return "", ""
    ready = next((c.status for c in status.conditions or [] if c.type == "Ready"), "")
    return status.phase or "", ready


def pods_ready(kube_core: CoreV1Api, node: Node) -> list[str]:
    names = []
    for manifest in daemonset_pod_manifests(node):
        try:
            kube_core.create_namespaced_pod("kube-system", cast("V1Pod", manifest))
        except ApiException as e:
            if e.status != 409:  # already there from an earlier test on this node
                raise
        names.append(manifest["metadata"]["name"])

    def ready() -> bool:
        return all(pod_state(kube_core, name) == ("Running", "True") for name in names)

    wait_until(ready, 60, f"the pods of {node.name} Ready on Docker")
    return names


def staging_keeps_docker_running(cluster: Cluster, kube_core: CoreV1Api, profile: str) -> None:
    node = node_of(cluster, profile)
    wait_runtime(kube_core, node.name, "docker://")
    watch = Watch(kube_core, node.name, pods_ready(kube_core, node))
    runs = profile in RUNS_CONTAINERS
    before = docker_containers(node, runs_containers=runs)
    restarts_before = [c for c in node.systemctl_calls() if c["argv"] == ["restart", "containerd"]]

    spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [node.name]})
    port = SshNodePort(
        "staging",
        spec,
        lambda _n: connect(cluster, node),
        wait_seconds=30,
        stop_grace_seconds=1,
        kubelet_version=lambda _n: "v" + node.profile.kubelet_version,
    )
    try:
        facts = port.facts(node.name)
        port.prepare(node.name, facts)
        assert facts.cri_enabled is False  # as docker-ce ships it

        def stage() -> Any:
            port.backup(node.name, facts)
            port.configure(node.name, facts)
            return port.images(node.name, facts)

        counts = watch.during(stage)
        restarts = [c for c in node.systemctl_calls() if c["argv"] == ["restart", "containerd"]]
        assert len(restarts) > len(restarts_before), f"{profile}: containerd was not restarted"
        assert port.facts(node.name).cri_enabled is True, f"{profile}: the CRI plugin is not on"
        assert counts.transferred + counts.pulled > 0, (profile, counts)
        staged = docker_containers(node, runs_containers=runs)
        assert staged == before, f"{profile}: Docker's containers changed across containerd's restart"
        assert all(alive(node, c.pid) for c in staged.values() if c.status == "running"), profile
        assert active(node, "docker") and active(node, "kubelet")

        watch.during(lambda: port.undo(node.name, facts))  # a failure after staging: the rollback
    finally:
        port.close()
    restored = [c for c in node.systemctl_calls() if c["argv"] == ["restart", "containerd"]]
    assert len(restored) > len(restarts), f"{profile}: the undo did not restart containerd"
    after = docker_containers(node, runs_containers=runs)
    assert after == before, f"{profile}: Docker's containers changed across the rollback's restart"
    assert all(alive(node, c.pid) for c in after.values() if c.status == "running"), profile
    assert watch.samples >= 4 and watch.bad == [], (profile, watch.samples, watch.bad[:5])
    running = sum(c.status == "running" for c in before.values())
    print(
        f"\n{profile}: {len(before)} Docker container(s), {running} running, kept their IDs, states and "
        f"PIDs across 2 containerd restarts; {watch.samples} samples, node and pods Ready in each"
    )


def test_docker_containers_and_pods_survive_staging_and_its_rollback_on_every_profile(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel(
        {p: functools.partial(staging_keeps_docker_running, cluster, kube_core, p) for p in SCRATCH_PROFILES}
    )


def test_the_comparison_sees_a_container_that_was_restarted(cluster: Cluster) -> None:
    """The check above can fail: a container Docker restarts (as a killed shim would leave it, once
    restarted) gets a new PID and start time, and the snapshots differ."""
    node = node_of(cluster, "kubeadm-cgroupfs")
    before = docker_containers(node, runs_containers=True)
    victim = next(i for i, c in before.items() if c.status == "running")
    assert node.exec(["docker", "restart", "-t", "1", victim]).exit_status == 0
    after = docker_containers(node, runs_containers=True)
    assert after != before
    assert after[victim].pid != before[victim].pid and after[victim].started_at != before[victim].started_at
