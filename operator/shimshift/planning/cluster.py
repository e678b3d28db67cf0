"""The slice of the cluster a plan needs, as frozen values parsed from raw API objects.

Raw objects come from a snapshot directory or from the API (already as plain dicts); parsing keeps only
the fields planning reads, so 150,000 pods fit comfortably in memory. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shimshift.model import keys
from shimshift.model.errors import Problem, ValidationError
from shimshift.model.gpuoperator import GpuOperator, gpu_operators
from shimshift.model.spec import IntOrPercent, LabelRequirement, LabelSelector
from shimshift.planning.rawshape import (
    ShapeError,
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    as_str_map,
    as_strs,
    each,
)

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
class Taint:
    key: str
    value: str = ""
    effect: str = ""  # NoSchedule, PreferNoSchedule, NoExecute


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal or Exists
    value: str = ""
    effect: str = ""  # "": every effect


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
    #: why its first waiting container waits, in kubelet's words ("container proxy waiting:
    #: ErrImageNeverPull (...)"); "" when none waits
    waiting: str = ""
    #: its emptyDir volumes named in keys.DISPOSABLE_EMPTY_DIRS: their data may be lost
    disposable: frozenset[str] = frozenset()
    #: the runtimes its containers' statuses name (the scheme of each containerID: "docker",
    #: "containerd"); a status the kubelet wrote before a switch still names the old one
    runtimes: frozenset[str] = frozenset()
    #: what rules nodes out for its scheduling (`planning.operatorpod`): spec.nodeSelector, the terms of
    #: its required node affinity (any term; each of its requirements, a `metadata.name` key from
    #: matchFields), spec.tolerations
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity_terms: tuple[tuple[LabelRequirement, ...], ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_empty_dir(self) -> bool:
        """An emptyDir whose data the drain would lose (those named disposable do not count)."""
        return any(v.empty_dir and v.name not in self.disposable for v in self.volumes)


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = True
    runtime_version: str = ""  # status.nodeInfo.containerRuntimeVersion, e.g. docker://20.10.24
    kubelet_version: str = ""
    operating_system: str = ""  # status.nodeInfo.operatingSystem: linux, windows
    #: the Ready condition as the node reports it: status ("True", "False", "Unknown"; "" when it has
    #: none), reason and message (kubelet's "container runtime network not ready: ...")
    ready_status: str = ""
    ready_reason: str = ""
    ready_message: str = ""
    #: spec.podCIDRs (else spec.podCIDR): the address ranges the node's pods get
    pod_cidrs: tuple[str, ...] = ()
    taints: tuple[Taint, ...] = ()

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
class RuntimeClass:
    """A RuntimeClass (node.k8s.io/v1): the CRI runtime `handler` its pods ask the node's runtime for,
    on the nodes its `scheduling.nodeSelector` matches (every node when it has none)."""

    name: str
    handler: str
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def applies_to(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.node_selector.items())


@dataclass(frozen=True)
class Cluster:
    """Everything the planner reads from the API, indexed the way it reads it."""

    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    pdbs: tuple[Pdb, ...]
    controllers: tuple[Controller, ...]
    runtime_classes: tuple[RuntimeClass, ...] = ()
    #: the Deployments that run NVIDIA's GPU operator (`model.gpuoperator`)
    gpu_operators: tuple[GpuOperator, ...] = ()

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
    owners = [o for o in each(_owner_ref, refs, "metadata.ownerReferences") if o is not None]
    return owners[0] if owners else None


def _owner_ref(raw: Any) -> OwnerRef | None:
    ref = as_map(raw, "")
    if not as_bool(ref.get("controller"), "controller"):
        return None
    return OwnerRef(
        as_str(ref.get("kind"), "kind"), as_str(ref.get("name"), "name"), as_str(ref.get("uid"), "uid")
    )


def _container(raw: Any) -> Container:
    # 150,000 pods: the optional lists are mostly absent, so each is only walked when present
    c = as_map(raw, "")
    sc = c.get("securityContext")
    privileged = False
    if sc:
        privileged = as_bool(as_map(sc, "securityContext").get("privileged"), "securityContext.privileged")
    command, args, mounts, env = c.get("command"), c.get("args"), c.get("volumeMounts"), c.get("env")
    name, image = c.get("name"), c.get("image")
    return Container(
        name=name if type(name) is str else as_str(name, "name"),
        image=image if type(image) is str else as_str(image, "image"),
        command=as_strs(command, "command") + as_strs(args, "args") if command or args else (),
        privileged=privileged,
        mounts=each(_mount, mounts, "volumeMounts") if mounts else (),
        env_names=each(_env_name, env, "env") if env else (),
    )


def _mount(raw: Any) -> tuple[str, str]:
    m = as_map(raw, "")
    return as_str(m.get("name"), "name"), as_str(m.get("mountPath"), "mountPath")


def _env_name(raw: Any) -> str:
    return as_str(as_map(raw, "").get("name"), "name")


def _volume(raw: Any) -> Volume:
    v = as_map(raw, "")
    host = v.get("hostPath")
    return Volume(
        name=as_str(v.get("name"), "name"),
        host_path=as_str(as_map(host, "hostPath").get("path"), "hostPath.path") if host is not None else None,
        empty_dir="emptyDir" in v,
    )


#: PodPhase by its value, for parsing.
_PHASES: Mapping[str, PodPhase] = {p.value: p for p in PodPhase}


def _ready_condition(status: Mapping[str, Any]) -> tuple[str, str, str]:
    """The Ready condition's status, reason and message ("", "", "" when there is none; a field of
    another type reads as "")."""
    conditions = status.get("conditions")
    if not conditions:
        return "", "", ""
    for c in each(_condition, conditions, "status.conditions"):
        if c.get("type") == "Ready":
            return _text(c.get("status")), _text(c.get("reason")), _text(c.get("message"))
    return "", "", ""


def _condition(raw: Any) -> Mapping[str, Any]:
    return as_map(raw, "")


def _text(raw: Any) -> str:
    return raw if isinstance(raw, str) else ""


#: Characters of a waiting container's message kept (kubelet's pull errors run long).
WAITING_MESSAGE_MAX = 200


def _runtimes(status: Mapping[str, Any]) -> frozenset[str]:
    """The schemes of the containerIDs in a pod's container statuses (init containers too); a
    status without one (a container not started yet) or of another type names none."""
    found: set[str] = set()
    for key in ("initContainerStatuses", "containerStatuses"):
        statuses = status.get(key)
        for c in statuses if isinstance(statuses, list) else ():
            cid = _text(c.get("containerID")) if isinstance(c, Mapping) else ""
            if "://" in cid:
                found.add(cid.split("://", 1)[0])
    return frozenset(found)


def _waiting(status: Mapping[str, Any]) -> str:
    """`container <name> waiting: <reason> (<message>)` of the first container (init containers
    first) whose state is waiting with a reason; "" when none is (a field of another type reads as
    none)."""
    for key in ("initContainerStatuses", "containerStatuses"):
        statuses = status.get(key)
        for c in statuses if isinstance(statuses, list) else ():
            state = c.get("state") if isinstance(c, Mapping) else None
            waiting = state.get("waiting") if isinstance(state, Mapping) else None
            if not isinstance(waiting, Mapping) or not _text(waiting.get("reason")):
                continue
            message = " ".join(_text(waiting.get("message")).split())
            if len(message) > WAITING_MESSAGE_MAX:
                message = message[: WAITING_MESSAGE_MAX - 3] + "..."
            said = f"container {_text(c.get('name'))} waiting: {_text(waiting.get('reason'))}"
            return said + (f" ({message})" if message else "")
    return ""


def _object(raw: Any) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    """metadata, spec and status of a raw object, each checked to be an object."""
    obj = as_map(raw, "")
    return (
        as_map(obj.get("metadata"), "metadata"),
        as_map(obj.get("spec"), "spec"),
        as_map(obj.get("status"), "status"),
    )


def parse_pod(raw: Mapping[str, Any]) -> Pod:
    """A Pod from its raw object; a ShapeError names the field of the wrong type."""
    meta, spec, status = _object(raw)
    phase = status.get("phase", "Running")
    init, main, volumes = spec.get("initContainers"), spec.get("containers"), spec.get("volumes")
    name, node, labels = meta.get("name"), spec.get("nodeName"), meta.get("labels")
    annotations = as_map(meta.get("annotations"), "metadata.annotations") if meta.get("annotations") else {}
    disposable = as_str(
        annotations.get(keys.DISPOSABLE_EMPTY_DIRS), f"annotation {keys.DISPOSABLE_EMPTY_DIRS}"
    )
    return Pod(
        namespace=as_str(meta.get("namespace"), "metadata.namespace", "default"),
        name=name if type(name) is str else as_str(name, "metadata.name"),
        node=node if type(node) is str else as_str(node, "spec.nodeName"),
        labels=as_str_map(labels, "metadata.labels") if labels else {},
        owner=_owner(meta),
        phase=_PHASES.get(phase, PodPhase.UNKNOWN) if isinstance(phase, str) else PodPhase.UNKNOWN,
        ready=_ready_condition(status)[0] == "True",
        mirror=MIRROR_ANNOTATION in annotations,
        deleting=bool(meta.get("deletionTimestamp")),
        containers=(each(_container, init, "spec.initContainers") if init else ())
        + each(_container, main, "spec.containers"),
        volumes=each(_volume, volumes, "spec.volumes") if volumes else (),
        host_pid=as_bool(spec.get("hostPID"), "spec.hostPID"),
        grace_period=as_int(
            spec.get("terminationGracePeriodSeconds"), "spec.terminationGracePeriodSeconds", 30
        ),
        waiting=_waiting(status),
        disposable=frozenset(v.strip() for v in disposable.split(",") if v.strip()),
        runtimes=_runtimes(status),
        node_selector=as_str_map(spec.get("nodeSelector"), "spec.nodeSelector")
        if spec.get("nodeSelector")
        else {},
        affinity_terms=_affinity_terms(spec.get("affinity")) if spec.get("affinity") else (),
        tolerations=each(_toleration, spec.get("tolerations"), "spec.tolerations")
        if spec.get("tolerations")
        else (),
    )


def _toleration(raw: Any) -> Toleration:
    t = as_map(raw, "")
    return Toleration(
        key=as_str(t.get("key"), "key"),
        operator=as_str(t.get("operator"), "operator", "Equal") or "Equal",
        value=as_str(t.get("value"), "value"),
        effect=as_str(t.get("effect"), "effect"),
    )


def _taint(raw: Any) -> Taint:
    t = as_map(raw, "")
    return Taint(
        as_str(t.get("key"), "key"), as_str(t.get("value"), "value"), as_str(t.get("effect"), "effect")
    )


def _requirement(raw: Any) -> LabelRequirement:
    r = as_map(raw, "")
    return LabelRequirement(
        as_str(r.get("key"), "key"), as_str(r.get("operator"), "operator"), as_strs(r.get("values"), "values")
    )


def _affinity_terms(raw: Any) -> tuple[tuple[LabelRequirement, ...], ...]:
    """The terms of spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: a node
    must satisfy every requirement of one of them (matchFields' metadata.name kept as its key)."""
    node = as_map(as_map(raw, "spec.affinity").get("nodeAffinity"), "spec.affinity.nodeAffinity")
    where = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    required = as_map(node.get("requiredDuringSchedulingIgnoredDuringExecution"), where)
    terms = as_list(required.get("nodeSelectorTerms"), f"{where}.nodeSelectorTerms")
    out: list[tuple[LabelRequirement, ...]] = []
    for i, raw_term in enumerate(terms):
        term = as_map(raw_term, f"{where}.nodeSelectorTerms[{i}]")
        out.append(
            each(
                _requirement, term.get("matchExpressions"), f"{where}.nodeSelectorTerms[{i}].matchExpressions"
            )
            + each(_requirement, term.get("matchFields"), f"{where}.nodeSelectorTerms[{i}].matchFields")
        )
    return tuple(out)


def parse_node(raw: Mapping[str, Any]) -> Node:
    """A Node from its raw object; a ShapeError names the field of the wrong type."""
    meta, spec, status = _object(raw)
    info = as_map(status.get("nodeInfo"), "status.nodeInfo")
    ready_status, ready_reason, ready_message = _ready_condition(status)
    return Node(
        name=as_str(meta.get("name"), "metadata.name"),
        labels=as_str_map(meta.get("labels"), "metadata.labels"),
        annotations=as_str_map(meta.get("annotations"), "metadata.annotations"),
        unschedulable=as_bool(spec.get("unschedulable"), "spec.unschedulable"),
        ready=ready_status == "True",
        runtime_version=as_str(
            info.get("containerRuntimeVersion"), "status.nodeInfo.containerRuntimeVersion"
        ),
        kubelet_version=as_str(info.get("kubeletVersion"), "status.nodeInfo.kubeletVersion"),
        operating_system=as_str(info.get("operatingSystem"), "status.nodeInfo.operatingSystem"),
        ready_status=ready_status,
        ready_reason=ready_reason,
        ready_message=ready_message,
        pod_cidrs=as_strs(spec.get("podCIDRs"), "spec.podCIDRs")
        or ((as_str(spec.get("podCIDR"), "spec.podCIDR"),) if spec.get("podCIDR") else ()),
        taints=each(_taint, spec.get("taints"), "spec.taints") if spec.get("taints") else (),
    )


_COUNT_OR_PERCENT = re.compile(r"[0-9]{1,9}%?")


def _int_or_percent(raw: Any, path: str) -> IntOrPercent | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError([Problem(path, f"must be an integer or a percentage, not {raw!r}"[:300])])
    if isinstance(raw, int):
        if not 0 <= raw < 2**31:
            raise ValidationError([Problem(path, f"must be an integer from 0 to 2^31-1, not {raw}"[:300])])
        return IntOrPercent(raw, False)
    if not _COUNT_OR_PERCENT.fullmatch(raw):
        raise ValidationError(
            [Problem(path, f"must be an integer or a percentage like 50%, not {raw[:40]!r}")]
        )
    if raw.endswith("%"):
        return IntOrPercent.parse(raw)
    return IntOrPercent(int(raw), False)


_POLICIES: Mapping[str, UnhealthyPodEvictionPolicy] = {p.value: p for p in UnhealthyPodEvictionPolicy}


def parse_pdb(raw: Mapping[str, Any]) -> Pdb:
    """A PodDisruptionBudget from its raw object; a ShapeError names the field of the wrong type."""
    meta, spec, _ = _object(raw)
    namespace = as_str(meta.get("namespace"), "metadata.namespace", "default")
    name = as_str(meta.get("name"), "metadata.name")
    where = f"PodDisruptionBudget {namespace}/{name}: spec"
    selector = spec.get("selector")
    sel = as_map(selector, "spec.selector")
    expressions = []
    for i, e in enumerate(as_list(sel.get("matchExpressions"), "spec.selector.matchExpressions")):
        path = f"spec.selector.matchExpressions[{i}]"
        expr = as_map(e, path)
        expressions.append(
            LabelRequirement(
                as_str(expr.get("key"), f"{path}.key"),
                as_str(expr.get("operator"), f"{path}.operator"),
                as_strs(expr.get("values"), f"{path}.values"),
            )
        )
    policy = as_str(spec.get("unhealthyPodEvictionPolicy"), "spec.unhealthyPodEvictionPolicy")
    if policy and policy not in _POLICIES:
        raise ShapeError(
            "spec.unhealthyPodEvictionPolicy", f"{policy[:40]!r} is not one of {', '.join(_POLICIES)}"
        )
    return Pdb(
        namespace=namespace,
        name=name,
        selector=None
        if selector is None
        else LabelSelector(
            match_labels=as_str_map(sel.get("matchLabels"), "spec.selector.matchLabels"),
            match_expressions=tuple(expressions),
        ),
        min_available=_int_or_percent(spec.get("minAvailable"), f"{where}.minAvailable"),
        max_unavailable=_int_or_percent(spec.get("maxUnavailable"), f"{where}.maxUnavailable"),
        unhealthy_pod_eviction_policy=_POLICIES.get(policy, UnhealthyPodEvictionPolicy.IF_HEALTHY_BUDGET),
    )


def parse_controller(raw: Mapping[str, Any]) -> Controller:
    """A workload controller from its raw object; a ShapeError names the field of the wrong type."""
    meta, spec, _ = _object(raw)
    kind = as_str(as_map(raw, "").get("kind"), "kind")
    replicas: int | None
    if kind == "DaemonSet":
        replicas = None
    elif kind == "Job":
        replicas = as_int(spec.get("parallelism"), "spec.parallelism", 1)
    else:
        replicas = as_int(spec.get("replicas"), "spec.replicas", 1)
    return Controller(
        kind=kind,
        namespace=as_str(meta.get("namespace"), "metadata.namespace", "default"),
        name=as_str(meta.get("name"), "metadata.name"),
        uid=as_str(meta.get("uid"), "metadata.uid"),
        replicas=replicas,
        owner=_owner(meta),
    )


def parse_runtime_class(raw: Mapping[str, Any]) -> RuntimeClass:
    """A RuntimeClass from its raw object (`handler` is top level, not under spec)."""
    obj = as_map(raw, "")
    meta = as_map(obj.get("metadata"), "metadata")
    scheduling = as_map(obj.get("scheduling"), "scheduling")
    return RuntimeClass(
        name=as_str(meta.get("name"), "metadata.name"),
        handler=as_str(obj.get("handler"), "handler"),
        node_selector=as_str_map(scheduling.get("nodeSelector"), "scheduling.nodeSelector"),
    )


def build_cluster(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    pdbs: Iterable[Mapping[str, Any]],
    controllers: Iterable[Mapping[str, Any]],
    runtime_classes: Iterable[Mapping[str, Any]] = (),
) -> Cluster:
    """Parse raw API objects (dicts as `kubectl get -o json` prints them) into a Cluster."""
    raw_controllers = list(controllers)
    return Cluster(
        nodes=tuple(parse_node(n) for n in nodes),
        pods=tuple(parse_pod(p) for p in pods),
        pdbs=tuple(parse_pdb(p) for p in pdbs),
        controllers=tuple(parse_controller(c) for c in raw_controllers),
        runtime_classes=tuple(parse_runtime_class(r) for r in runtime_classes),
        gpu_operators=gpu_operators(raw_controllers),
    )
