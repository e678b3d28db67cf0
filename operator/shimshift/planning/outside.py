"""Nodes as they really are: containers Docker runs outside the kubelet, and distributions shimshift
refuses.

The switch stops Docker under every `spec.docker` policy (`switch.sh`: the kubelet's containers, then
cri-docker and docker), so a registry or an etcd started with `docker run` stops with it; that is a
blocker unless `spec.dockerOutsideContainers` is Stop, and then the plan lists them and says what
becomes of them. RKE1 nodes (the kubelet is itself a Docker container) and k3s/RKE2 nodes (their own
embedded containerd) are refused with their supported path, and so are Windows and OpenShift nodes
(from their Node object). In Migrate mode the facts step refuses the same nodes in the same words
(`steps.facts.refuse`). Pure.
"""

from __future__ import annotations

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import DockerPolicy, NodeMigrationSpec, OutsideContainersPolicy
from shimshift.planning.cluster import Node
from shimshift.planning.findings import Finding, Level, name_some
from shimshift.steps.facts.refuse import BLOCK_ADVICE, REFUSED, listed, node_kind, outside_count

#: restart policies under which dockerd starts a container again when dockerd itself starts
RESTARTING = frozenset({"always", "unless-stopped"})


def _fate(spec: NodeMigrationSpec, facts: NodeFacts) -> str:
    """What the switch really does to them, per spec.docker and the node's live-restore."""
    live_restore = bool((facts.daemon_json or {}).get("live-restore") is True)
    stops = (
        "the switch stops Docker, and with live-restore set in daemon.json they keep running without a "
        "dockerd until the node reboots (no restarts; nothing reads their output, so one that logs a lot "
        "blocks once its log pipe is full)"
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


def check_node_kind(node: Node) -> list[Finding]:
    """A Windows or OpenShift node, refused from its Node object (the facts step: before any SSH)."""
    kind = node_kind(node.labels, node.annotations, node.operating_system)
    if kind is None:
        return []
    (code, what, advice), evidence = kind
    return [Finding(code, Level.BLOCKER, f"{what} ({evidence})", advice, node.name, evidence)]


def check_outside(spec: NodeMigrationSpec, facts: NodeFacts) -> list[Finding]:
    """The node's refused distribution, else its containers outside the kubelet."""
    node = facts.node
    if facts.distribution is not None:
        code, what, advice = REFUSED[facts.distribution]
        evidence = f" ({facts.distribution_evidence})" if facts.distribution_evidence else ""
        return [Finding(code, Level.BLOCKER, f"{what}{evidence}", advice, node, facts.distribution.value)]
    count = outside_count(facts)
    if not count:
        return []
    names = listed(facts)
    fate = _fate(spec, facts)
    if spec.docker_outside_containers == OutsideContainersPolicy.STOP:
        return [
            Finding(
                "DockerContainersStopped",
                Level.WARNING,
                f"{count} container(s) Docker runs outside the kubelet: {names}; {fate}",
                "spec.dockerOutsideContainers is Stop: whatever needs them must do without them",
                node,
            )
        ]
    return [
        Finding(
            "DockerContainersOutsideKubelet",
            Level.BLOCKER,
            f"{count} container(s) Docker runs outside the kubelet: {names}; {fate}",
            BLOCK_ADVICE,
            node,
        )
    ]
