"""The operator SIGKILLed in the middle of a real kubelet's migration, and resumed to the end: the
kubeadm cgroupfs node runs the real kubelet 1.23.17 (in-tree dockershim), registered with the real
1.24.17 control plane, and `shimshift run` (over SSH) is killed

- inside the switch: as soon as the node's switch script has stopped the kubelet (the script goes on
  without the operator; the restarted operator's re-run waits for it on the node-side lock and finds
  the work done);
- once the verify step is recorded Started (the kubelet restarted on containerd; the restarted
  operator's verify starts over and runs its canary).

- once the rollback step is recorded Started, after a canary the kubelet cannot pull (the restarted
  operator's rollback starts over).

In the first two the restarted operator finishes the node: the real kubelet Ready on `containerd://`, its
pods recreated as containerd containers, the node uncordoned and unlocked, and the kubelet stopped and
started once only (nothing switched twice). Then an undo on request (`spec.undo`) returns the real
kubelet to dockershim, Ready on `docker://`, for the next point. In the third it rolls the node back to
dockershim, Ready on `docker://`, uncordoned and unlocked, its pods Docker containers again.

Needs the built kubelet and control plane (`scripts/build-components`); without them the module skips,
except under CI, where it fails naming what to build.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import ControlPlane
from testbed.controlplane.fixtures import real_kubelet_stack
from testbed.nodes import Cluster
from testbed.nodes.node import Node
from testbed.nodes.realkubelet import pod_containers_in_containerd

from shimshift.model import keys
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.status import NodePhase
from shimshift.resources import load_crd, load_node_crd
from tests.e2e.conftest import Operator, eventually, secret
from tests.e2e.test_real_kubelet import (
    APP_IMAGE,
    PROFILE,
    STATIC_POD,
    pods_running_on,
    ready_runtime,
    ssh_migration,
    workloads,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(900)]

SYSTEMCTL_CHANGES = ("start", "stop", "restart")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, real_kubelet_host: None
) -> Iterator[tuple[ControlPlane, Cluster, RealKubeApi]]:
    with real_kubelet_stack(tmp_path_factory, "e2ecrash", [PROFILE]) as (plane, cluster):
        api = RealKubeApi(plane.admin_kubeconfig)
        node = cluster.nodes[0]
        eventually(
            lambda: ready_runtime(api, node.name).startswith("docker://"), 90, "the kubelet Ready on Docker"
        )
        node.dir.in_node("/etc/kubernetes/manifests/probe.yaml").write_text(STATIC_POD)
        api.seed(workloads(node.name))
        eventually(lambda: pods_running_on(api, "docker://"), 120, "the three pods Running on Docker")
        api.seed([load_crd(), load_node_crd()])
        api.seed(
            [
                secret("ssh", "ssh-privatekey", cluster.private_key.read_text()),
                secret("known-hosts", "known_hosts", cluster.known_hosts.read_text()),
            ]
        )
        yield plane, cluster, api


def systemctl_changes(node: Node, since: int) -> Counter[tuple[str, str]]:
    calls = [c["argv"] for c in node.systemctl_calls()[since:]]
    return Counter((a[0], a[1]) for a in calls if len(a) >= 2 and a[0] in SYSTEMCTL_CHANGES)


def step_started(api: RealKubeApi, record: str, step: str) -> Callable[[Node, int], bool]:
    def reached(_node: Node, _since: int) -> bool:
        child = api.get("nodemigrationnodes.shimshift.io", record)
        if child is None:
            return False
        got = record_of(child)
        return str(got.step) == step and str(got.step_state) == "Started"

    return reached


def inside_switch(node: Node, since: int) -> bool:
    return systemctl_changes(node, since)[("stop", "kubelet")] > 0


@pytest.mark.parametrize("point", ["inside-switch", "verify-started"])
def test_a_sigkill_during_a_real_kubelets_migration_resumes_to_containerd_with_nothing_switched_twice(
    point: str, stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    name = f"crash-{point}"
    eventually(lambda: ready_runtime(api, node.name).startswith("docker://"), 120, "the kubelet on Docker")
    before = eventually(lambda: pods_running_on(api, "docker://"), 180, "the three pods Running on Docker")
    calls_before = len(node.systemctl_calls())
    reached = (
        inside_switch
        if point == "inside-switch"
        else step_started(api, child_name(name, node.name), "verify")
    )
    operator = Operator(api.kubeconfig, tmp_path, {}, ssh=True)
    operator.start()
    began = time.monotonic()
    try:
        api.seed([ssh_migration(cluster, name, [node.name])])
        eventually(lambda: reached(node, calls_before), 200, f"the operator to reach {point}", 0.02)
        assert operator.proc is not None
        os.kill(operator.proc.pid, signal.SIGKILL)
        assert operator.proc.wait(timeout=10) == -signal.SIGKILL
        killed_at = time.monotonic() - began
        operator.start()

        def settled() -> str | None:
            phase = ((api.get("nodemigrations.shimshift.io", name) or {}).get("status") or {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 400, "the migration to settle", 0.5)
        took = time.monotonic() - began
        record = record_of(api.must_get("nodemigrationnodes.shimshift.io", child_name(name, node.name)))
        assert phase == "Succeeded", (record, operator.logs()[-4000:])
        assert record.phase == NodePhase.SUCCEEDED and record.last_error is None, record
        assert ready_runtime(api, node.name) == "containerd://1.6.20"
        obj = api.must_get("nodes", node.name)
        assert not obj["spec"].get("unschedulable")
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        after = eventually(
            lambda: pods_running_on(api, "containerd://"), 180, "the three pods Running on containerd"
        )
        in_containerd = pod_containers_in_containerd(node)
        assert in_containerd[f"default/{after['web']['metadata']['name']}/web"] == APP_IMAGE
        assert in_containerd[f"kube-system/{after['proxy']['metadata']['name']}/proxy"] == APP_IMAGE
        assert after["proxy"]["metadata"]["uid"] == before["proxy"]["metadata"]["uid"]
        changes = systemctl_changes(node, calls_before)
        # the switch ran once, whoever finished it: the kubelet stopped once and started once
        assert changes[("stop", "kubelet")] == 1 and changes[("start", "kubelet")] == 1, changes
        assert changes[("restart", "containerd")] <= 1, changes
        verify = next(s for s in record.steps if s.id == "verify")
        assert f"image {APP_IMAGE}" in verify.message, record
        print(
            f"{point}: killed at {killed_at:.1f}s, resumed and Succeeded at {took:.1f}s; "
            f"systemctl changes {dict(changes)}; verify: {verify.message[:200]}"
        )

        # back to Docker for the next point: an undo on request, on the real kubelet
        api.patch("nodemigrations.shimshift.io", name, {"spec": {"undo": [node.name]}})

        def undone() -> bool:
            child = api.get("nodemigrationnodes.shimshift.io", child_name(name, node.name))
            return child is not None and record_of(child).phase == NodePhase.ROLLED_BACK

        eventually(undone, 300, "the undo on request", 0.5)
        eventually(
            lambda: ready_runtime(api, node.name).startswith("docker://"), 120, "the kubelet back on Docker"
        )
        eventually(lambda: pods_running_on(api, "docker://"), 180, "the three pods Running on Docker again")
        print(f"{point}: undone to Docker at {time.monotonic() - began:.1f}s")
    finally:
        try:
            api.delete("nodemigrations.shimshift.io", name)
            eventually(lambda: api.get("nodemigrations.shimshift.io", name) is None, 60, f"{name} deleted")
        finally:
            operator.stop()


def test_a_sigkill_during_the_rollback_of_a_real_kubelet_resumes_it_to_dockershim(
    stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    name = "crash-rollback-started"
    eventually(lambda: ready_runtime(api, node.name).startswith("docker://"), 120, "the kubelet on Docker")
    before = eventually(lambda: pods_running_on(api, "docker://"), 180, "the three pods Running on Docker")
    reached = step_started(api, child_name(name, node.name), "rollback")
    manifest = ssh_migration(cluster, name, [node.name])
    manifest["spec"]["verify"] = {
        "canary": {"image": "registry.invalid/tools/busybox:1.36", "timeout": "90s"}
    }
    operator = Operator(api.kubeconfig, tmp_path, {}, ssh=True)
    operator.start()
    began = time.monotonic()
    try:
        api.seed([manifest])
        eventually(lambda: reached(node, 0), 300, "the operator to start the rollback", 0.02)
        assert operator.proc is not None
        os.kill(operator.proc.pid, signal.SIGKILL)
        assert operator.proc.wait(timeout=10) == -signal.SIGKILL
        killed_at = time.monotonic() - began
        operator.start()

        def settled() -> str | None:
            phase = ((api.get("nodemigrations.shimshift.io", name) or {}).get("status") or {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 400, "the migration to settle", 0.5)
        record = record_of(api.must_get("nodemigrationnodes.shimshift.io", child_name(name, node.name)))
        assert phase == "Paused", (record, operator.logs()[-4000:])
        assert record.phase == NodePhase.ROLLED_BACK, record
        assert record.last_error is not None and "ImagePullBackOff" in record.last_error.message, record
        assert ready_runtime(api, node.name).startswith("docker://")
        obj = api.must_get("nodes", node.name)
        assert not obj["spec"].get("unschedulable")
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        after = eventually(lambda: pods_running_on(api, "docker://"), 180, "the three pods Running on Docker")
        assert after["proxy"]["metadata"]["uid"] == before["proxy"]["metadata"]["uid"]
        print(
            f"rollback-started: killed at {killed_at:.1f}s, resumed and RolledBack at "
            f"{time.monotonic() - began:.1f}s"
        )
    finally:
        try:
            api.delete("nodemigrations.shimshift.io", name)
            eventually(lambda: api.get("nodemigrations.shimshift.io", name) is None, 60, f"{name} deleted")
        finally:
            operator.stop()
