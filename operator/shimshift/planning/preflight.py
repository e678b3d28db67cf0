"""Per-node checks from the facts probe: what would make a node's migration fail, and what to know.

Blockers are what the step machine would stop on: no facts, no containerd, a kubelet whose runtime
flags cannot be found, images that do not fit on the containerd root. Warnings and notes cover the
rest: unreadable facts, a node that is not Ready, an admin's cordon, the CRI plugin docker-ce disables,
the cgroup driver. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from shimshift.model import keys
from shimshift.model.facts import KubeletLayout, NodeFacts
from shimshift.model.killmode import containerd_kill_mode
from shimshift.model.kubeletunits import editable, live_exec_unit
from shimshift.model.spec import CgroupDriver, KubeletConfigMethod, NodeMigrationSpec
from shimshift.model.steporder import node_staging
from shimshift.planning.cluster import Node
from shimshift.planning.findings import Finding, Level
from shimshift.planning.outside import check_node_kind, check_outside
from shimshift.steps.images.fit import ImageSummary, human_bytes


@dataclass(frozen=True)
class NodeRuntime:
    """What the report shows about a node's runtimes."""

    docker_version: str | None
    containerd_version: str | None
    kubelet_version: str | None
    kubelet_layout: str
    kubelet_cgroup_driver: str | None
    docker_cgroup_driver: str | None
    containerd_cgroup: str  # what the new config will use, and why
    cri_enabled: bool | None


def cgroup_choice(spec: NodeMigrationSpec, facts: NodeFacts) -> str:
    """The containerd cgroup driver the migration sets, with its reason."""
    wanted = spec.containerd.cgroup_driver
    if wanted != CgroupDriver.AUTO:
        return f"{wanted.value} (spec.containerd.cgroupDriver)"
    kubelet = facts.kubelet.cgroup_driver.value if facts.kubelet.cgroup_driver else None
    if kubelet:
        return f"{kubelet} (matches the kubelet's cgroupDriver)"
    if facts.docker_cgroup_driver:
        return f"{facts.docker_cgroup_driver} (matches Docker's; the kubelet's is not set)"
    return "cgroupfs (kubelet default; neither the kubelet nor Docker sets one)"


