"""The automatic rollback judged by a real kubelet: shimshift (`shimshift run`, over SSH) migrates a
kubeadm cgroupfs node whose kubelet is the real 1.23.17 (in-tree dockershim), registered with the real
1.24.17 control plane, and the verify step fails for a reason the real kubelet gives under containerd:

- its canary names an image the node does not have and no registry serves (the kubelet's pull fails:
  ErrImagePull, then ImagePullBackOff, with its Warning Events), so the node is not uncordoned;
- a DaemonSet's image was excluded from the move (`spec.images.exclude`) and its pod, imagePullPolicy
  Never, cannot start under containerd (ErrImageNeverPull), so its pod is not Ready again in time.

Either way the node is rolled back: the kubelet restarted from its own files on dockershim reports
`docker://` and Ready, the node is uncordoned only after that and unlocked, and the static, DaemonSet
and Deployment pods run as Docker containers again (`docker ps` lists dockershim's `k8s_` names).

Needs the built kubelet and control plane (`scripts/build-components`); without them the module skips,
except under CI, where it fails naming what to build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import ControlPlane
from testbed.controlplane.fixtures import real_kubelet_stack
from testbed.nodes import Cluster
from testbed.nodes.node import Node
from testbed.nodes.realkubelet import docker_containers

from shimshift.model import keys
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.status import NodePhase, NodeRecord
from shimshift.resources import load_crd, load_node_crd
from tests.e2e.conftest import Operator, eventually, secret
from tests.e2e.test_real_kubelet import (
    APP_IMAGE,
    PROFILE,
    STATIC_POD,
    _container,
    pods_running_on,
    ready_runtime,
    ssh_migration,
    workloads,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(600)]

#: An image in the node's Docker that a DaemonSet runs and the second migration does not move.
UNMOVED_IMAGE = "registry.shimshift.test/team/app:1.1"
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, real_kubelet_host: None
) -> Iterator[tuple[ControlPlane, Cluster, RealKubeApi]]:
    with real_kubelet_stack(tmp_path_factory, "e2erollback", [PROFILE]) as (plane, cluster):
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


@dataclass
class Sample:
    """The Node's cordon and lock, and the kubelet's runtime flags on the node, at one moment."""

    at: float
    unschedulable: bool
    locked: bool
    flags_on_containerd: bool
    record_phase: str


@dataclass
class Timeline:
    """The node sampled every 0.1 s while a migration runs, until stopped."""

    api: RealKubeApi
    node: Node
    record: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            obj = self.api.get("nodes", self.node.name) or {}
            child = self.api.get("nodemigrationnodes.shimshift.io", self.record)
            # read after the Node: the kubelet's files are at least as new as the cordon just seen
            try:
                flags = self.node.read(FLAGS)
            except FileNotFoundError:  # between a write and its rename
                self.stop.wait(0.1)
                continue
            self.samples.append(
                Sample(
                    time.monotonic(),
                    bool((obj.get("spec") or {}).get("unschedulable")),
                    keys.LOCK_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {}),
                    "containerd.sock" in flags,
                    str(record_of(child).phase) if child else "",
                )
            )
            self.stop.wait(0.1)

    def uncordoned_after_the_cordon(self) -> list[Sample]:
        cordoned = next(i for i, s in enumerate(self.samples) if s.unschedulable)
        return [s for s in self.samples[cordoned:] if not s.unschedulable]


def migrate_until_settled(
    api: RealKubeApi, cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]
) -> tuple[str, NodeRecord, Timeline, float, Operator]:
    node = cluster.nodes[0]
    name = manifest["metadata"]["name"]
    timeline = Timeline(api, node, child_name(name, node.name))
    sampler = threading.Thread(target=timeline.run, daemon=True)
    sampler.start()
    operator = Operator(api.kubeconfig, tmp_path, {}, ssh=True)
    operator.start()
    began = time.monotonic()
    try:
        api.seed([manifest])

        def settled() -> str | None:
            phase = ((api.get("nodemigrations.shimshift.io", name) or {}).get("status") or {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 400, "the migration to settle", 0.5)
        took = time.monotonic() - began
        record = record_of(api.must_get("nodemigrationnodes.shimshift.io", child_name(name, node.name)))
        # the node's state a little after the operator settled: a late uncordon or lock would show
        settled_at = len(timeline.samples)
        eventually(lambda: len(timeline.samples) > settled_at + 20, 30, "samples after the settle")
    finally:
        timeline.stop.set()
        sampler.join(10)
    return phase, record, timeline, took, operator


def remove_migration(api: RealKubeApi, operator: Operator, name: str) -> None:
    """Delete the NodeMigration while its operator runs (its finalizer), then stop the operator."""
    try:
        api.delete("nodemigrations.shimshift.io", name)
        eventually(lambda: api.get("nodemigrations.shimshift.io", name) is None, 60, f"{name} deleted")
    finally:
        operator.stop()


def containerd_images(node: Node) -> set[str]:
    """The image names in containerd's k8s.io namespace on ``node``."""
    listed = node.exec(["ctr", "-n", "k8s.io", "images", "ls", "-q"], timeout=30)
    assert listed.exit_status == 0, listed.stderr
    return set(listed.stdout.split())


