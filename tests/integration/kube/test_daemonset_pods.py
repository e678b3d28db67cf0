"""The verify step's wait for DaemonSet pods on a switched node, against the API emulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube
from shimshift.kube.cluster import KubeCluster
from shimshift.steps.verify import node_reason

from .conftest import daemonset, node, pod

pytestmark = pytest.mark.integration


def not_ready(obj: dict[str, Any]) -> dict[str, Any]:
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    return obj


def test_the_wait_ends_when_every_daemonset_pod_on_the_node_is_ready_again_through_one_watch(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            node("n2"),
            daemonset("proxy"),
            daemonset("cni"),
            not_ready(pod("proxy-1", "n1", owner=("DaemonSet", "proxy"))),
            pod("cni-1", "n1", owner=("DaemonSet", "cni")),
            not_ready(pod("web-1", "n1")),  # not a DaemonSet pod: not waited for
            not_ready(pod("proxy-2", "n2", owner=("DaemonSet", "proxy"))),  # another node
        ]
    )
    made_ready = threading.Event()

    def kubelet_reports_ready() -> None:
        made_ready.set()
        kube.request(
            "PATCH",
            "/api/v1/namespaces/default/pods/proxy-1/status",
            body={"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            content_type="application/merge-patch+json",
        )

    timer = threading.Timer(0.5, kubelet_reports_ready)
    kubeapi.requests.clear()
    timer.start()
    try:
        missing = KubeCluster(kube).wait_daemonset_pods("n1", expected=(), timeout=20)
    finally:
        timer.join(timeout=5)

    assert missing == () and made_ready.is_set()
    assert len(kubeapi.requests.filter(verb="list", resource="pods")) == 1
    assert kubeapi.requests.filter(verb="watch", resource="pods")


def test_a_daemonset_pod_that_stays_unready_or_goes_away_is_named_when_the_wait_times_out(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            daemonset("proxy"),
            daemonset("cni"),
            not_ready(pod("proxy-1", "n1", owner=("DaemonSet", "proxy"))),
            pod("cni-1", "n1", owner=("DaemonSet", "cni")),
        ]
    )
    timer = threading.Timer(
        0.3,
        lambda: kube.request(
            "DELETE", "/api/v1/namespaces/default/pods/cni-1", query=[("gracePeriodSeconds", "0")]
        ),
    )
    timer.start()
    try:
        missing = KubeCluster(kube).wait_daemonset_pods("n1", expected=(), timeout=2)
    finally:
        timer.join(timeout=5)

    assert kubeapi.get("pods", "cni-1", "default") is None
    assert missing == (
        "DaemonSet default/cni (no pod on the node)",
        "DaemonSet default/proxy (pod proxy-1: not Ready)",
    )


def test_a_daemonset_pod_whose_container_kubelet_cannot_start_is_named_with_kubelets_reason(
    kubeapi: KubeApi, kube: Kube
) -> None:
    """What the real kubelet on containerd said of a DaemonSet pod whose image was not moved."""
    message = (
        'Container image "registry.shimshift.test/team/app:1.1" is not present with pull policy of Never'
    )
    stuck = not_ready(pod("proxy-1", "n1", owner=("DaemonSet", "proxy")))
    stuck["status"]["containerStatuses"] = [
        {
            "name": "proxy",
            "ready": False,
            "state": {"waiting": {"reason": "ErrImageNeverPull", "message": message}},
        }
    ]
    kubeapi.seed([node("n1"), daemonset("proxy"), stuck])

    missing = KubeCluster(kube).wait_daemonset_pods("n1", expected=(), timeout=1)

    assert missing == (
        f"DaemonSet default/proxy (pod proxy-1: not Ready, container proxy waiting: ErrImageNeverPull ({message}))",
    )


def test_a_recorded_daemonset_without_a_pod_is_waited_for_until_its_pod_runs_again_unless_it_was_deleted(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(
        [node("n1"), daemonset("proxy"), daemonset("logs"), pod("cni-1", "n1", owner=("DaemonSet", "cni"))]
    )
    cluster = KubeCluster(kube)
    recorded = ("default/logs", "default/proxy")  # their pods were on n1 when its drain finished

    assert cluster.daemonsets_on("n1") == ("default/cni",)
    assert cluster.wait_daemonset_pods("n1", expected=recorded, timeout=1) == (
        "DaemonSet default/logs (no pod on the node)",
        "DaemonSet default/proxy (no pod on the node)",
    )

    kubeapi.delete("daemonsets.apps", "logs", "default")  # removed by its owner meanwhile: not waited for
    timer = threading.Timer(0.3, lambda: kubeapi.seed([pod("proxy-9", "n1", owner=("DaemonSet", "proxy"))]))
    timer.start()
    try:
        assert cluster.wait_daemonset_pods("n1", expected=recorded, timeout=20) == ()
    finally:
        timer.join(timeout=5)


def test_a_node_that_stays_not_ready_is_described_by_the_ready_condition_it_reports(
    kubeapi: KubeApi, kube: Kube
) -> None:
    message = (
        "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
        "message:Network plugin returns error: cni plugin not initialized"
    )
    switched = node("n1", runtime="containerd://1.6.20")
    switched["status"]["conditions"] = [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": message},
    ]
    kubeapi.seed([switched])
    cluster = KubeCluster(kube)
    try:
        assert not cluster.wait_node("n1", runtime="containerd", timeout=0.5)
        assert node_reason(cluster.read_node("n1")) == f"Ready=False (KubeletNotReady: {message})"
        assert cluster.read_node("n2") is None
        kube.request(
            "PATCH",
            "/api/v1/nodes/n1/status",
            body={"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}},
            content_type="application/merge-patch+json",
        )
        assert cluster.wait_node("n1", runtime="containerd", timeout=20)
        assert node_reason(cluster.read_node("n1")) == ""
    finally:
        cluster.close()


def test_the_cni_daemonsets_on_a_node_are_the_ones_whose_pod_there_mounts_the_conf_dir(
    kubeapi: KubeApi, kube: Kube
) -> None:
    """What the facts step asks to tell a CNI agent that will write its configuration from a node that
    has none; and the Node's podCIDR, which a kubenet node's bridge network is translated on."""
    agent = pod("canal-1", "n1", owner=("DaemonSet", "canal"))
    agent["spec"]["volumes"] = [{"name": "cni", "hostPath": {"path": "/etc/cni"}}]
    elsewhere = pod("canal-2", "n2", owner=("DaemonSet", "canal"))
    elsewhere["spec"]["volumes"] = agent["spec"]["volumes"]
    other = pod("logs-1", "n1", owner=("DaemonSet", "logs"))
    other["spec"]["volumes"] = [{"name": "log", "hostPath": {"path": "/var/log"}}]
    with_cidr = node("n1")
    with_cidr.setdefault("spec", {})["podCIDR"] = "10.244.1.0/24"
    kubeapi.seed([with_cidr, node("n2"), daemonset("canal"), daemonset("logs"), agent, elsewhere, other])
    cluster = KubeCluster(kube)

    assert cluster.cni_config_writers("n1", "/etc/cni/net.d") == ("canal",)
    assert cluster.cni_config_writers("n1", "/etc/kubernetes/cni/net.d") == ()
    view = cluster.read_node("n1")
    assert view is not None and view.pod_cidrs == ("10.244.1.0/24",)


def test_a_daemonset_pod_still_reporting_its_docker_containers_is_not_taken_for_one_back_on_containerd(
    kubeapi: KubeApi, kube: Kube
) -> None:
    """Right after the kubelet restarts on containerd, a DaemonSet pod's status is still the one it
    wrote under Docker (Running, Ready, docker:// containers): the real kubelet takes a few seconds to
    report that its image cannot be started there. Verify waits for containers of the new runtime."""
    stale = pod("proxy-1", "n1", owner=("DaemonSet", "proxy"))
    stale["status"]["containerStatuses"] = [
        {"name": "c", "ready": True, "containerID": "docker://" + "a" * 64, "state": {"running": {}}}
    ]
    kubeapi.seed([node("n1"), daemonset("proxy"), stale])
    cluster = KubeCluster(kube)

    # without a runtime (before the switch) the pod counts; on containerd it does not yet
    assert cluster.wait_daemonset_pods("n1", expected=(), timeout=1) == ()
    assert cluster.wait_daemonset_pods("n1", expected=(), timeout=1, runtime="containerd") == (
        "DaemonSet default/proxy (pod proxy-1: Ready as reported before the switch (docker containers),"
        " not yet on containerd)",
    )

    def kubelet_reports_containerd() -> None:
        kube.request(
            "PATCH",
            "/api/v1/namespaces/default/pods/proxy-1/status",
            body={
                "status": {
                    "containerStatuses": [
                        {
                            "name": "c",
                            "ready": True,
                            "containerID": "containerd://" + "b" * 64,
                            "state": {"running": {}},
                        }
                    ]
                }
            },
            content_type="application/merge-patch+json",
        )

    timer = threading.Timer(0.3, kubelet_reports_containerd)
    timer.start()
    try:
        assert cluster.wait_daemonset_pods("n1", expected=(), timeout=20, runtime="containerd") == ()
    finally:
        timer.join(timeout=5)
