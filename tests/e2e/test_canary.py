"""The verify step's canary, end to end: the operator process (`shimshift run`, simulated node steps,
the chart's ServiceAccount) on the real API server, where the testbed's stand-in for a kubelet
(`testbed.controlplane.podlife`) runs an `echo` pod to completion and serves its log as a kubelet does
(the API server fetches `pods/log` from it), and cannot pull an image from a registry under `.invalid`
(ErrImagePull, then ImagePullBackOff, with kubelet's Warning Events). A node is uncordoned only after
its canary ran and echoed its token; a canary that cannot run rolls it back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.model import keys
from shimshift.model.canary import canary_name
from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import Operator, eventually, migration, node, operator_namespace, status_of
from tests.e2e.realapi import RealCluster
from tests.e2e.simnodes import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi]


def canaries(cluster: KubeApi) -> list[dict[str, Any]]:
    return cluster.list(
        "pods", namespace=operator_namespace(cluster), label_selector=f"{keys.CANARY_LABEL}=true"
    )


def test_a_node_is_uncordoned_only_after_its_canary_ran_under_containerd_and_the_pod_is_gone(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    cluster.seed([node("w1")])
    operator_factory().start()
    cluster.seed(migration(verify={"canary": {"image": "busybox:1.36"}}))

    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to succeed")

    w1 = status_of(cluster).node("w1")
    assert w1 is not None and w1.phase == NodePhase.SUCCEEDED
    verify = next(s for s in w1.steps if s.id == "verify")
    assert "canary pod" in verify.message and "ran and echoed its token" in verify.message
    eventually(lambda: not canaries(cluster), 30, "the canary pod to be deleted")
    # replayed from the watches recorded since the test began: the pod ran on w1 (pinned there while
    # it was cordoned), echoed its token, and only then was w1 uncordoned (resourceVersions: etcd's
    # revisions, one order over both)
    assert isinstance(cluster, RealCluster)
    succeeded_at = uncordoned_at = cordoned_at = None
    for event in cluster.history("pods"):
        obj = event.obj
        if obj["metadata"]["name"] == canary_name("w1"):
            assert obj["spec"]["nodeName"] == "w1"
            if (obj.get("status") or {}).get("phase") == "Succeeded" and succeeded_at is None:
                succeeded_at = event.rv
    for event in cluster.history("nodes"):
        obj = event.obj
        if obj["metadata"]["name"] == "w1":
            if obj["spec"].get("unschedulable") and cordoned_at is None:
                cordoned_at = event.rv
            elif cordoned_at is not None and not obj["spec"].get("unschedulable") and uncordoned_at is None:
                uncordoned_at = event.rv
    assert cordoned_at is not None and succeeded_at is not None and uncordoned_at is not None
    assert cordoned_at < succeeded_at < uncordoned_at


def test_a_canary_that_cannot_pull_its_image_rolls_the_node_back_to_docker_uncordoned(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1")])
    operator_factory().start()
    image = "registry.invalid/tools/busybox:1.36"
    cluster.seed(migration(verify={"canary": {"image": image, "timeout": "30s"}}))

    eventually(lambda: status_of(cluster).phase == Phase.PAUSED, 90, "the rollout to pause")

    status = status_of(cluster)
    w1 = status.node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK and w1.last_error is not None
    message = w1.last_error.message
    assert w1.last_error.step == "verify" and "so the node is not uncordoned" in message
    assert f'container waiting: ImagePullBackOff (Back-off pulling image "{image}")' in message
    # kubelet's Warnings quoted, the failed pull's own error first
    assert f'its Events: Warning Failed: Failed to pull image "{image}": rpc error' in message
    assert "lookup registry.invalid: no such host" in message
    node_w1 = cluster.get("nodes", "w1")
    assert node_w1 is not None and not node_w1["spec"].get("unschedulable")
    assert node_w1["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert read_state(sim_dir, "w1")["changes"].get("undo") == 1
    assert "finish" not in read_state(sim_dir, "w1")["done"]
    eventually(lambda: not canaries(cluster), 30, "the canary pod to be deleted")
    events = cluster.list("events", namespace=operator_namespace(cluster))
    failed = [e for e in events if e["reason"] == "CanaryFailed"]
    assert {e["involvedObject"]["kind"] for e in failed} == {"NodeMigration", "Node"}
    assert "ImagePullBackOff" in failed[0]["message"]
    paused = next(c for c in status.conditions if c.type == "Paused")
    assert paused.status == "True" and "latest: w1: node w1: the canary pod" in paused.message
    assert "ImagePullBackOff" in paused.message
