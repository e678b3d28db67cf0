"""NVIDIA's GPU operator on a fleet that is moving from Docker to containerd. Pure values.

The GPU operator (a Deployment running the `gpu-operator` image, configured by its ClusterPolicy)
deploys NVIDIA's container toolkit on every GPU node and has it configure the node's container runtime
for the GPU: one runtime for the whole cluster (`spec.operator.defaultRuntime`, or what it detects).
NVIDIA supports no cluster mixing runtimes (NVIDIA/gpu-operator#477), and during a migration a GPU
pool does mix them: the toolkit has rewritten containerd's configuration on GPU nodes still on Docker
(whose dockerd runs on that containerd), taking them down (NVIDIA/gpu-operator#533), and Docker's on
moved ones. NVIDIA's advice is to stop the operator for the change (scale its Deployment to 0), move
the GPU nodes together, then set the runtime in the ClusterPolicy and start it again.

So a GPU node (labelled `nvidia.com/gpu.present=true` by GPU feature discovery, or with an `nvidia`
runtime in daemon.json) is not started while a GPU operator Deployment has replicas: the plan blocks
it (`GPU_OPERATOR_RUNNING`) and the facts step refuses it, untouched, with the same words. Once the
operator is scaled to 0 the node migrates, its `nvidia` runtime carried into containerd's
configuration from daemon.json (`model.runtimes`), and the plan says what to do after the rollout.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: set to "true" on a node with a GPU by NVIDIA's GPU feature discovery (the GPU operator runs it)
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
#: the runtime name NVIDIA's toolkit registers in daemon.json
NVIDIA_RUNTIME = "nvidia"
#: the image (repository name) and command the GPU operator's Deployment runs
OPERATOR_IMAGE = "gpu-operator"
#: plan codes
GPU_OPERATOR_RUNNING = "GpuOperatorRunning"
GPU_OPERATOR_PAUSED = "GpuOperatorPaused"
GPU_POOL_SPLIT = "GpuPoolSplit"


@dataclass(frozen=True)
class GpuOperator:
    """A Deployment that runs NVIDIA's GPU operator, and its spec.replicas (0: scaled down)."""

    namespace: str
    name: str
    replicas: int

    @property
    def ref(self) -> str:
        return f"Deployment {self.namespace}/{self.name}"


def _repository_name(image: str) -> str:
    """The last path element of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _runs_operator(container: Mapping[str, Any]) -> bool:
    image = container.get("image")
    command = container.get("command")
    first = command[0] if isinstance(command, list) and command and isinstance(command[0], str) else ""
    return (isinstance(image, str) and _repository_name(image) == OPERATOR_IMAGE) or (
        posixpath.basename(first) == OPERATOR_IMAGE
    )


def gpu_operators(deployments: Iterable[Mapping[str, Any]]) -> tuple[GpuOperator, ...]:
    """The Deployments among `deployments` (raw objects) that run the GPU operator, by namespace and
    name. A malformed object is not one (the planner's own parsing names its faults)."""
    found: list[GpuOperator] = []
    for raw in deployments:
        if not isinstance(raw, Mapping) or raw.get("kind", "Deployment") != "Deployment":
            continue
        meta, spec = raw.get("metadata"), raw.get("spec")
        if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
            continue
        template = spec.get("template")
        pod_spec = template.get("spec") if isinstance(template, Mapping) else None
        containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
        if not isinstance(containers, list) or not any(
            isinstance(c, Mapping) and _runs_operator(c) for c in containers
        ):
            continue
        replicas = spec.get("replicas", 1)
        found.append(
            GpuOperator(
                str(meta.get("namespace") or "default"),
                str(meta.get("name") or ""),
                replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1,
            )
        )
    return tuple(sorted(found, key=lambda o: (o.namespace, o.name)))


def gpu_evidence(labels: Mapping[str, str], daemon_json: Mapping[str, Any] | None) -> str:
    """What makes a node a GPU node the GPU operator configures ("" when nothing does)."""
    if labels.get(GPU_PRESENT_LABEL) == "true":
        return f"label {GPU_PRESENT_LABEL}=true"
    if daemon_json:
        if daemon_json.get("default-runtime") == NVIDIA_RUNTIME:
            return f"daemon.json default-runtime {NVIDIA_RUNTIME}"
        runtimes = daemon_json.get("runtimes")
        if isinstance(runtimes, Mapping) and NVIDIA_RUNTIME in runtimes:
            return f"daemon.json runtimes.{NVIDIA_RUNTIME}"
    return ""


def running(operators: Sequence[GpuOperator]) -> tuple[GpuOperator, ...]:
    return tuple(o for o in operators if o.replicas > 0)


def scale_down_command(operator: GpuOperator) -> str:
    return f"kubectl -n {operator.namespace} scale deployment {operator.name} --replicas=0"


def gpu_operator_refusal(evidence: str, operators: Sequence[GpuOperator]) -> tuple[str, str] | None:
    """(message, what to do) when a GPU node (`evidence`: `gpu_evidence`) must not start because
    a GPU operator Deployment among `operators` has replicas; None when it may."""
    up = running(operators)
    if not evidence or not up:
        return None
    names = ", ".join(f"{o.ref} ({o.replicas} replica(s))" for o in up)
    message = (
        f"GPU node ({evidence}) while NVIDIA's GPU operator runs ({names}): it configures one container "
        "runtime for every GPU node, and on a pool mixing Docker and containerd nodes its toolkit has "
        "rewritten the runtime configuration of nodes on the other runtime, taking them down "
        "(NVIDIA/gpu-operator#533)"
    )
    advice = (
        "stop the GPU operator for the rollout, as NVIDIA advises: "
        + "; ".join(scale_down_command(o) for o in up)
        + "; select every GPU node in this NodeMigration; after it, set the ClusterPolicy's "
        "spec.operator.defaultRuntime to containerd and scale the operator back"
    )
    return message, advice


def gpu_operator_refusal_text(evidence: str, operators: Sequence[GpuOperator]) -> str | None:
    """`gpu_operator_refusal` as the facts step's error says it (the plan's message and advice in one)."""
    found = gpu_operator_refusal(evidence, operators)
    return None if found is None else f"{found[0]}: {found[1]}"
