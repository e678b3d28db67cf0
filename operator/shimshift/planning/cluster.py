"""The slice of the cluster a plan needs, as frozen values parsed from raw API objects.

Raw objects come from a snapshot directory or from the API (already as plain dicts); parsing keeps only
the fields planning reads, so 150,000 pods fit comfortably in memory. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shimshift.model import keys
from shimshift.model.errors import Problem, ValidationError
from shimshift.model.spec import IntOrPercent, LabelRequirement, LabelSelector

#: Annotation kubelet puts on the API mirror of a static pod; such pods cannot be evicted.
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def terminal(self) -> bool:
        return self in (PodPhase.SUCCEEDED, PodPhase.FAILED)


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()
    privileged: bool = False
    mounts: tuple[tuple[str, str], ...] = ()  # (volume name, mount path)
    env_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Volume:
    name: str
    host_path: str | None = None
    empty_dir: bool = False


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str
    labels: Mapping[str, str] = field(default_factory=dict)
    owner: OwnerRef | None = None  # the controller reference, if any
    phase: PodPhase = PodPhase.RUNNING
    ready: bool = True
    mirror: bool = False
    deleting: bool = False
    containers: tuple[Container, ...] = ()
    volumes: tuple[Volume, ...] = ()
    host_pid: bool = False
    grace_period: int = 30

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_empty_dir(self) -> bool:
        return any(v.empty_dir for v in self.volumes)


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = True
    runtime_version: str = ""  # status.nodeInfo.containerRuntimeVersion, e.g. docker://20.10.24
    kubelet_version: str = ""

    @property
    def control_plane(self) -> bool:
        return any(label in self.labels for label in keys.CONTROL_PLANE_LABELS)

    @property
    def runtime(self) -> str:
        """`docker`, `containerd`, `cri-o`, ... (the scheme of containerRuntimeVersion)."""
        return self.runtime_version.split("://", 1)[0] if "://" in self.runtime_version else ""


@dataclass(frozen=True)
class Controller:
    """A workload controller (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job...)."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    replicas: int | None = None  # the scale the disruption controller uses; None for DaemonSets
    owner: OwnerRef | None = None  # e.g. a ReplicaSet's Deployment

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


class UnhealthyPodEvictionPolicy(StrEnum):
    IF_HEALTHY_BUDGET = "IfHealthyBudget"
    ALWAYS_ALLOW = "AlwaysAllow"


