"""Nodes the facts step refuses as they are, before the lock, the cordon and the drain: RKE1, k3s and
RKE2 nodes (shimshift has nothing to switch there), and a node whose Docker runs containers outside the
kubelet while `spec.dockerOutsideContainers` is Block: the switch stops Docker under every
`spec.docker` policy, and those containers with it, so it never does that without the spec's word.
The plan (`planning.outside`) reports the same refusals in the same words. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from shimshift.model.facts import Distribution, NodeFacts, OutsideContainer
from shimshift.model.spec import OutsideContainersPolicy

#: per distribution: the finding's code, what the node is, and the supported path
REFUSED: Mapping[Distribution, tuple[str, str, str]] = {
    Distribution.RKE1: (
        "Rke1Node",
        "an RKE1 node: the kubelet itself is a Docker container that RKE manages, so there is no kubelet "
        "runtime flag to switch and stopping Docker stops the kubelet",
        "migrate the cluster from RKE1 to RKE2 following Rancher's RKE1-to-RKE2 migration guide (RKE2 runs "
        "containerd); shimshift does not migrate RKE1 nodes",
    ),
    Distribution.K3S: (
        "K3sNode",
        "a k3s node: k3s runs its own embedded containerd (unless started with --docker)",
        "nothing to migrate with shimshift; a k3s started with --docker goes back to its embedded "
        "containerd by removing that flag from its k3s configuration and restarting k3s",
    ),
    Distribution.RKE2: (
        "K3sNode",
        "an RKE2 node: RKE2 runs its own embedded containerd",
        "nothing to migrate with shimshift: RKE2 already runs containerd",
    ),
}
BLOCK_ADVICE = (
    "move them to static pods (/etc/kubernetes/manifests) or DaemonSets before migrating, or set "
    "spec.dockerOutsideContainers: Stop to migrate with them stopped"
)


def describe_outside_container(c: OutsideContainer) -> str:
    restart = f", restart {c.restart_policy}" if c.restart_policy and c.restart_policy != "no" else ""
    return f"{c.name} ({c.image}{restart})"


def outside_count(facts: NodeFacts) -> int:
    return len(facts.outside_containers) + facts.outside_containers_more


def listed(facts: NodeFacts, limit: int = 5) -> str:
    """`a (registry:2, restart always), b (...) and 7 more`, counting the ones the facts only count."""
    names = [describe_outside_container(c) for c in facts.outside_containers]
    hidden = max(0, len(names) - limit) + facts.outside_containers_more
    return ", ".join(names[:limit]) + (f" and {hidden} more" if hidden else "")


def refusal(policy: OutsideContainersPolicy, facts: NodeFacts) -> str | None:
    """Why the facts step refuses this node (what to do included), or None."""
    if facts.distribution is not None:
        _code, what, advice = REFUSED[facts.distribution]
        return f"{what}: {advice}"
    if policy == OutsideContainersPolicy.BLOCK and (count := outside_count(facts)):
        return (
            f"Docker runs {count} container(s) outside the kubelet ({listed(facts)}) that the switch would "
            f"stop with Docker: {BLOCK_ADVICE}"
        )
    return None
