"""A kubenet node (`--network-plugin=kubenet`, no CNI configuration in /etc/cni/net.d) moves to
containerd with kubenet's bridge network written as a CNI configuration on the Node's podCIDR: on the
testbed's real containerd 1.6 and 2.2, sshd and fake systemctl, containerd's CRI then reports NetworkReady
(`crictl info`, as the verify step and the kubelet read it), and the undo removes the file and brings
every file back byte for byte.

The node's CNI plugins are Debian's containernetworking-plugins, linked into /opt/cni/bin as the
kubernetes-cni package installs them on a kubeadm node.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from shimshift.model.keys import StepId
from shimshift.model.kubenet import KUBENET_FILE
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
)
from tests.integration.remote.test_migrate_runtimes import facts_sandbox, reported

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster
    from testbed.nodes.fixtures import ApiEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

#: Debian's containerd 1.6 (schema 2) and a containerd 2.2 built from its module (schema 3)
SCRATCH_PROFILES = ["kubeadm-cgroupfs", "containerd-2.2"]
CRI = "unix:///run/containerd/containerd.sock"
POD_CIDR = "10.244.7.0/24"
CONFLIST = f"/etc/cni/net.d/{KUBENET_FILE}"
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    scratch_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    yield scratch_cluster


def network_ready(node: object) -> dict[str, object]:
    info = node.exec(["crictl", "--runtime-endpoint", CRI, "info"])  # type: ignore[attr-defined]
    assert info.exit_status == 0, info.stderr
    conditions = json.loads(info.stdout)["status"]["conditions"]
    (cond,) = [c for c in conditions if c["type"] == "NetworkReady"]
    return dict(cond)


def migrate_and_undo(cluster: Cluster, kube_core: CoreV1Api, profile: str) -> None:
    node = node_of(cluster, profile)
    reported(kube_core, node.name)
    wait_runtime(kube_core, node.name, "docker://")
    # a kubenet node: the flag in kubeadm's flags file, no CNI configuration of its own
    flags = node.read(FLAGS)
    assert "--network-plugin=cni" in flags
    node.view(FLAGS).write_text(flags.replace("--network-plugin=cni", "--network-plugin=kubenet"))
    for conf in node.view("/etc/cni/net.d").iterdir():
        conf.unlink()
    # an interface at 1400 (a real node's uplink): kubenet's bridge took the smallest MTU of those up
    link = [
        "ip",
        "link",
        "add",
        "ss-up0",
        "mtu",
        "1400",
        "type",
        "veth",
        "peer",
        "name",
        "ss-up1",
        "mtu",
        "1400",
    ]
    assert node.exec(link).exit_status == 0
    assert node.exec(["sh", "-c", "ip link set ss-up0 up && ip link set ss-up1 up"]).exit_status == 0

    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        facts = facts_of(steps, node)
        assert facts.cni_conf_dirs["/etc/cni/net.d"] == ()
        assert facts.min_link_mtu == 1400, facts.min_link_mtu
        # without the Node's podCIDR nothing is translated: the plan has no file for it
        assert CONFLIST not in {f.path for f in plan_for(facts, "m-kubenet").containerd_files}
        facts = replace(facts, pod_cidrs=(POD_CIDR,))  # the Node's spec.podCIDR, as the facts step sets it
        plan = plan_for(facts, "m-kubenet")
        (conflist,) = [f for f in plan.containerd_files if f.path == CONFLIST]
        bridge = json.loads(conflist.content)["plugins"][0]
        assert bridge["ipam"]["ranges"] == [[{"subnet": POD_CIDR}]] and bridge["mtu"] == 1400
        before = snapshot(node, touched_paths(plan))
        assert before[CONFLIST] is None
        for step in FORWARD:  # verify requires NetworkReady from crictl info
            steps.run(step, plan)
            if step is StepId.CONFIGURE:
                assert node.view(CONFLIST).read_bytes() == conflist.content
                moved = node.exec(
                    ["sh", "-c", 'docker save "$0" | ctr -n k8s.io images import -', facts_sandbox(facts)]
                )
                assert moved.exit_status == 0, moved.stderr
        wait_runtime(kube_core, node.name, "containerd://")
        assert not active(node, "docker")
        assert network_ready(node)["status"] is True
        assert "--network-plugin" not in node.read(FLAGS)
        steps.rollback(plan)
    assert snapshot(node, touched_paths(plan)) == before
    assert not node.view(CONFLIST).exists(), "the undo removes kubenet's configuration"
    assert active(node, "docker") and active(node, "kubelet")
    wait_runtime(kube_core, node.name, "docker://")
    assert "--network-plugin=kubenet" in node.read(FLAGS)
    assert node.exec(["ip", "link", "del", "ss-up0"]).exit_status == 0


def test_a_kubenet_node_moves_to_containerd_with_network_ready_and_undo_removes_the_configuration(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel({p: functools.partial(migrate_and_undo, cluster, kube_core, p) for p in SCRATCH_PROFILES})