def dockershim_names(pods: dict[str, dict[str, Any]], node: Node) -> list[str]:
    """The prefixes of the names dockershim gives the app containers of the three pods."""
    return [
        f"k8s_probe_probe-{node.name}_kube-system_",
        f"k8s_proxy_{pods['proxy']['metadata']['name']}_kube-system_",
        f"k8s_web_{pods['web']['metadata']['name']}_default_",
    ]


def assert_back_on_docker(api: RealKubeApi, node: Node, timeline: Timeline) -> dict[str, dict[str, Any]]:
    """The node rolled back: Ready on dockershim, its flags without containerd, uncordoned only once the
    kubelet's files were Docker's again, unlocked, and its three pods Running as Docker containers
    (`docker ps`); the pods, keyed by kind."""
    assert ready_runtime(api, node.name).startswith("docker://"), api.get("nodes", node.name)
    assert "containerd.sock" not in node.read(FLAGS), node.read(FLAGS)
    obj = api.must_get("nodes", node.name)
    assert not obj["spec"].get("unschedulable")
    assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
    assert any(s.flags_on_containerd for s in timeline.samples), "the switch was never seen"
    uncordoned = timeline.uncordoned_after_the_cordon()
    assert uncordoned, "the node was never seen uncordoned again"
    # the rollback step uncordons last, once the kubelet's files are Docker's again
    early = [s for s in uncordoned if s.flags_on_containerd]
    assert not early, f"uncordoned while its kubelet was still switched to containerd: {early[:3]}"
    pods = eventually(
        lambda: pods_running_on(api, "docker://"), 180, "the three pods Running on Docker again"
    )
    want = dockershim_names(pods, node)

    def listed() -> list[str] | None:
        names = sorted(docker_containers(node))
        return names if all(any(n.startswith(w) for n in names) for w in want) else None

    eventually(listed, 60, f"docker ps listing {want}")
    return pods


