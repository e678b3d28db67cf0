"""What a real API server refuses and the emulator let through: an eviction a PodDisruptionBudget
forbids, right after the budget was created, and objects past etcd's and the API server's size limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.fixtures import audit_events
from testbed.kubeapi.kubectl import Kubectl
from testbed.nodes.kube_http import ApiError
from testbed.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MIB = 1024 * 1024


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_drain_right_after_a_pdb_is_created_is_refused_and_the_pod_stays(
    controlplane: ControlPlane, realkube: RealKubeApi, realkube_kubectl: Kubectl
) -> None:
    assert controlplane.audit_log is not None
    audit_offset = controlplane.audit_log.stat().st_size
    labels = {"app": "solo"}
    realkube.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-drain-node"}})
    # the budget first, then the Ready pod it selects (a Deployment's, so the disruption controller
    # computes the budget from the owner's scale): disruptionsAllowed is 0 at every moment
    realkube.seed(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "solo", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
        }
    )
    realkube.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "solo", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
    )
    pod = wait_until(
        lambda: next(
            (p for p in realkube.list("pods", "default", label_selector="app=solo") if _ready(p)), None
        ),
        60,
        what="the Deployment's pod Ready",
        interval=0.1,
    )
    assert realkube_kubectl.run("cordon", "cp-drain-node").returncode == 0
    drain = realkube_kubectl.run("drain", "cp-drain-node", "--ignore-daemonsets", "--timeout=8s", timeout=60)

    assert drain.returncode != 0, drain.stdout + drain.stderr
    assert "global timeout reached: 8s" in drain.stderr
    after = realkube.must_get("pods", pod["metadata"]["name"], "default")
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert "deletionTimestamp" not in after["metadata"]
    assert realkube.must_get("nodes", "cp-drain-node")["spec"]["unschedulable"] is True
    evictions = [
        e
        for e in audit_events(controlplane, audit_offset)
        if e.get("stage") == "ResponseComplete"
        and (e.get("objectRef") or {}).get("subresource") == "eviction"
        and (e.get("objectRef") or {}).get("name") == pod["metadata"]["name"]
    ]
    codes = {e["responseStatus"]["code"] for e in evictions}
    assert codes == {429}, json.dumps(evictions, indent=1)[:2000]


def test_a_configmap_over_1_mib_is_refused(realkube: RealKubeApi) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "default"},
        "data": {"blob": "x" * (MIB + 1024)},
    }
    with pytest.raises(ApiError) as refused:
        realkube.seed(big)
    assert refused.value.status == 422
    causes = json.loads(refused.value.body)["details"]["causes"]
    assert [c["reason"] for c in causes] == ["FieldValueTooLong"]
    assert "1048576" in causes[0]["message"]
    assert realkube.get("configmaps", "big", "default") is None


def test_an_object_past_etcds_request_limit_is_refused(realkube: RealKubeApi) -> None:
    realkube.seed(Path(__file__).parents[1] / "kubeapi" / "widget-crd.yaml")
    widget = realkube.resolve("widgets.example.io")
    body = {
        "apiVersion": widget.api_version,
        "kind": "Widget",
        "metadata": {"name": "huge", "namespace": "default"},
        "spec": {"mode": "Plan", "note": "y" * (MIB * 8 // 5)},
    }
    with pytest.raises(ApiError) as refused:
        realkube.http.request("POST", widget.collection("default"), body)
    # etcd's --max-request-bytes (1.5 MiB): the API server answers 500 with etcd's error
    assert refused.value.status == 500
    assert "etcdserver: request is too large" in str(refused.value)
    assert realkube.get("widgets.example.io", "huge", "default") is None
