"""Workloads that depend on Docker Engine on the node, found in the pod specs before anything moves.

After the switch the kubelet talks to containerd: a pod that mounts `docker.sock` (or a directory that
contains it) reaches a Docker that no longer runs its neighbours (or no Docker at all once
`spec.docker` is Stop); log shippers reading `/var/lib/docker/containers` find nothing new
(containerd's kubelet writes CRI-format logs under `/var/log/pods`); monitoring keyed on Docker's
container labels loses them. Findings are grouped by workload (a DaemonSet is one finding, not one per
node) and each carries a severity and what to do. Pure.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from shimshift.model.spec import DockerPolicy
from shimshift.planning.cluster import Container, Controller, Pod
from shimshift.planning.drain import describe_controller


class Severity(StrEnum):
    HIGH = "high"  # breaks at the switch
    MEDIUM = "medium"  # degrades silently (logs, metrics)
    LOW = "low"  # keeps working; worth a look


class DependencyKind(StrEnum):
    DOCKER_SOCKET = "DockerSocket"
    SOCKET_PARENT_DIR = "SocketParentDirectory"
    DOCKER_LOGS = "DockerLogFiles"
    DOCKER_DATA = "DockerDataRoot"
    DOCKER_IN_DOCKER = "DockerInDocker"
    DOCKER_CLIENT = "PrivilegedDockerClient"
    DOCKER_LABELS = "DockerLabelMonitoring"


SOCKETS = frozenset({"/var/run/docker.sock", "/run/docker.sock"})
#: Directories a hostPath can name that contain docker.sock (via /var/run -> /run too).
SOCKET_PARENTS = frozenset({"/", "/var", "/var/run", "/run"})
DOCKER_LOG_DIRS = frozenset({"/var/lib/docker/containers"})
DOCKER_DATA_DIRS = frozenset({"/var/lib/docker"})

_DIND_IMAGE = re.compile(r"(^|/)(docker:[^/]*dind[^/]*|dind[^/:]*(:[^/]*)?)$")
_DOCKER_CLI_IMAGE = re.compile(r"(^|/)docker(:[^/]*)?$")
_DOCKER_COMMAND = re.compile(r"(^|[\s/;&|])docker(\s|$)")
_CADVISOR = re.compile(r"cadvisor")
_LABEL_HINT = re.compile(r"docker_only|container_label_")
_LOG_SHIPPERS = re.compile(r"fluentd|fluent-bit|filebeat|promtail|vector|logstash|splunk|datadog|loki")

_ADVICE: Mapping[DependencyKind, str] = {
    DependencyKind.DOCKER_SOCKET: (
        "use the CRI socket (/run/containerd/containerd.sock) with crictl or the containerd client, "
        "or drop the dependency; Docker is stopped at the switch under every spec.docker policy and, "
        "if anything starts it again, it sees none of the pods"
    ),
    DependencyKind.SOCKET_PARENT_DIR: (
        "check what the pod does under that directory; if it uses docker.sock, move to the containerd "
        "socket (/run/containerd/containerd.sock) or the Kubernetes API"
    ),
    DependencyKind.DOCKER_LOGS: (
        "point the log shipper at /var/log/pods (and /var/log/containers) and switch its parser from "
        "Docker JSON to the CRI log format"
    ),
    DependencyKind.DOCKER_DATA: (
        "nothing new is written under /var/lib/docker after the switch; read containerd's state through "
        "the CRI, or drop the mount"
    ),
    DependencyKind.DOCKER_IN_DOCKER: (
        "it runs its own dockerd and keeps working on containerd (it stays privileged); consider "
        "rootless BuildKit, kaniko or buildah for image builds"
    ),
    DependencyKind.DOCKER_CLIENT: (
        "replace `docker` calls with `crictl` (CRI) or `nerdctl`/`ctr -n k8s.io` (containerd) "
        "before migrating"
    ),
    DependencyKind.DOCKER_LABELS: (
        "rewrite dashboards and alerts that use container_label_io_kubernetes_* to the kubelet's "
        "cAdvisor labels (namespace, pod, container); run cAdvisor without --docker_only"
    ),
}


#: Agents that read the container runtime through its socket, by image, and the setting each vendor
#: documents for containerd (the socket is /run/containerd/containerd.sock after the switch).
_AGENTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"(^|/)(datadoghq|datadog)/(agent|cluster-agent)(:|@|$)"),
        "Datadog Agent",
        "mount /run/containerd/containerd.sock into the agent and set DD_CRI_SOCKET_PATH to it "
        "(Helm: datadog.criSocketPath), which also turns on its containerd check",
    ),
    (
        re.compile(r"(^|/)falco(-no-driver|-distroless)?(:|@|$)"),
        "Falco",
        "enable its containerd collector (Helm: collectors.containerd.enabled=true, which runs falco "
        "--cri /run/containerd/containerd.sock) and disable the docker one (collectors.docker.enabled=false)",
    ),
    (
        re.compile(r"(^|/)twistlock/defender(:|@|$)"),
        "Prisma Cloud Defender",
        "deploy the Defender DaemonSet again with the container runtime containerd (Console: Manage > "
        "Defenders, or its Helm chart's containerRuntime)",
    ),
    (
        re.compile(r"(^|/)cadvisor(:|@|$)"),
        "cAdvisor",
        "run it with --containerd=/run/containerd/containerd.sock (its default) and that socket mounted",
    ),
    (
        re.compile(r"(^|/)(dynatrace|linux)/oneagent(:|@|$)"),
        "Dynatrace OneAgent",
        "run a OneAgent version that monitors containerd (Dynatrace's containerd support) and move "
        "dashboards and alerts from Docker-only to generic container metrics (Dynatrace's guide "
        '"Migrating from Docker-only to generic container metrics")',
    ),
    (
        re.compile(r"(^|/)sysdig/agent(-slim|-kmodule)?(:|@|$)"),
        "Sysdig Agent",
        "let it reach /run/containerd/containerd.sock (its Helm chart mounts the host's /var/run) and, "
        "where its dragent.yaml sets cri.socket_path, point that at containerd's socket",
    ),
    (
        re.compile(r"(^|/)aquasec/(enforcer|kube-enforcer)(:|@|$)"),
        "Aqua Enforcer",
        "nothing of its own to change: Aqua's enforcer works on containerd as it is (per the Kubernetes "
        "documentation's agent list); check it is Ready on the migrated node",
    ),
    (
        re.compile(r"(^|/)signalfx/signalfx-agent(:|@|$)"),
        "SignalFx Smart Agent",
        "remove the docker-container-stats monitor (on containerd it reports wrong metrics, or none once "
        "Docker is gone) and enable kubelet-metrics; the metric names change: review alerts and dashboards",
    ),
    (
        re.compile(r"(^|/)(verizondigital|yahoo)/kubectl-flame(:|@|$)"),
        "kubectl-flame",
        "it supports Docker only (yahoo/kubectl-flame#51): its profiling pods fail on the migrated "
        "nodes; profile them another way",
    ),
)


_AGENT_SETTINGS = {product: setting for _, product, setting in _AGENTS}


@lru_cache(maxsize=1 << 12)
def agent_of(image: str) -> tuple[str, str] | None:
    """(product, what to change) for a known agent image that reads the runtime's socket."""
    for pattern, product, setting in _AGENTS:
        if pattern.search(image):
            return product, setting
    return None


