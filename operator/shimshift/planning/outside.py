"""Nodes as they really are: containers Docker runs outside the kubelet, and distributions shimshift
refuses.

The switch stops Docker under every `spec.docker` policy (`switch.sh`: the kubelet's containers, then
cri-docker and docker), so a registry or an etcd started with `docker run` stops with it; that is a
blocker unless `spec.dockerOutsideContainers` is Stop, and then the plan lists them and says what
becomes of them. RKE1 nodes (the kubelet is itself a Docker container) and k3s/RKE2 nodes (their own
embedded containerd) are refused with their supported path. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from shimshift.model.facts import Distribution, NodeFacts, OutsideContainer
from shimshift.model.spec import DockerPolicy, NodeMigrationSpec, OutsideContainersPolicy
from shimshift.planning.findings import Finding, Level, name_some

#: restart policies under which dockerd starts a container again when dockerd itself starts
RESTARTING = frozenset({"always", "unless-stopped"})

_REFUSED: Mapping[Distribution, tuple[str, str, str]] = {
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


def _describe(c: OutsideContainer) -> str:
    restart = f", restart {c.restart_policy}" if c.restart_policy and c.restart_policy != "no" else ""
    return f"{c.name} ({c.image}{restart})"


def _listed(facts: NodeFacts, limit: int = 5) -> str:
    """`a (registry:2, restart always), b (...) and 7 more`, counting the ones the facts only count."""
    names = [_describe(c) for c in facts.outside_containers]
    hidden = max(0, len(names) - limit) + facts.outside_containers_more
    return ", ".join(names[:limit]) + (f" and {hidden} more" if hidden else "")


def _fate(spec: NodeMigrationSpec, facts: NodeFacts) -> str:
    """What the switch really does to them, per spec.docker and the node's live-restore."""
    live_restore = bool((facts.daemon_json or {}).get("live-restore") is True)
    stops = (
        "the switch stops Docker, and with live-restore set in daemon.json they keep running without a "
        "dockerd (no restarts, no logs through Docker) until the node reboots"
        if live_restore
        else "the switch stops Docker and they stop with it"
    )
    restarting = [c.name for c in facts.outside_containers if c.restart_policy in RESTARTING]
    if spec.docker == DockerPolicy.STOP:
        return f"{stops}; spec.docker Stop disables Docker once the node verified, so they stay stopped"
    back = (
        f"; {name_some(restarting)} (restart policy always or unless-stopped) start again whenever Docker "
        "does"
        if restarting
        else ""
    )
    return (
        f"{stops}; spec.docker Keep leaves Docker enabled, so it starts again at boot (or through "
        f"docker.socket){back}, next to containerd"
    )


def check_outside(spec: NodeMigrationSpec, facts: NodeFacts) -> list[Finding]:
    """The node's refused distribution, else its containers outside the kubelet."""
    node = facts.node
    if facts.distribution is not None:
        code, what, advice = _REFUSED[facts.distribution]
        evidence = f" ({facts.distribution_evidence})" if facts.distribution_evidence else ""
        return [Finding(code, Level.BLOCKER, f"{what}{evidence}", advice, node, facts.distribution.value)]
    count = len(facts.outside_containers) + facts.outside_containers_more
    if not count:
        return []
    listed = _listed(facts)
    fate = _fate(spec, facts)
    if spec.docker_outside_containers == OutsideContainersPolicy.STOP:
        return [
            Finding(
                "DockerContainersStopped",
                Level.WARNING,
                f"{count} container(s) Docker runs outside the kubelet: {listed}; {fate}",
                "spec.dockerOutsideContainers is Stop: whatever needs them must do without them",
                node,
            )
        ]
    return [
        Finding(
            "DockerContainersOutsideKubelet",
            Level.BLOCKER,
            f"{count} container(s) Docker runs outside the kubelet: {listed}; {fate}",
            "move them to static pods (/etc/kubernetes/manifests) or DaemonSets before migrating, or set "
            "spec.dockerOutsideContainers: Stop to migrate with them stopped",
            node,
        )
    ]
