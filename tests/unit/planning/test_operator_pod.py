"""The plan warns when the drain of the operator's own node would leave its replacement pod nowhere to
run: nodeSelector, required node affinity, taints against tolerations, cordoned or NotReady nodes; a
peer replica Running elsewhere, or one node that can take the pod, is enough."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Taint, Toleration
from shimshift.planning.operatorpod import OPERATOR_REPLACEMENT_UNSCHEDULABLE, tolerates
from tests.unit.planning.factory import cluster, node, pod, spec

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
OPERATOR_LABELS = {"app.kubernetes.io/name": "shimshift", "app.kubernetes.io/instance": "shimshift"}


def operator_pod(on: str, name: str = "shimshift-7d9-abc", **scheduling: Any) -> dict[str, Any]:
    raw = pod(name, on, ns="shimshift-system", labels=OPERATOR_LABELS, owner=("ReplicaSet", "shimshift-7d9"))
    raw["spec"].update(scheduling)
    return raw


def tainted(name: str, *taints: dict[str, str], **kw: Any) -> dict[str, Any]:
    raw = node(name, **kw)
    raw.setdefault("spec", {})["taints"] = list(taints)
    return raw


def warnings_for(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], own: str = "w1") -> list[Any]:
    report = build_plan(spec(), cluster(nodes=nodes, pods=pods), {}, NOW, operator_node=own)
    return [f for f in report.warnings if f.code == OPERATOR_REPLACEMENT_UNSCHEDULABLE]


PINNED: dict[str, Any] = {"nodeSelector": {"kubernetes.io/hostname": "w1"}}
GPU_ONLY: dict[str, Any] = {
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                ]
            }
        }
    }
}
BY_NAME: dict[str, Any] = {
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]}
                ]
            }
        }
    }
}
DEDICATED = {"key": "dedicated", "value": "ops", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("scheduling", "others", "stranded", "why"),
    [
        ({}, [node("w2")], False, ""),
        (PINNED, [node("w2")], True, "w2: nodeSelector kubernetes.io/hostname=w1"),
        (GPU_ONLY, [node("w2", labels={"pool": "web"})], True, "w2: required node affinity"),
        (GPU_ONLY, [node("w2", labels={"pool": "web"}), node("w3", labels={"pool": "ops"})], False, ""),
        (BY_NAME, [node("w2")], True, "w2: required node affinity"),
        ({}, [tainted("w2", DEDICATED)], True, "w2: taint dedicated=ops:NoSchedule"),
        (
            {
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
                ]
            },
            [tainted("w2", DEDICATED)],
            False,
            "",
        ),
        ({}, [tainted("w2", {"key": "soft", "effect": "PreferNoSchedule"})], False, ""),
        ({}, [node("w2", unschedulable=True)], True, "w2: cordoned"),
        ({}, [node("w2", ready=False)], True, "w2: not Ready"),
        ({}, [], True, "there is no other node"),
    ],
)
def test_the_operators_node_is_flagged_exactly_when_its_replacement_has_nowhere_to_go(
    scheduling: dict[str, Any], others: list[dict[str, Any]], stranded: bool, why: str
) -> None:
    found = warnings_for([node("w1"), *others], [operator_pod("w1", **scheduling)])
    assert bool(found) == stranded, found
    if stranded:
        (warning,) = found
        assert warning.node == "w1" and warning.subject == "shimshift-system/shimshift-7d9-abc"
        assert why in warning.message and "the rollout does not start this node" in warning.message
        assert "replicaCount: 2" in warning.advice


def test_a_peer_replica_running_elsewhere_takes_over_and_no_operator_pod_means_no_finding() -> None:
    pinned = operator_pod("w1", **PINNED)
    peer = operator_pod("w2", "shimshift-7d9-def", nodeSelector={"kubernetes.io/hostname": "w2"})
    assert warnings_for([node("w1"), node("w2")], [pinned, peer]) == []
    # the plan made offline without the operator's pod (or another app's pod pinned there)
    assert warnings_for([node("w1"), node("w2")], [pod("web", "w1")]) == []
    # a stranded replica on a node that is not the operator's own is not this finding's business
    assert warnings_for([node("w1"), node("w2")], [pinned], own="w2") == []


def test_tolerations_match_as_the_scheduler_matches_them() -> None:
    taint = Taint("dedicated", "ops", "NoExecute")
    assert tolerates((Toleration(operator="Exists"),), taint)  # tolerates everything
    assert tolerates((Toleration("dedicated", "Exists"),), taint)
    assert tolerates((Toleration("dedicated", "Equal", "ops", "NoExecute"),), taint)
    assert not tolerates((Toleration("dedicated", "Equal", "web"),), taint)
    assert not tolerates((Toleration("dedicated", "Exists", effect="NoSchedule"),), taint)
    assert not tolerates((), taint)