@dataclass(frozen=True)
class Pdb:
    namespace: str
    name: str
    selector: LabelSelector | None  # None = selects nothing (policy/v1: a null selector)
    min_available: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None
    unhealthy_pod_eviction_policy: UnhealthyPodEvictionPolicy = UnhealthyPodEvictionPolicy.IF_HEALTHY_BUDGET

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Cluster:
    """Everything the planner reads from the API, indexed the way it reads it."""

    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    pdbs: tuple[Pdb, ...]
    controllers: tuple[Controller, ...]

    def pods_by_node(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = {}
        for pod in self.pods:
            out.setdefault(pod.node, []).append(pod)
        return out

    def controller_index(self) -> dict[tuple[str, str, str], Controller]:
        return {(c.namespace, c.kind, c.name): c for c in self.controllers}


def _owner(meta: Mapping[str, Any]) -> OwnerRef | None:
    refs = meta.get("ownerReferences")
    if not refs:
        return None
    for ref in refs:
        if ref.get("controller"):
            return OwnerRef(str(ref.get("kind", "")), str(ref.get("name", "")), str(ref.get("uid", "")))
    return None


def _container(raw: Mapping[str, Any]) -> Container:
    # 150,000 pods: the optional lists are mostly absent, so each is only walked when present
    sc = raw.get("securityContext") or {}
    command, args, mounts, env = raw.get("command"), raw.get("args"), raw.get("volumeMounts"), raw.get("env")
    return Container(
        name=str(raw.get("name", "")),
        image=str(raw.get("image", "")),
        command=tuple(map(str, command or ())) + tuple(map(str, args or ())) if command or args else (),
        privileged=bool(sc.get("privileged", False)),
        mounts=tuple((str(m.get("name", "")), str(m.get("mountPath", ""))) for m in mounts) if mounts else (),
        env_names=tuple(str(e.get("name", "")) for e in env) if env else (),
    )


def _volume(raw: Mapping[str, Any]) -> Volume:
    host = raw.get("hostPath")
    return Volume(
        name=str(raw.get("name", "")),
        host_path=str(host.get("path", "")) if isinstance(host, Mapping) else None,
        empty_dir="emptyDir" in raw,
    )


#: PodPhase by its value, for parsing.
_PHASES: Mapping[str, PodPhase] = {p.value: p for p in PodPhase}


def _ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def parse_pod(raw: Mapping[str, Any]) -> Pod:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    phase = status.get("phase", "Running")
    init, main, volumes = spec.get("initContainers"), spec.get("containers"), spec.get("volumes")
    return Pod(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        node=str(spec.get("nodeName", "")),
        labels=dict(meta.get("labels") or {}),
        owner=_owner(meta),
        phase=_PHASES.get(phase, PodPhase.UNKNOWN) if isinstance(phase, str) else PodPhase.UNKNOWN,
        ready=_ready(status),
        mirror=MIRROR_ANNOTATION in (meta.get("annotations") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
        containers=(tuple(map(_container, init)) if init else ()) + tuple(map(_container, main or ())),
        volumes=tuple(map(_volume, volumes)) if volumes else (),
        host_pid=bool(spec.get("hostPID", False)),
        grace_period=int(spec.get("terminationGracePeriodSeconds", 30)),
    )


def parse_node(raw: Mapping[str, Any]) -> Node:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    info = status.get("nodeInfo") or {}
    return Node(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        unschedulable=bool(spec.get("unschedulable", False)),
        ready=_ready(status),
        runtime_version=str(info.get("containerRuntimeVersion", "")),
        kubelet_version=str(info.get("kubeletVersion", "")),
    )


def _int_or_percent(raw: Any, path: str) -> IntOrPercent | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError([Problem(path, f"must be an integer or a percentage, not {raw!r}")])
    if isinstance(raw, str) and not (raw.endswith("%") and raw[:-1].isdigit()):
        if raw.isdigit():
            return IntOrPercent(int(raw), False)
        raise ValidationError([Problem(path, f"must be an integer or a percentage like 50%, not {raw!r}")])
    return IntOrPercent.parse(raw)


def parse_pdb(raw: Mapping[str, Any]) -> Pdb:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    where = f"PodDisruptionBudget {meta.get('namespace', 'default')}/{meta.get('name', '')}: spec"
    selector = spec.get("selector")
    return Pdb(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        selector=None
        if selector is None
        else LabelSelector(
            match_labels=dict(selector.get("matchLabels") or {}),
            match_expressions=tuple(
                LabelRequirement(str(e["key"]), str(e["operator"]), tuple(e.get("values") or ()))
                for e in selector.get("matchExpressions") or ()
            ),
        ),
        min_available=_int_or_percent(spec.get("minAvailable"), f"{where}.minAvailable"),
        max_unavailable=_int_or_percent(spec.get("maxUnavailable"), f"{where}.maxUnavailable"),
        unhealthy_pod_eviction_policy=UnhealthyPodEvictionPolicy(
            spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        ),
    )


def parse_controller(raw: Mapping[str, Any]) -> Controller:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    kind = str(raw.get("kind", ""))
    replicas: int | None
    if kind == "DaemonSet":
        replicas = None
    elif kind == "Job":
        replicas = int(spec.get("parallelism", 1))
    else:
        replicas = int(spec.get("replicas", 1))
    return Controller(
        kind=kind,
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        replicas=replicas,
        owner=_owner(meta),
    )


def build_cluster(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    pdbs: Iterable[Mapping[str, Any]],
    controllers: Iterable[Mapping[str, Any]],
) -> Cluster:
    """Parse raw API objects (dicts as `kubectl get -o json` prints them) into a Cluster."""
    return Cluster(
        nodes=tuple(parse_node(n) for n in nodes),
        pods=tuple(parse_pod(p) for p in pods),
        pdbs=tuple(parse_pdb(p) for p in pdbs),
        controllers=tuple(parse_controller(c) for c in controllers),
    )
