"""The plan's findings about NVIDIA's GPU operator (`model.gpuoperator`). Pure.

A selected GPU node is blocked while a GPU operator Deployment has replicas (the facts step refuses it
with the same words); with the operator scaled to 0 the plan says what to do after the rollout, and
it warns when GPU nodes on Docker stay out of the selection (the pool would stay mixed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from shimshift.model.facts import NodeFacts
from shimshift.model.gpuoperator import (
    GPU_OPERATOR_PAUSED,
    GPU_OPERATOR_RUNNING,
    GPU_POOL_SPLIT,
    GPU_PRESENT_LABEL,
    GpuOperator,
    gpu_evidence,
    gpu_operator_refusal,
    running,
)
from shimshift.planning.cluster import Node
from shimshift.planning.findings import Finding, Level, name_some


def _evidence(node: Node, facts: NodeFacts | None) -> str:
    return gpu_evidence(node.labels, facts.daemon_json if facts is not None else None)


def gpu_node_findings(node: Node, facts: NodeFacts | None, operators: Sequence[GpuOperator]) -> list[Finding]:
    """The blocker of a GPU node while the GPU operator runs."""
    evidence = _evidence(node, facts)
    found = gpu_operator_refusal(evidence, operators)
    if found is None:
        return []
    return [Finding(GPU_OPERATOR_RUNNING, Level.BLOCKER, found[0], found[1], node.name, evidence)]


def gpu_fleet_findings(
    nodes: Iterable[Node],
    selected: Iterable[Node],
    facts_by_node: Mapping[str, NodeFacts],
    operators: Sequence[GpuOperator],
) -> list[Finding]:
    """With GPU nodes selected: the GPU nodes on Docker left out of the selection, and what to do with
    a GPU operator scaled to 0 once the rollout is over."""
    chosen = {n.name for n in selected if _evidence(n, facts_by_node.get(n.name))}
    if not chosen:
        return []
    out: list[Finding] = []
    left = sorted(
        n.name
        for n in nodes
        if n.name not in chosen
        and n.labels.get(GPU_PRESENT_LABEL) == "true"
        and n.runtime_version.startswith("docker://")
    )
    if left:
        out.append(
            Finding(
                GPU_POOL_SPLIT,
                Level.WARNING,
                f"{len(left)} GPU node(s) on Docker are not in this rollout ({name_some(left)}): the GPU "
                "pool stays on two runtimes after it, which NVIDIA's GPU operator does not support",
                "select every GPU node in this NodeMigration (spec.nodeSelector, spec.nodeNames), or "
                "migrate them before the GPU operator is started again",
            )
        )
    paused = [o for o in operators if o.replicas == 0]
    if paused and not running(operators):
        scale = "; ".join(f"kubectl -n {o.namespace} scale deployment {o.name} --replicas=1" for o in paused)
        out.append(
            Finding(
                GPU_OPERATOR_PAUSED,
                Level.INFO,
                f"NVIDIA's GPU operator is scaled to 0 ({', '.join(o.ref for o in paused)}): the GPU nodes "
                "migrate with their nvidia runtime carried into containerd's configuration from daemon.json",
                "once every GPU node runs containerd, set spec.operator.defaultRuntime: containerd in the "
                f"ClusterPolicy (kubectl get clusterpolicies.nvidia.com), then start the operator: {scale}",
                subject=", ".join(o.ref for o in paused),
            )
        )
    return out