def node_runtime(spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> NodeRuntime:
    return NodeRuntime(
        docker_version=facts.docker_version,
        containerd_version=facts.containerd_version,
        kubelet_version=facts.kubelet.version or node.kubelet_version or None,
        kubelet_layout=facts.kubelet.layout.value,
        kubelet_cgroup_driver=facts.kubelet.cgroup_driver.value if facts.kubelet.cgroup_driver else None,
        docker_cgroup_driver=facts.docker_cgroup_driver,
        containerd_cgroup=cgroup_choice(spec, facts),
        cri_enabled=facts.cri_enabled,
    )


def check_node(spec: NodeMigrationSpec, node: Node, facts: NodeFacts | None) -> list[Finding]:
    """Findings about `node` that come from the Node object and its facts (not from its pods)."""
    name = node.name
    out: list[Finding] = []
    if not node.ready:
        out.append(
            Finding(
                "NodeNotReady",
                Level.WARNING,
                "the node is not Ready now; verification after the switch waits for Ready",
                "find out why before migrating it",
                name,
            )
        )
    if node.unschedulable:
        out.append(
            Finding(
                "AdminCordoned",
                Level.INFO,
                "the node is already cordoned; it stays cordoned after its migration",
                "",
                name,
            )
        )
    out += check_node_kind(node)  # Windows, OpenShift: refused whatever the facts say
    socket = node.annotations.get(keys.CRI_SOCKET_ANNOTATION)
    if (
        socket is not None
        and socket != spec.kubelet.runtime_endpoint
        and not spec.kubelet.update_cri_socket_annotation
    ):
        out.append(
            Finding(
                "KubeadmCriSocketStale",
                Level.WARNING,
                f"kubeadm's Node annotation {keys.CRI_SOCKET_ANNOTATION} stays {socket} "
                "(spec.kubelet.updateCriSocketAnnotation is false): the next kubeadm upgrade on this node "
                "talks to that socket, not containerd (and without the annotation, with Docker's socket "
                'still there, fails with "found multiple CRI endpoints")',
                f"set spec.kubelet.updateCriSocketAnnotation to true, or set the annotation to "
                f"{spec.kubelet.runtime_endpoint} after the migration",
                name,
                keys.CRI_SOCKET_ANNOTATION,
            )
        )
    if facts is None:
        out.append(
            Finding(
                "NoFacts",
                Level.BLOCKER,
                "no facts for this node: its containerd config, kubelet edit and images cannot be planned",
                f"probe it (shimshift snapshot with SSH access) or add facts/{name}.json to the snapshot",
                name,
            )
        )
        return out
    for what, why in sorted(facts.unreadable.items()):
        out.append(
            Finding(
                "FactUnreadable",
                Level.WARNING,
                f"the probe could not read {what}: {why}",
                "check SSH user rights (spec.ssh.sudo) or the path",
                name,
                what,
            )
        )
    if not facts.containerd_version:
        out.append(
            Finding(
                "NoContainerd",
                Level.BLOCKER,
                "containerd is not installed: shimshift switches to the containerd already under Docker",
                "install the containerd package your Docker uses (containerd.io or containerd)",
                name,
            )
        )
    exec_unit = live_exec_unit(facts.kubelet.units)
    if (
        facts.kubelet.layout == KubeletLayout.UNKNOWN
        and spec.kubelet.config_method == KubeletConfigMethod.AUTO
        and not (exec_unit and editable(exec_unit))  # a hand-rolled unit the switch puts the flags in
    ):
        out.append(
            Finding(
                "KubeletLayoutUnknown",
                Level.BLOCKER,
                "the probe found no kubelet flags file or KubeletConfiguration that sets the runtime, and no "
                "kubelet unit under /etc/systemd/system whose ExecStart= the switch could give it",
                "set spec.kubelet.configMethod to the file your kubelet reads",
                name,
            )
        )
    if facts.cri_enabled is False:
        out.append(
            Finding(
                "CriPluginDisabled",
                Level.INFO,
                'containerd runs with disabled_plugins = ["cri"] (docker-ce default); the config enables it',
                "",
                name,
            )
        )
    if facts.cri_dockerd:
        out.append(
            Finding(
                "CriDockerd",
                Level.INFO,
                "the kubelet uses cri-dockerd; it is left installed and no longer used",
                "",
                name,
            )
        )
    out += check_outside(spec, facts)
    staging, why = node_staging(spec.staging, facts)
    if why:
        mode = containerd_kill_mode(facts)
        out.append(
            Finding(
                "StagingAfterCordon",
                Level.WARNING,
                why,
                f"to stage this node while it serves, make containerd.service stop with KillMode=process "
                f"(as containerd and docker-ce ship it; e.g. a drop-in with [Service] KillMode=process), "
                f"or set spec.staging {staging.value} to run every node that way; shimshift does not "
                "change the unit",
                name,
                mode.source or mode.unit_file or "containerd.service",
            )
        )
    kubelet_cg = facts.kubelet.cgroup_driver.value if facts.kubelet.cgroup_driver else None
    if kubelet_cg and facts.docker_cgroup_driver and kubelet_cg != facts.docker_cgroup_driver:
        out.append(
            Finding(
                "CgroupDriverMismatch",
                Level.WARNING,
                f"the kubelet uses cgroupDriver {kubelet_cg} but Docker {facts.docker_cgroup_driver}; "
                "containerd follows the kubelet",
                "check that the kubelet runs as you expect before migrating",
                name,
            )
        )
    return out


def check_images(node: str, plan: ImageSummary) -> list[Finding]:
    if not plan.migrate:
        return [
            Finding(
                "ImagesNotMigrated",
                Level.WARNING,
                "spec.images.migrate is false: every pod pulls its images again after the switch",
                "keep it true on nodes that cannot reach their registries",
                node,
            )
        ]
    if plan.blocked:
        code = "DiskFreeUnknown" if plan.free_bytes is None else "ImagesExceedDisk"
        return [
            Finding(
                code,
                Level.BLOCKER,
                f"{plan.count} images ({human_bytes(plan.bytes)} unpacked): the images step would stop "
                f"before moving a byte: {plan.blocked}",
                "free space on the containerd root (docker image prune for unused images) or exclude images "
                "with spec.images.exclude",
                node,
            )
        ]
    return []
