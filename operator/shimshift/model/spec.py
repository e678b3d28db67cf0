"""Typed, frozen values for a NodeMigration's spec.

`NodeMigrationSpec.from_raw` expects a spec that already passed the CRD schema with defaults applied
(see `shimshift.model.schema`); it maps camelCase fields to attributes and parses durations. The checks
that a schema cannot express live in `shimshift.model.semantics`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shimshift.model.cron import Cron, parse_cron
from shimshift.model.durations import format_duration, parse_duration
from shimshift.model.gates import Gates
from shimshift.model.hooks import Hooks
from shimshift.model.unsafe import Unsafe


class Mode(StrEnum):
    PLAN = "Plan"
    MIGRATE = "Migrate"


class ControlPlanePolicy(StrEnum):
    LAST = "Last"
    EXCLUDE = "Exclude"


class DrainTimeoutAction(StrEnum):
    ABORT = "Abort"
    DELETE_PODS = "DeletePods"


class CgroupDriver(StrEnum):
    AUTO = "auto"
    SYSTEMD = "systemd"
    CGROUPFS = "cgroupfs"


class KubeletConfigMethod(StrEnum):
    AUTO = "Auto"
    KUBEADM_FLAGS = "KubeadmFlags"
    DEFAULT_FILE = "DefaultFile"
    SYSCONFIG_FILE = "SysconfigFile"
    KUBESPRAY_ENV = "KubesprayEnv"
    KUBELET_CONFIGURATION = "KubeletConfiguration"
    INSTANCE_CONFIG = "InstanceConfig"


class ImageStrategy(StrEnum):
    AUTO = "Auto"
    PULL = "Pull"
    TRANSFER = "Transfer"


class AddressType(StrEnum):
    INTERNAL_IP = "InternalIP"
    EXTERNAL_IP = "ExternalIP"
    HOSTNAME = "Hostname"


class HostKeyPolicy(StrEnum):
    STRICT = "Strict"
    ACCEPT_NEW = "AcceptNew"


class DockerPolicy(StrEnum):
    """What happens to Docker on a node once its rollback window is committed (`spec.commit`);
    shimshift never removes Docker Engine."""

    KEEP = "Keep"
    STOP = "Stop"


class OutsideContainersPolicy(StrEnum):
    """What the plan does about Docker containers the kubelet did not create (`docker run`)."""

    BLOCK = "Block"  # a blocker: move them to static pods, or say Stop
    STOP = "Stop"  # they stop with Docker at the switch; the plan lists them


class RollbackPolicy(StrEnum):
    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


class Staging(StrEnum):
    """When the steps that need no drained node (backup, containerd config, images) run."""

    BEFORE_CORDON = "BeforeCordon"  # while the node serves: cordoned only for drain, switch, verify
    AFTER_CORDON = "AfterCordon"  # the old order: cordon and drain first


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> LabelSelector:
        return cls(
            match_labels=dict(raw.get("matchLabels") or {}),
            match_expressions=tuple(
                LabelRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                for e in raw.get("matchExpressions") or ()
            ),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


#: `spec.rollout.zoneLabel` when it is not given: the well-known topology label.
ZONE_LABEL_DEFAULT = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class IntOrPercent:
    """maxUnavailable: a count, or a percentage of a total."""

    value: int
    percent: bool

    @classmethod
    def parse(cls, raw: int | str) -> IntOrPercent:
        if isinstance(raw, int):
            return cls(raw, False)
        return cls(int(raw.rstrip("%")), True)

    def resolve(self, total: int) -> int:
        """The count for `total` items; a percentage rounds down but never below 1."""
        if not self.percent:
            return self.value
        return max(1, total * self.value // 100)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


def load_zone(name: str) -> dt.tzinfo:
    """The IANA time zone `name` (from the system's tz database, or the tzdata package); "UTC" needs
    neither. Raises ValueError saying what to write when there is no such zone."""
    if name == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"{name[:64]!r} is not a known IANA time zone; write e.g. UTC, Europe/Berlin or America/New_York"
        ) from e


#: `spec.rollout.windows[].days`, Monday first (the index is `datetime.date.weekday()`).
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Window:
    """A maintenance window: it opens on each of `days` at `start`, or at each time `cron` matches
    (local to the rollout's time zone), and stays open for `duration` seconds of elapsed time, across
    midnight if it is long enough. What the local times mean around DST changes is
    `shimshift.planning.windows`'."""

    start: dt.time | None
    duration: float
    days: frozenset[int] = frozenset(range(7))  # 0 = Monday; with `start`
    cron: Cron | None = None  # instead of `days` and `start`

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Window:
        duration = parse_duration(raw["duration"])
        if raw.get("cron"):
            return cls(start=None, duration=duration, cron=parse_cron(raw["cron"]))
        hour, minute = (int(part) for part in raw["start"].split(":"))
        days = raw.get("days")
        return cls(
            start=dt.time(hour, minute),
            duration=duration,
            days=frozenset(WEEKDAYS.index(d) for d in days) if days else frozenset(range(7)),
        )

    def start_times(self, day: dt.date) -> list[dt.time]:
        """The local times this window opens on `day` (none when it does not open that day)."""
        if self.cron is not None:
            return self.cron.times() if self.cron.matches_day(day) else []
        if self.start is None or day.weekday() not in self.days:
            return []
        return [self.start]

    def __str__(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} for {format_duration(self.duration)}"
        days = ",".join(WEEKDAYS[d] for d in sorted(self.days)) if len(self.days) < 7 else "daily"
        start = f"{self.start:%H:%M}" if self.start is not None else "?"
        return f"{days} {start} for {format_duration(self.duration)}"


@dataclass(frozen=True)
class Rollout:
    max_unavailable: IntOrPercent = IntOrPercent(1, False)
    max_failures: int = 0
    pause_between_nodes: float = 0.0
    control_plane: ControlPlanePolicy = ControlPlanePolicy.LAST
    #: migrate a node that runs the cluster's only API server (last of all, the API down during its
    #: switch); without it such a node is Skipped (`planning.apiserver`)
    allow_api_downtime: bool = False
    paused: bool = False
    windows: tuple[Window, ...] = ()  # none: always open
    time_zone: str = "UTC"  # an IANA zone name, the windows' local time
    blocking_pod_selector: str = ""  # kubectl syntax; empty: no pod holds a node back
    #: in flight at once per topology domain (a percentage of the zone's selected workers); None: no limit
    max_unavailable_per_zone: IntOrPercent | None = None
    zone_label: str = ZONE_LABEL_DEFAULT  # the node label naming a node's zone; unlabelled nodes are zone ""
    gates: Gates = field(
        default_factory=Gates
    )  # health gates read before each wave starts (`shimshift.model.gates`)
    hooks: Hooks = field(default_factory=Hooks)  # per-node Jobs before and after (`shimshift.model.hooks`)


@dataclass(frozen=True)
class Drain:
    timeout: float = 600.0
    grace_period_seconds: int | None = None
    ignore_daemonsets: bool = True
    delete_emptydir_data: bool = False
    force: bool = False
    pod_selector: str = ""
    on_timeout: DrainTimeoutAction = DrainTimeoutAction.ABORT


#: spec.verify.timeout's default and bounds, in seconds (the CRD's description says the same).
VERIFY_TIMEOUT_DEFAULT = "5m"
VERIFY_TIMEOUT_MIN = 30.0
VERIFY_TIMEOUT_MAX = 3600.0


#: spec.verify.canary.timeout's default and bounds, in seconds: a pod that echoes a line starts in
#: seconds from an image already on the node; a pull of a named image may take a minute or two.
CANARY_TIMEOUT_DEFAULT = "2m"
CANARY_TIMEOUT_MIN = 10.0
CANARY_TIMEOUT_MAX = 1800.0


@dataclass(frozen=True)
class Canary:
    """spec.verify.canary: a pod pinned to the switched node, run before it is uncordoned."""

    enabled: bool = True
    image: str | None = None  # None: a small image with `echo` found among the node's migrated images
    timeout: float = 120.0  # from the canary pod's creation to its exit


@dataclass(frozen=True)
class Verify:
    timeout: float = 300.0  # from the verify step's start: Ready on containerd and DaemonSet pods back
    canary: Canary = Canary()


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


class NotificationEvent(StrEnum):
    """What a notification is about (spec.notifications.events)."""

    STARTED = "Started"  # the rollout started its first node
    NODE_FAILED = "NodeFailed"  # a node failed (or was rolled back to Docker)
    PAUSED = "Paused"  # the rollout paused (maxFailures reached, spec.rollout.paused, ...)
    FINISHED = "Finished"  # the rollout ended: Succeeded or Failed


@dataclass(frozen=True)
class NotificationSettings:
    """spec.notifications: where to send (the Secret holding the target URLs, one per line), which
    events, and per-event template overrides (`string.Template` text; see planning.notifications)."""

    url_secret: SecretKeyRef
    events: frozenset[NotificationEvent] = frozenset(NotificationEvent)
    templates: tuple[tuple[NotificationEvent, str], ...] = ()

    def template(self, event: NotificationEvent) -> str | None:
        return next((text for e, text in self.templates if e == event), None)


@dataclass(frozen=True)
class Registry:
    host: str
    mirrors: tuple[str, ...] = ()
    ca_secret: SecretKeyRef | None = None
    ca_bundle: str | None = None
    client_cert_secret: str | None = None
    skip_verify: bool = False
    plain_http: bool = False


@dataclass(frozen=True)
class Containerd:
    config_version: int | None = None  # None = auto (from the node's containerd version)
    sandbox_image: str | None = None
    cgroup_driver: CgroupDriver = CgroupDriver.AUTO
    import_docker_config: bool = True
    registries: tuple[Registry, ...] = ()
    extra_config: str = ""
    allow_unsafe: frozenset[Unsafe] = frozenset()  # unsafe extraConfig settings let through (model.unsafe)


@dataclass(frozen=True)
class Kubelet:
    runtime_endpoint: str = "unix:///run/containerd/containerd.sock"
    config_method: KubeletConfigMethod = KubeletConfigMethod.AUTO
    update_cri_socket_annotation: bool = True


@dataclass(frozen=True)
class Images:
    migrate: bool = True
    strategy: ImageStrategy = ImageStrategy.AUTO
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class JumpHost:
    host: str
    port: int = 22
    user: str | None = None


@dataclass(frozen=True)
class Ssh:
    user: str = "root"
    port: int = 22
    address_type: AddressType = AddressType.INTERNAL_IP
    private_key: SecretKeyRef | None = None
    known_hosts: SecretKeyRef | None = None
    host_key_policy: HostKeyPolicy = HostKeyPolicy.STRICT
    sudo: bool = False
    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    jump_host: JumpHost | None = None


@dataclass(frozen=True)
class NodeMigrationSpec:
    mode: Mode
    node_selector: LabelSelector | None
    node_names: tuple[str, ...]
    rollout: Rollout
    drain: Drain
    verify: Verify
    containerd: Containerd
    kubelet: Kubelet
    images: Images
    ssh: Ssh | None
    docker: DockerPolicy
    rollback: RollbackPolicy
    docker_outside_containers: OutsideContainersPolicy = OutsideContainersPolicy.BLOCK
    notifications: NotificationSettings | None = None
    #: nodes whose Succeeded migration is to be rolled back to Docker (the rollback window must be open)
    undo: tuple[str, ...] = ()
    #: true ends the rollback window: Docker per `docker` and the backups removed on Succeeded nodes
    commit: bool = False
    staging: Staging = Staging.BEFORE_CORDON

    @classmethod
    def from_raw(cls, spec: Mapping[str, Any]) -> NodeMigrationSpec:
        """Build the typed spec from a schema-valid, defaulted `spec` mapping."""
        ro = spec.get("rollout", {})
        dr = spec.get("drain", {})
        ve = spec.get("verify", {})
        co = spec.get("containerd", {})
        ku = spec.get("kubelet", {})
        im = spec.get("images", {})
        raw_ssh = spec.get("ssh")
        version = co.get("configVersion", "auto")
        return cls(
            mode=Mode(spec.get("mode", "Plan")),
            node_selector=LabelSelector.from_raw(spec["nodeSelector"]) if "nodeSelector" in spec else None,
            node_names=tuple(spec.get("nodeNames") or ()),
            rollout=Rollout(
                max_unavailable=IntOrPercent.parse(ro.get("maxUnavailable", 1)),
                max_failures=ro.get("maxFailures", 0),
                pause_between_nodes=parse_duration(ro.get("pauseBetweenNodes", "0s")),
                control_plane=ControlPlanePolicy(ro.get("controlPlane", "Last")),
                allow_api_downtime=ro.get("allowApiDowntime", False),
                paused=ro.get("paused", False),
                windows=tuple(Window.from_raw(w) for w in ro.get("windows") or ()),
                time_zone=ro.get("timeZone", "UTC"),
                blocking_pod_selector=ro.get("blockingPodSelector", ""),
                max_unavailable_per_zone=IntOrPercent.parse(ro["maxUnavailablePerZone"])
                if "maxUnavailablePerZone" in ro
                else None,
                zone_label=ro.get("zoneLabel", ZONE_LABEL_DEFAULT),
                gates=Gates.from_raw(ro.get("gates") or {}),
                hooks=Hooks.from_raw(ro.get("hooks") or {}),
            ),
            drain=Drain(
                timeout=parse_duration(dr.get("timeout", "10m")),
                grace_period_seconds=dr.get("gracePeriodSeconds"),
                ignore_daemonsets=dr.get("ignoreDaemonSets", True),
                delete_emptydir_data=dr.get("deleteEmptyDirData", False),
                force=dr.get("force", False),
                pod_selector=dr.get("podSelector", ""),
                on_timeout=DrainTimeoutAction(dr.get("onTimeout", "Abort")),
            ),
            verify=Verify(
                timeout=parse_duration(ve.get("timeout", VERIFY_TIMEOUT_DEFAULT)),
                canary=_canary(ve.get("canary") or {}),
            ),
            containerd=Containerd(
                config_version=None if version == "auto" else int(version),
                sandbox_image=co.get("sandboxImage"),
                cgroup_driver=CgroupDriver(co.get("cgroupDriver", "auto")),
                import_docker_config=co.get("importDockerConfig", True),
                registries=tuple(_registry(r) for r in co.get("registries") or ()),
                extra_config=co.get("extraConfig", ""),
                allow_unsafe=frozenset(Unsafe(u) for u in co.get("allowUnsafe") or ()),
            ),
            kubelet=Kubelet(
                runtime_endpoint=ku.get("runtimeEndpoint", "unix:///run/containerd/containerd.sock"),
                config_method=KubeletConfigMethod(ku.get("configMethod", "Auto")),
                update_cri_socket_annotation=ku.get("updateCriSocketAnnotation", True),
            ),
            images=Images(
                migrate=im.get("migrate", True),
                strategy=ImageStrategy(im.get("strategy", "Auto")),
                include=tuple(im.get("include") or ()),
                exclude=tuple(im.get("exclude") or ()),
            ),
            ssh=_ssh(raw_ssh) if raw_ssh is not None else None,
            docker=DockerPolicy(spec.get("docker", "Keep")),
            rollback=RollbackPolicy(spec.get("rollback", "Automatic")),
            docker_outside_containers=OutsideContainersPolicy(spec.get("dockerOutsideContainers", "Block")),
            notifications=_notifications(spec["notifications"]) if "notifications" in spec else None,
            undo=tuple(spec.get("undo") or ()),
            commit=bool(spec.get("commit", False)),
            staging=Staging(spec.get("staging", "BeforeCordon")),
        )


def _canary(raw: Mapping[str, Any]) -> Canary:
    return Canary(
        enabled=raw.get("enabled", True),
        image=raw.get("image") or None,
        timeout=parse_duration(raw.get("timeout", CANARY_TIMEOUT_DEFAULT)),
    )


def _secret_ref(raw: Mapping[str, Any] | None, default_key: str) -> SecretKeyRef | None:
    if raw is None:
        return None
    return SecretKeyRef(raw["name"], raw.get("key", default_key))


def _notifications(raw: Mapping[str, Any]) -> NotificationSettings:
    ref = raw["urlSecretRef"]
    events = raw.get("events")
    templates = raw.get("templates") or {}
    return NotificationSettings(
        url_secret=SecretKeyRef(ref["name"], ref.get("key", "urls")),
        events=frozenset(NotificationEvent(e) for e in events) if events else frozenset(NotificationEvent),
        templates=tuple((e, templates[e.value]) for e in NotificationEvent if e.value in templates),
    )


def _registry(raw: Mapping[str, Any]) -> Registry:
    client = raw.get("clientCertSecretRef")
    return Registry(
        host=raw["host"],
        mirrors=tuple(raw.get("mirrors") or ()),
        ca_secret=_secret_ref(raw.get("caSecretRef"), "ca.crt"),
        ca_bundle=raw.get("caBundle"),
        client_cert_secret=client["name"] if client else None,
        skip_verify=raw.get("skipVerify", False),
        plain_http=raw.get("plainHTTP", False),
    )


def _ssh(raw: Mapping[str, Any]) -> Ssh:
    jump = raw.get("jumpHost")
    return Ssh(
        user=raw.get("user", "root"),
        port=raw.get("port", 22),
        address_type=AddressType(raw.get("addressType", "InternalIP")),
        private_key=_secret_ref(raw.get("privateKeySecretRef"), "ssh-privatekey"),
        known_hosts=_secret_ref(raw.get("knownHostsSecretRef"), "known_hosts"),
        host_key_policy=HostKeyPolicy(raw.get("hostKeyPolicy", "Strict")),
        sudo=raw.get("sudo", False),
        connect_timeout=parse_duration(raw.get("connectTimeout", "10s")),
        command_timeout=parse_duration(raw.get("commandTimeout", "5m")),
        jump_host=JumpHost(jump["host"], jump.get("port", 22), jump.get("user")) if jump else None,
    )