@dataclass(frozen=True)
class DockerDependency:
    kind: DependencyKind
    severity: Severity
    namespace: str
    workload: str  # "DaemonSet/fluentd", or "Pod/name" for a pod without a controller
    evidence: str  # e.g. "container shipper mounts hostPath /var/lib/docker/containers"
    pods: int
    nodes: tuple[str, ...]  # the nodes it runs on (in the plan's node set or not)
    agent: str | None = None  # the known agent it is (`agent_of`), whose own setting the advice gives

    @property
    def advice(self) -> str:
        setting = _AGENT_SETTINGS.get(self.agent or "")
        if setting is not None and self.kind in (
            DependencyKind.DOCKER_SOCKET,
            DependencyKind.SOCKET_PARENT_DIR,
            DependencyKind.DOCKER_LABELS,
        ):
            return f"{self.agent}: {setting}; {_ADVICE[self.kind]}"
        return _ADVICE[self.kind]

    @property
    def subject(self) -> str:
        return f"{self.namespace}/{self.workload}"


def _norm(path: str) -> str:
    clean = posixpath.normpath(path) if path else path
    return "/" if clean in ("//", "") else clean


def _host_path_kind(path: str) -> tuple[DependencyKind, Severity] | None:
    if path in SOCKETS:
        return DependencyKind.DOCKER_SOCKET, Severity.HIGH
    if path in SOCKET_PARENTS:
        # /run and /var/run hold little else than sockets; / and /var are mostly read for other things.
        return DependencyKind.SOCKET_PARENT_DIR, Severity.HIGH if path.endswith("run") else Severity.MEDIUM
    if path in DOCKER_LOG_DIRS:
        return DependencyKind.DOCKER_LOGS, Severity.MEDIUM
    if path in DOCKER_DATA_DIRS:
        return DependencyKind.DOCKER_DATA, Severity.MEDIUM
    return None


def _mounted_paths(pod: Pod, container: Container) -> list[str]:
    if not container.mounts:
        return []
    host = {v.name: _norm(v.host_path) for v in pod.volumes if v.host_path is not None}
    return [host[name] for name, _ in container.mounts if name in host]


