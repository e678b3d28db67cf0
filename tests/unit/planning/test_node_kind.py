"""Windows and OpenShift nodes are blockers in the plan, from their Node object alone (so even without
facts), with the evidence and the supported path the facts step gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shimshift.planning.build import build_plan
from shimshift.planning.cluster import parse_node
from shimshift.planning.findings import Level
from shimshift.planning.outside import check_node_kind
from shimshift.steps.facts.refuse import node_refusal
from tests.unit.planning.factory import cluster, node, spec

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)


def _node(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, os: str = ""
) -> Any:
    raw = node("n1", labels=labels)
    raw["metadata"]["annotations"] = annotations or {}
    if os:
        raw["status"]["nodeInfo"]["operatingSystem"] = os
    return raw


@pytest.mark.parametrize(
    ("raw", "code", "evidence"),
    [
        (_node({"kubernetes.io/os": "windows"}), "WindowsNode", "label kubernetes.io/os=windows"),
        (_node(os="windows"), "WindowsNode", "status.nodeInfo.operatingSystem is windows"),
        (_node({"node.openshift.io/os_id": "rhcos"}), "OpenShiftNode", "label node.openshift.io/os_id=rhcos"),
        (
            _node(annotations={"machineconfiguration.openshift.io/state": "Done"}),
            "OpenShiftNode",
            "annotation machineconfiguration.openshift.io/state",
        ),
    ],
)
def test_the_plan_blocks_the_node_in_the_facts_steps_words(raw: Any, code: str, evidence: str) -> None:
    report = build_plan(spec(), cluster(nodes=[raw]), {}, NOW)
    (f,) = [b for b in report.blockers if b.code == code]
    assert f.level == Level.BLOCKER and f.node == "n1" and f.subject == evidence
    parsed = parse_node(raw)
    why = node_refusal(parsed.labels, parsed.annotations, parsed.operating_system)
    assert (
        why is not None
        and why.startswith(f.message.removesuffix(f" ({evidence})"))
        and why.endswith(f.advice)
    )
    if code == "OpenShiftNode":
        assert "CRI-O" in f.message and "Machine Config Operator" in f.advice


def test_a_linux_node_is_not_refused() -> None:
    assert check_node_kind(parse_node(_node({"kubernetes.io/os": "linux"}, os="linux"))) == []


def test_the_plan_says_the_cri_socket_annotation_changes_or_warns_when_it_stays() -> None:
    raw = _node(annotations={"kubeadm.alpha.kubernetes.io/cri-socket": "/var/run/dockershim.sock"})
    report = build_plan(spec(), cluster(nodes=[raw]), {}, NOW)
    assert not [w for w in report.warnings if w.code == "KubeadmCriSocketStale"]
    kept = build_plan(spec(kubelet={"updateCriSocketAnnotation": False}), cluster(nodes=[raw]), {}, NOW)
    (w,) = [w for w in kept.warnings if w.code == "KubeadmCriSocketStale"]
    assert "/var/run/dockershim.sock" in w.message and "kubeadm upgrade" in w.message
    assert "updateCriSocketAnnotation" in w.advice
