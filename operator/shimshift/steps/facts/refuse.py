"""Nodes the facts step refuses as they are, before the lock, the cordon and the drain: Windows and
OpenShift nodes (from the Node object alone, before any SSH), RKE1, k3s and RKE2 nodes (shimshift has
nothing to switch there), a node whose daemon.json has a setting the plan blocks (userns-remap,
devicemapper, a default runtime that cannot be carried, ...) or whose default runtime's binary is
missing,
and a node whose Docker runs containers outside the kubelet while `spec.dockerOutsideContainers` is
Block: the switch stops Docker under every `spec.docker` policy, and those containers with it, so it
never does that without the spec's word. The plan (`planning.outside`, `planning.settings` for
daemon.json) reports the same refusals in the same words. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from shimshift.model.dockerera import DAEMON_JSON_IMPORTED, Fate, Rule, daemon_json_fate
from shimshift.model.facts import Distribution, NodeFacts, OutsideContainer
from shimshift.model.runtimes import MissingBinary, docker_runtimes, missing_binaries
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
#: the Node's OS label (and status.nodeInfo.operatingSystem) of a Windows node
OS_LABEL = "kubernetes.io/os"
#: what the Machine Config Operator puts on OpenShift nodes
OPENSHIFT_LABEL = "node.openshift.io/os_id"
OPENSHIFT_ANNOTATIONS = "machineconfiguration.openshift.io/"
#: nodes refused from their Node object alone, before any SSH: the finding's code, what the node is,
#: and the supported path
WINDOWS: tuple[str, str, str] = (
    "WindowsNode",
    "a Windows node: shimshift migrates Linux nodes only (its probe and steps are POSIX shell over SSH, "
    "and containerd on Windows is configured differently)",
    "migrate Windows nodes with the Kubernetes documentation's Windows procedure (install containerd as "
    "a Windows service and point the kubelet at npipe:////./pipe/containerd-containerd); keep them out "
    "of spec.nodeSelector (for instance kubernetes.io/os: linux)",
)
OPENSHIFT: tuple[str, str, str] = (
    "OpenShiftNode",
    "an OpenShift node: it runs CRI-O, and its runtime and kubelet configuration belong to the Machine "
    "Config Operator, which would revert any change made on the node",
    "nothing to migrate with shimshift: change an OpenShift node's runtime only through the Machine "
    "Config Operator (MachineConfig, ContainerRuntimeConfig); keep these nodes out of spec.nodeSelector",
)
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


def node_kind(
    labels: Mapping[str, str], annotations: Mapping[str, str], operating_system: str = ""
) -> tuple[tuple[str, str, str], str] | None:
    """A Windows or OpenShift node, from its Node object: (code, what, advice) and the evidence."""
    if labels.get(OS_LABEL, "").lower() == "windows":
        return WINDOWS, f"label {OS_LABEL}={labels[OS_LABEL]}"
    if operating_system.lower() == "windows":
        return WINDOWS, "status.nodeInfo.operatingSystem is windows"
    if OPENSHIFT_LABEL in labels:
        return OPENSHIFT, f"label {OPENSHIFT_LABEL}={labels[OPENSHIFT_LABEL]}"
    marks = sorted(k for k in annotations if k.startswith(OPENSHIFT_ANNOTATIONS))
    if marks:
        return OPENSHIFT, f"annotation {marks[0]}"
    return None


def node_refusal(
    labels: Mapping[str, str], annotations: Mapping[str, str], operating_system: str = ""
) -> str | None:
    """Why the facts step refuses this node before connecting to it (what to do included), or None."""
    kind = node_kind(labels, annotations, operating_system)
    if kind is None:
        return None
    (_code, what, advice), _evidence = kind
    return f"{what}: {advice}"


def daemon_json_refusal(facts: NodeFacts) -> tuple[str, Rule] | None:
    """The first key of the node's daemon.json (by name) that the table refuses, and its rule: what the
    plan reports as a DaemonJsonRefused blocker, the facts step refuses too, so a node the plan says
    cannot migrate is never changed (userns-remap: the pods' data ownership and isolation, which no
    undo gives back; devicemapper; a default runtime that cannot be carried; ...). The registry keys
    are never refused: their fate depends on spec.containerd.importDockerConfig only."""
    daemon = facts.daemon_json or {}
    for key in sorted(daemon):
        if key in DAEMON_JSON_IMPORTED:
            continue
        rule = daemon_json_fate(key, daemon[key], daemon, facts.snapshotters)
        if rule.fate is Fate.REFUSED:
            return key, rule
    return None


def runtime_binary_refusal(facts: NodeFacts) -> MissingBinary | None:
    """Docker's default runtime carried as containerd's default_runtime_name without its binary on the
    node: what the plan reports as a RuntimeBinaryMissing blocker (every pod would fail to start)."""
    found = missing_binaries(docker_runtimes(facts.daemon_json), facts.runtime_binaries)
    return next((m for m in found if m.default), None)


def refusal(policy: OutsideContainersPolicy, facts: NodeFacts) -> str | None:
    """Why the facts step refuses this node (what to do included), or None."""
    if facts.distribution is not None:
        _code, what, advice = REFUSED[facts.distribution]
        return f"{what}: {advice}"
    if (found := daemon_json_refusal(facts)) is not None:
        key, rule = found
        value = (facts.daemon_json or {})[key]
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return f"daemon.json {key} = {shown} would break the node: {rule.text}: {rule.advice}"
    if (missing := runtime_binary_refusal(facts)) is not None:
        return f"{missing.text}: {missing.advice}"
    if policy == OutsideContainersPolicy.BLOCK and (count := outside_count(facts)):
        return (
            f"Docker runs {count} container(s) outside the kubelet ({listed(facts)}) that the switch would "
            f"stop with Docker: {BLOCK_ADVICE}"
        )
    return None