@lru_cache(maxsize=1 << 14)
def _hints(image: str, command: tuple[str, ...]) -> tuple[bool, bool, bool]:
    """(runs dockerd inside, runs the docker client if privileged, reads Docker labels) for a
    container's image and command; remembered, as a workload's pods repeat both on many nodes."""
    cmd = " ".join(command)
    return (
        _DIND_IMAGE.search(image) is not None,
        _DOCKER_CLI_IMAGE.search(image) is not None or _DOCKER_COMMAND.search(cmd) is not None,
        _CADVISOR.search(image) is not None or _LABEL_HINT.search(cmd) is not None,
    )


def pod_dependencies(pod: Pod) -> list[tuple[DependencyKind, Severity, str]]:
    """(kind, severity, evidence) for every Docker dependency in one pod's spec."""
    return [(kind, severity, evidence) for kind, severity, evidence, _ in _dependencies(pod)]


def _dependencies(pod: Pod) -> list[tuple[DependencyKind, Severity, str, str | None]]:
    """`pod_dependencies`, each with the known agent (`agent_of`) of the container it was found in."""
    found: list[tuple[DependencyKind, Severity, str, str | None]] = []
    for c in pod.containers:
        agent = agent_of(c.image)
        product = agent[0] if agent else None
        paths = _mounted_paths(pod, c)
        for path in paths:
            hit = _host_path_kind(path)
            if hit is not None:
                kind, severity = hit
                if kind == DependencyKind.DOCKER_DATA and _LOG_SHIPPERS.search(c.image):
                    kind = DependencyKind.DOCKER_LOGS
                what = f" ({product}, {c.image})" if product else ""
                found.append((kind, severity, f"container {c.name}{what} mounts hostPath {path}", product))
        dind, docker_client, labels = _hints(c.image, c.command)
        if dind:
            found.append(
                (
                    DependencyKind.DOCKER_IN_DOCKER,
                    Severity.LOW,
                    f"container {c.name} runs {c.image} (dockerd inside)",
                    None,
                )
            )
        elif c.privileged and docker_client:
            found.append(
                (
                    DependencyKind.DOCKER_CLIENT,
                    Severity.HIGH,
                    f"privileged container {c.name} ({c.image}) runs the docker client",
                    None,
                )
            )
        if labels:
            found.append(
                (
                    DependencyKind.DOCKER_LABELS,
                    Severity.MEDIUM,
                    f"container {c.name} ({c.image}) reads Docker container labels",
                    product,
                )
            )
    return found


def find_docker_dependencies(
    pods: Sequence[Pod], controllers: Mapping[tuple[str, str, str], Controller], nodes_in_plan: frozenset[str]
) -> tuple[DockerDependency, ...]:
    """Dependencies of pods on the planned nodes, one entry per (workload, kind, evidence)."""
    groups: dict[tuple[str, str, DependencyKind, str], tuple[Severity, int, set[str]]] = {}
    agents: dict[tuple[str, str, DependencyKind, str], str] = {}
    for pod in pods:
        if pod.node not in nodes_in_plan:
            continue
        deps = _dependencies(pod)
        if not deps:
            continue
        workload, _ = describe_controller(pod, controllers)
        workload = workload or f"Pod/{pod.name}"
        for kind, severity, evidence, product in deps:
            key = (pod.namespace, workload, kind, evidence)
            if product is not None:
                agents[key] = product
            _, count, nodes = groups.get(key, (severity, 0, set()))
            nodes.add(pod.node)
            groups[key] = (severity, count + 1, nodes)
    order = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}
    deps_out = [
        DockerDependency(
            kind,
            severity,
            ns,
            workload,
            evidence,
            count,
            tuple(sorted(nodes)),
            agents.get((ns, workload, kind, evidence)),
        )
        for (ns, workload, kind, evidence), (severity, count, nodes) in groups.items()
    ]
    return tuple(
        sorted(deps_out, key=lambda d: (order[d.severity], d.namespace, d.workload, d.kind, d.evidence))
    )


def socket_note(policy: DockerPolicy) -> str:
    """What happens to Docker and /var/run/docker.sock under `spec.docker`, for the report: what the
    switch step does under every policy (`switch.sh` stops docker and cri-docker) and what the commit
    step adds under Stop once the rollback window is committed (`docker_disable.sh`)."""
    switch = (
        "The switch stops Docker under every spec.docker policy (the docker and cri-docker services, "
        "after Docker's Kubernetes containers)"
    )
    if policy == DockerPolicy.KEEP:
        return (
            f"{switch}. Under Keep that is all: Docker stays installed and enabled with /var/lib/docker "
            "intact, so a rollback works; it starts again at the next boot (and, where docker.socket "
            "is enabled, when something connects to /var/run/docker.sock) and then runs none of the pods"
        )
    return (
        f"{switch}. Once the rollback window is committed (spec.commit), the commit step (spec.docker "
        f"{policy.value}) also disables docker, docker.socket and cri-docker so they stay stopped at boot, "
        "and deletes /var/run/docker.sock: a pod mounting it fails to start (hostPath type Socket) or gets "
        "an empty directory; /var/lib/docker stays"
    )
