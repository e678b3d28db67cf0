"""NVIDIA's GPU operator: a GPU node is not started while the operator's Deployment has replicas. Over
every combination of what makes a node a GPU node (its label, daemon.json's nvidia runtime, neither)
and of the GPU operator's Deployments (none, scaled to 0, running), the plan's blocker and the facts
step's refusal agree and say the same words; a node refused this way is untouched (no lock, cordon or
change), and the Deployments are read only for GPU nodes."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from typing import Any

import pytest

from shimshift.model.gpuoperator import (
    GPU_OPERATOR_PAUSED,
    GPU_OPERATOR_RUNNING,
    GPU_POOL_SPLIT,
    GPU_PRESENT_LABEL,
    GpuOperator,
    gpu_evidence,
    gpu_operators,
)
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.planning.build import build_plan
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest
from tests.unit.engine.test_cni_refused import facts_for
from tests.unit.planning.factory import cluster, node, spec

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
NODE_CHANGES = ("lock", "backup", "configure", "images", "cordon", "switch")


def operator_deployment(
    replicas: int | None,
    *,
    image: str = "nvcr.io/nvidia/gpu-operator:v23.9.1",
    name: str = "gpu-operator",
    command: list[str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if command is not None:
        container["command"] = command
    spec_: dict[str, Any] = {"template": {"spec": {"containers": [container]}}}
    if replicas is not None:
        spec_["replicas"] = replicas
    return {"kind": "Deployment", "metadata": {"namespace": "gpu-operator", "name": name}, "spec": spec_}


EVIDENCE = {
    "label": ({GPU_PRESENT_LABEL: "true"}, None),
    "runtimes": ({}, {"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}),
    "none": ({}, None),
}
OPERATORS: dict[str, list[dict[str, Any]]] = {
    "absent": [],
    "scaled-to-0": [operator_deployment(0)],
    "running": [operator_deployment(None)],  # spec.replicas unset: 1
}


def gpu_blockers(report: Any) -> list[str]:
    return [f"{b.message}: {b.advice}" for b in report.blockers if b.code == GPU_OPERATOR_RUNNING]


@pytest.mark.parametrize(("evidence", "deployed"), list(itertools.product(EVIDENCE, OPERATORS)))
def test_the_facts_step_refuses_exactly_the_gpu_nodes_the_plan_blocks(evidence: str, deployed: str) -> None:
    labels, daemon_json = EVIDENCE[evidence]
    facts = facts_for(["10-calico.conflist"], "--network-plugin=cni")
    if daemon_json is not None:
        facts = replace(facts, daemon_json={**(facts.daemon_json or {}), **daemon_json})
    deployments = OPERATORS[deployed]
    report = build_plan(
        spec(),
        cluster(nodes=[node("n1", labels={"pool": "workers", **labels})], controllers=deployments),
        {"n1": facts},
        NOW,
    )
    blockers = gpu_blockers(report)
    assert bool(blockers) == (evidence != "none" and deployed == "running"), blockers

    clock = Clock()
    fake = FakeCluster([FakeNode("n1", labels={"pool": "workers", **labels})], clock)
    fake.gpu_operator_deployments = gpu_operators(deployments)
    nodes = FakeNodes(fake)
    nodes.node_facts["n1"] = facts
    fake.create(manifest())
    run_to_end(fake, nodes, clock)

    record = fake.status().node("n1")
    assert record is not None
    (step,) = [s for s in record.steps if s.id == StepId.FACTS]
    # the Deployments are read for a GPU node only (one LIST of the cluster's Deployments each)
    assert (fake.gpu_operator_reads > 0) == (evidence != "none")
    if blockers:
        assert record.phase == NodePhase.FAILED and step.state == StepState.FAILED
        (said,) = blockers
        assert said in step.message, (step.message, said)
        assert "kubectl -n gpu-operator scale deployment gpu-operator --replicas=0" in said
        assert not {StepId.LOCK, StepId.CORDON} & {s.id for s in record.steps}  # refused before both
        assert set(nodes.changes) == {"n1:facts"}, nodes.changes  # the probe (read only), nothing else
    else:
        assert step.state == StepState.DONE, step.message
        if evidence != "none" or deployed != "absent":
            assert record.phase == NodePhase.SUCCEEDED, record


def test_a_paused_operator_says_what_to_do_after_and_gpu_nodes_left_out_are_a_warning() -> None:
    facts = facts_for(["10-calico.conflist"], "--network-plugin=cni")
    gpu = {"pool": "gpu", GPU_PRESENT_LABEL: "true"}
    report = build_plan(
        spec(nodeSelector={"matchLabels": {"wave": "first"}}),
        cluster(
            nodes=[
                node("g1", labels={**gpu, "wave": "first"}),
                node("g2", labels=gpu),
                node("g3", labels=gpu, runtime="containerd://1.6.20"),
            ],
            controllers=[operator_deployment(0)],
        ),
        {"g1": facts},
        NOW,
    )
    by_code = {f.code: f for f in (*report.warnings, *report.notes)}
    assert GPU_OPERATOR_RUNNING not in {b.code for b in report.blockers}
    split = by_code[GPU_POOL_SPLIT]
    # g3 already runs containerd: only g2 keeps the pool mixed
    assert "1 GPU node(s) on Docker are not in this rollout (g2)" in split.message, split.message
    paused = by_code[GPU_OPERATOR_PAUSED]
    assert "Deployment gpu-operator/gpu-operator" in paused.message
    assert "spec.operator.defaultRuntime: containerd" in paused.advice
    assert "kubectl -n gpu-operator scale deployment gpu-operator --replicas=1" in paused.advice
    assert report.summary.exit_code != 0  # the split pool counts in the verdict


def test_what_runs_the_gpu_operator_and_what_makes_a_gpu_node() -> None:
    found = gpu_operators(
        [
            operator_deployment(2),
            operator_deployment(
                0, image="registry.corp/mirror/nvidia/gpu-operator@sha256:" + "a" * 64, name="b"
            ),
            operator_deployment(1, image="nvcr.io/nvidia/k8s/container-toolkit:v1.14", name="toolkit"),
            operator_deployment(
                1, image="registry.corp/ops:v2", name="renamed", command=["/usr/bin/gpu-operator"]
            ),
            {"kind": "Deployment", "metadata": {"name": "odd"}, "spec": {"template": "not a map"}},
            {"kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {}},
        ]
    )
    # by the image's repository name (any registry, tag or digest) or the command; the toolkit's
    # image is not the operator, and a malformed template and a DaemonSet are not Deployments running it
    assert found == (
        GpuOperator("gpu-operator", "b", 0),
        GpuOperator("gpu-operator", "gpu-operator", 2),
        GpuOperator("gpu-operator", "renamed", 1),
    )
    assert gpu_evidence({GPU_PRESENT_LABEL: "true"}, None) == f"label {GPU_PRESENT_LABEL}=true"
    assert gpu_evidence({GPU_PRESENT_LABEL: "false"}, {"default-runtime": "nvidia"}).startswith("daemon.json")
    assert gpu_evidence({}, {"runtimes": {"runsc": {}}}) == ""