def test_a_canary_the_real_kubelet_cannot_pull_rolls_the_node_back_to_dockershim_before_the_uncordon(
    stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    before = eventually(lambda: pods_running_on(api, "docker://"), 120, "the three pods Running on Docker")
    image = "registry.invalid/tools/busybox:1.36"  # not on the node; `.invalid` never resolves
    held_before = containerd_images(node)
    manifest = ssh_migration(cluster, "canary-fails", [node.name])
    manifest["spec"]["verify"] = {"canary": {"image": image, "timeout": "90s"}}
    phase, record, timeline, took, operator = migrate_until_settled(api, cluster, tmp_path, manifest)
    try:
        assert phase == "Paused", (record, operator.logs()[-4000:])
        assert record.phase == NodePhase.ROLLED_BACK, (record.last_error, operator.logs()[-4000:])
        assert record.last_error is not None and record.last_error.step == "verify", record
        message = record.last_error.message
        assert "so the node is not uncordoned" in message, message
        # the real kubelet's own words: the pull failed (ErrImagePull, then ImagePullBackOff) and its Events
        assert (
            "container waiting: ErrImagePull" in message or "container waiting: ImagePullBackOff" in message
        )
        assert image in message, message
        # kubelet's Events quoted, containerd's own error among them (same-second Events in any order)
        events = message.partition("; its Events: ")[2]
        assert f'Warning Failed: Failed to pull image "{image}"' in events, message
        assert "failed to pull and unpack image" in events, message  # containerd's CRI, not dockershim
        steps = {s.id: s.state for s in record.steps}
        assert "finish" not in {str(s) for s in steps}, record
        after = assert_back_on_docker(api, node, timeline)
        assert not api.list("pods", label_selector=f"{keys.CANARY_LABEL}=true")
        # the images step's undo removed every name it had added to containerd
        assert containerd_images(node) == held_before, containerd_images(node) ^ held_before
        # the drain evicted the Deployment's pod; its replacement runs on Docker; the DaemonSet's stayed
        assert after["web"]["metadata"]["uid"] != before["web"]["metadata"]["uid"]
        assert after["proxy"]["metadata"]["uid"] == before["proxy"]["metadata"]["uid"]
        print(f"rolled back {node.name} after a failed canary in {took:.1f}s: {message[:300]}")
    finally:
        remove_migration(api, operator, "canary-fails")


def test_a_daemonset_pod_that_cannot_start_under_containerd_rolls_the_real_kubelet_back_with_its_pods(
    stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    """The DaemonSet's image is excluded from the move, so the real kubelet on containerd cannot start
    its pod (ErrImageNeverPull): verify waits for it, gives up, and the rollback returns the kubelet
    to dockershim, where the pod runs again from Docker's image."""
    _plane, cluster, api = stack
    node = cluster.nodes[0]
    api.patch(
        "daemonsets",
        "proxy",
        {"spec": {"template": {"spec": {"containers": [{**_container("proxy"), "image": UNMOVED_IMAGE}]}}}},
        "kube-system",
    )

    def proxy_on_unmoved_image() -> dict[str, dict[str, Any]] | None:
        pods = pods_running_on(api, "docker://")
        return pods if pods and pods["proxy"]["spec"]["containers"][0]["image"] == UNMOVED_IMAGE else None

    before = eventually(proxy_on_unmoved_image, 180, "the DaemonSet's pod Running on Docker from app:1.1")
    assert UNMOVED_IMAGE not in containerd_images(node)  # nor left there by an earlier migration
    manifest = ssh_migration(cluster, "ds-fails", [node.name])
    manifest["spec"]["images"] = {"exclude": [UNMOVED_IMAGE]}
    manifest["spec"]["verify"] = {"timeout": "90s", "canary": {"image": APP_IMAGE}}
    phase, record, timeline, took, operator = migrate_until_settled(api, cluster, tmp_path, manifest)
    try:
        assert phase == "Paused", (record, operator.logs()[-4000:])
        assert record.phase == NodePhase.ROLLED_BACK, (record.last_error, operator.logs()[-4000:])
        assert record.last_error is not None and record.last_error.step == "verify", record
        # the real kubelet's own reason for the pod, quoted
        assert "DaemonSet kube-system/proxy (pod proxy-" in record.last_error.message, record.last_error
        assert "container proxy waiting: ErrImageNeverPull" in record.last_error.message, record.last_error
        assert f'Container image "{UNMOVED_IMAGE}" is not present' in record.last_error.message
        after = assert_back_on_docker(api, node, timeline)
        assert after["proxy"]["spec"]["containers"][0]["image"] == UNMOVED_IMAGE
        assert after["proxy"]["metadata"]["uid"] == before["proxy"]["metadata"]["uid"]
        assert after["web"]["metadata"]["uid"] != before["web"]["metadata"]["uid"]
        print(f"rolled back {node.name} after its DaemonSet pod could not start in {took:.1f}s")
        print(f"verify said: {record.last_error.message[:400]}")
    finally:
        remove_migration(api, operator, "ds-fails")
