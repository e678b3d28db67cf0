"""The verify step's canary pod on the API emulator (its kubelet stand-in runs `echo` pods): created,
watched to its end, its log and Events read, and found by label and deleted, a leftover included."""

from __future__ import annotations

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube
from shimshift.kube.cluster import KubeCluster
from shimshift.model import keys
from shimshift.model.canary import canary_manifest
from shimshift.steps.verify.canary import settled

from .conftest import node

pytestmark = pytest.mark.integration


def canaries(kubeapi: KubeApi) -> list[str]:
    pods = kubeapi.list("pods", namespace="default", label_selector=f"{keys.CANARY_LABEL}=true")
    return sorted(
        p["metadata"]["annotations"][keys.CANARY_TOKEN_ANNOTATION]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    )


def test_a_canary_runs_to_completion_and_its_log_holds_its_token(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed([node("n1", unschedulable=True)])
    cluster = KubeCluster(kube, "default")
    pod = cluster.run_canary(
        "n1", image="busybox:1.36", token="tok-1", migration="m", wait=20, settled=settled
    )
    assert pod.phase == "Succeeded" and pod.exit_code == 0 and pod.token == "tok-1"
    assert cluster.read_canary_log("n1") == "tok-1\n"
    assert cluster.delete_canaries("n1") == 1
    assert canaries(kubeapi) == []


def test_a_leftover_canary_of_an_earlier_attempt_is_deleted_before_this_one_runs(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed([node("n1"), node("n2")])
    leftover = canary_manifest("n1", "default", "busybox:1.36", "old-token", "m")
    leftover["spec"]["containers"][0]["command"] = ["sleep", "3600"]  # runs on: a crash left it
    other = canary_manifest("n2", "default", "busybox:1.36", "n2-token", "m")
    kubeapi.seed([leftover, other])
    cluster = KubeCluster(kube, "default")
    first = cluster.run_canary(
        "n1", image="busybox:1.36", token="new", migration="m", wait=1, settled=settled
    )
    assert first.token == "new" or first.reason == "Replacing"  # the old one first goes
    pod = first
    for _ in range(20):
        if pod.phase == "Succeeded":
            break
        pod = cluster.run_canary(
            "n1", image="busybox:1.36", token="new", migration="m", wait=1, settled=settled
        )
    assert pod.phase == "Succeeded" and pod.token == "new"
    assert canaries(kubeapi) == ["n2-token", "new"]  # another node's canary is not touched
    cluster.delete_canaries("n1")
    assert canaries(kubeapi) == ["n2-token"]


def test_a_canary_that_cannot_pull_is_settled_with_kubelets_reason_and_event(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed([node("n1")])
    cluster = KubeCluster(kube, "default")
    pod = cluster.run_canary(
        "n1", image="registry.invalid/busybox:1", token="t", migration="m", wait=20, settled=settled
    )
    assert pod.phase == "Pending" and pod.waiting_reason == "ImagePullBackOff"
    (event,) = cluster.read_canary_events("n1")
    assert event.startswith('Warning Failed: Failed to pull image "registry.invalid/busybox:1"')
