"""Every Docker-era setting of a node and what the migration does with it. Pure values.

Two tables: every key of `/etc/docker/daemon.json` that the dockerd reference of Docker 20.10
documents in its "Daemon configuration file" section (the Linux example and the options it lists;
`proxies`, `log-format`, `host-gateway-ip` and `default-network-opts` of later releases are here too,
as nodes upgraded past 20.10 have them), and every kubelet flag of the dockershim era (the ones that
existed for dockershim or that the switch step edits). Each maps to one `Fate`:

- `TRANSLATED`: carried into containerd's or the kubelet's files (the text says to what);
- `REFUSED`: the node would break after the switch: a blocker, and why;
- `REPORTED`: not carried and something changes for the node's pods: a warning, and what to do;
- `IRRELEVANT`: it has no meaning once the kubelet uses containerd (the text says why): a note.

Some keys depend on their value (`storage-driver: overlay2` is containerd's default snapshotter,
`devicemapper` is not); `daemon_json_fate` and `kubelet_flag_fate` decide. A key in neither table is
reported, never dropped without a word. The plan turns each into a finding (`planning.settings`);
rendering uses the texts for its not-carried rows; tests check the table against what the renderer
and the switch really do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.model.kubenet import KUBENET_BRIDGE, KUBENET_FILE
from shimshift.model.runtimes import docker_runtimes

#: The paths containerd's CRI plugin reads CNI plugins and configuration from by default, which are
#: also the kubelet's dockershim defaults.
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_CACHE_DIR = "/var/lib/cni/cache"


class Fate(StrEnum):
    TRANSLATED = "translated"
    REFUSED = "refused"
    REPORTED = "reported"
    IRRELEVANT = "irrelevant"


@dataclass(frozen=True)
class Rule:
    """What becomes of one setting: its fate, what it becomes or why, and what to do (if anything)."""

    fate: Fate
    text: str
    advice: str = ""


def _t(text: str, advice: str = "") -> Rule:
    return Rule(Fate.TRANSLATED, text, advice)


def _r(text: str, advice: str) -> Rule:
    return Rule(Fate.REPORTED, text, advice)


def _x(text: str, advice: str) -> Rule:
    return Rule(Fate.REFUSED, text, advice)


def _i(text: str) -> Rule:
    return Rule(Fate.IRRELEVANT, text)


_EXTRA = "spec.containerd.extraConfig"
_CRI_RUNTIME = (
    'plugins."io.containerd.grpc.v1.cri" (schema 2) or '
    'plugins."io.containerd.cri.v1.runtime" (schema 3 and 4)'
)
_CRI_IMAGES = (
    'plugins."io.containerd.grpc.v1.cri" (schema 2) or plugins."io.containerd.cri.v1.images" (schema 3 and 4)'
)
_BRIDGE = (
    "Docker's own bridge network (docker0): under dockershim with --network-plugin=cni, and under "
    "containerd, pods are networked by the CNI plugin"
)
_API = "dockerd's own API endpoint: Docker is stopped at the switch and containerd is not reached over TCP"
_SWARM = "Docker Swarm and classic-swarm settings: the kubelet never used them"
_OWN_LOG = "Docker's own daemon log; containerd's is set by [debug] level (spec.containerd.extraConfig)"
_OWN_STATE = "dockerd's own state and process; containerd keeps its own"

#: daemon.json keys whose fate does not depend on their value (see `daemon_json_fate` for the rest).
DAEMON_JSON: Mapping[str, Rule] = {
    "allow-nondistributable-artifacts": _i("applies to pushes only; the kubelet and containerd only pull"),
    "api-cors-header": _i(_API),
    "authorization-plugins": _r(
        "Docker API authorization plugins have no containerd equivalent: the policy they enforced on "
        "Docker API calls no longer applies to the node's containers",
        "enforce that policy with Kubernetes admission (Pod Security admission or a policy engine)",
    ),
    "bip": _i(_BRIDGE),
    "bridge": _i(_BRIDGE),
    "builder": _i("BuildKit's garbage collection for `docker build`; the kubelet never builds"),
    "cgroup-parent": _i(
        "the kubelet sets each pod's cgroup parent (kubepods) under dockershim and containerd"
    ),
    "cluster-advertise": _i(_SWARM),
    "cluster-store": _i(_SWARM),
    "cluster-store-opts": _i(_SWARM),
    "containerd": _i(
        "the containerd socket Docker uses for its own containers; the kubelet is pointed at "
        "containerd by the switch (spec.kubelet.runtimeEndpoint)"
    ),
    "containerd-namespace": _i("Docker's containerd namespace (moby); the kubelet's pods live in k8s.io"),
    "containerd-plugins-namespace": _i("Docker's plugin namespace in containerd; the kubelet has none"),
    "cpu-rt-period": _i("the realtime budget of dockerd's parent cgroup; the kubelet's pods get none"),
    "cpu-rt-runtime": _i("the realtime budget of dockerd's parent cgroup; the kubelet's pods get none"),
    "cri-containerd": _i("Docker's experimental CRI mode; the kubelet uses containerd's own CRI plugin"),
    "data-root": _r(
        'Docker\'s data root; containerd keeps images and snapshots under its own "root" '
        "(/var/lib/containerd): images are migrated into it, not shared, and the disk it is on must "
        "hold them (DockerRootOtherFilesystem names both filesystems when they differ)",
        "check that containerd's root holds the images; to keep containerd's data on Docker's disk, "
        "move /var/lib/containerd there in a maintenance window and bind-mount it back (not by setting "
        f'"root" in {_EXTRA} while Docker\'s containers run: containerd would lose its record of them)',
    ),
    "graph": _r(
        'the deprecated name of data-root: containerd keeps its data under its own "root" '
        "(/var/lib/containerd)",
        "check that containerd's root holds the images (see data-root)",
    ),
    "debug": _i(_OWN_LOG),
    "default-address-pools": _i(_BRIDGE),
    "default-cgroupns-mode": _r(
        "containerd's CRI plugin gives each container a private cgroup namespace on cgroup v2, whatever "
        "Docker's default was",
        "check workloads that read the host's cgroup tree from inside a container",
    ),
    "default-gateway": _i(_BRIDGE),
    "default-gateway-v6": _i(_BRIDGE),
    "default-ipc-mode": _i(
        "dockershim set each pod's IPC mode itself (shared within the pod); so does containerd"
    ),
    "default-network-opts": _i(_BRIDGE),
    "default-shm-size": _r(
        "the /dev/shm size of containers; containerd's CRI plugin gives each pod sandbox 64 MiB",
        "pods that need a larger /dev/shm mount an emptyDir with medium: Memory there",
    ),
    "default-ulimits": _t(
        "the rlimits of a base OCI spec for containerd's CRI runtimes (/etc/containerd/cri-base.json, "
        "each runtime's base_runtime_spec), built from the node's containerd default spec (ctr oci spec)"
    ),
    "dns": _i("pod DNS comes from the kubelet (clusterDNS, --resolv-conf) and each pod's dnsPolicy"),
    "dns-opts": _i("pod DNS comes from the kubelet (clusterDNS, --resolv-conf) and each pod's dnsPolicy"),
    "dns-search": _i("pod DNS comes from the kubelet (clusterDNS, --resolv-conf) and each pod's dnsPolicy"),
    "exec-root": _i(_OWN_STATE),
    "experimental": _i("Docker's experimental features; nothing the kubelet used"),
    "features": _i("Docker feature flags (e.g. buildkit); nothing the kubelet used"),
    "fixed-cidr": _i(_BRIDGE),
    "fixed-cidr-v6": _i(_BRIDGE),
    "group": _i(
        "the group owning docker.sock; Docker is stopped at the switch, containerd's socket is root's"
    ),
    "host-gateway-ip": _i("host.docker.internal for `docker run --add-host`; the kubelet never used it"),
    "hosts": _i(_API),
    "icc": _i(_BRIDGE),
    "init-path": _i("the init binary for Docker's `init` option; containerd's CRI runs no init"),
    "ip": _i(_BRIDGE),
    "ip-masq": _i(_BRIDGE),
    "ip6tables": _i(_BRIDGE),
    "iptables": _i(_BRIDGE),
    "ipv6": _i(_BRIDGE),
    "labels": _i("Docker engine labels (for Swarm placement); Kubernetes uses Node labels"),
    "live-restore": _i(
        "containerd's shims keep containers running across containerd restarts; for the containers Docker "
        "runs outside the kubelet it decides whether they outlive the switch (DockerContainersOutsideKubelet)"
    ),
    "log-format": _i(_OWN_LOG),
    "log-level": _i(_OWN_LOG),
    "max-concurrent-downloads": _r(
        "parallel layer downloads of a pull; containerd's CRI plugin uses its own "
        "max_concurrent_downloads (3)",
        f"set max_concurrent_downloads of {_CRI_IMAGES} ({_EXTRA})",
    ),
    "max-concurrent-uploads": _i("applies to pushes only; the kubelet and containerd only pull"),
    "max-download-attempts": _i("the kubelet retries failed pulls itself (image pull back-off)"),
    "metrics-addr": _r(
        "dockerd's Prometheus endpoint: scrapes of it stop (Docker is stopped at the switch)",
        f"scrape containerd's metrics instead ([metrics] address in {_EXTRA}) or the kubelet's",
    ),
    "mtu": _i(_BRIDGE + "; the pod MTU is the CNI configuration's"),
    "no-new-privileges": _r(
        "Docker set no_new_privs on every container; containerd does it only for containers with "
        "allowPrivilegeEscalation: false",
        "set allowPrivilegeEscalation: false in the pods (or enforce it with Pod Security admission)",
    ),
    "node-generic-resources": _i(_SWARM),
    "oom-score-adjust": _i("dockerd's own OOM score; the kubelet sets its containers' and containerd's own"),
    "pidfile": _i(_OWN_STATE),
    "proxies": _t(
        "HTTP_PROXY / HTTPS_PROXY / NO_PROXY in /etc/systemd/system/containerd.service.d/http-proxy.conf "
        "(with those of docker.service's Environment=; containerd's own proxy drop-in is kept instead)"
    ),
    "raw-logs": _i(_OWN_LOG),
    "rootless": _r(
        "Docker ran rootless; containerd runs as root for the kubelet",
        "check that running the node's containers under a root containerd is what you want",
    ),
    "seccomp-profile": _r(
        "Docker's default seccomp profile (what runtime/default meant for dockershim pods); containerd "
        "applies its own built-in default profile",
        "check pods with seccompProfile RuntimeDefault against containerd's default, or give them a "
        "Localhost profile",
    ),
    "shutdown-timeout": _i("the kubelet stops pods with their terminationGracePeriodSeconds"),
    "storage-opts": _r(
        "storage driver options; containerd's snapshotter has its own",
        f"set the snapshotter plugin's options in {_EXTRA}",
    ),
    "swarm-default-advertise-addr": _i(_SWARM),
    "tls": _i("TLS of " + _API),
    "tlscacert": _i("TLS of " + _API),
    "tlscert": _i("TLS of " + _API),
    "tlskey": _i("TLS of " + _API),
    "tlsverify": _i("TLS of " + _API),
    "userland-proxy": _i(_BRIDGE),
    "userland-proxy-path": _i(_BRIDGE),
    # translated when the spec imports the node's Docker configuration (spec.containerd.importDockerConfig)
    "registry-mirrors": _t("docker.io mirrors in certs.d/docker.io/hosts.toml, in their order"),
    "insecure-registries": _t(
        "each host: hosts.toml trying HTTPS without verification, then plain HTTP (as Docker did); "
        "address ranges: registry hosts inside them marked insecure"
    ),
}

#: daemon.json keys decided by their value (`daemon_json_fate`); listed so the table names every key.
DAEMON_JSON_BY_VALUE = frozenset(
    {
        "exec-opts",
        "storage-driver",
        "log-driver",
        "log-opts",
        "default-runtime",
        "runtimes",
        "selinux-enabled",
        "init",
        "ip-forward",
        "userns-remap",
    }
)

#: Keys that shimshift carries into containerd's files.
DAEMON_JSON_TRANSLATED = frozenset(
    {
        "registry-mirrors",
        "insecure-registries",
        "exec-opts",
        "proxies",
        "runtimes",
        "default-runtime",
        "default-ulimits",
    }
)
#: Keys that shimshift carries into the kubelet's files (the switch step's edit): json-file's rotation.
DAEMON_JSON_TO_KUBELET = frozenset({"log-opts"})
#: The translated keys that are carried only when spec.containerd.importDockerConfig is on (Docker's
#: cgroup driver is read whatever it says).
DAEMON_JSON_IMPORTED = frozenset({"registry-mirrors", "insecure-registries"})

_UNKNOWN_KEY = _r(
    "not a daemon.json key of Docker 20.10 that shimshift knows: nothing carries it into containerd",
    "check what it did and set its containerd equivalent by hand",
)


def daemon_json_keys() -> frozenset[str]:
    """Every daemon.json key either table names."""
    return frozenset(DAEMON_JSON) | DAEMON_JSON_BY_VALUE


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


def _word(value: Any) -> str:
    """A daemon.json value inside a sentence: a string as it is (cut short), anything else named."""
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    return f"a {type(value).__name__} value"


# ---- json-file's log rotation, carried into the kubelet ---------------------------------------------

#: The kubelet's own rotation when its configuration sets none, and the fewest files it accepts.
KUBELET_LOG_MAX_SIZE = "10Mi"
KUBELET_LOG_MAX_FILES = 5
KUBELET_MIN_LOG_FILES = 2
#: Drivers whose max-size / max-file the kubelet's rotation carries (json-file is Docker's default).
_ROTATED_DRIVERS = ("json-file", None, "")
#: A size as Docker's json-file driver reads it (go-units RAMInBytes: binary multiples, `100m`, `1g`,
#: `10k`, `512`, `1.5g`, `100MiB`).
_DOCKER_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi")


def kubelet_quantity(docker_size: str) -> str | None:
    """Docker's json-file `max-size` as a kubelet quantity (`100m` -> `100Mi`); None when it is no
    positive size (Docker's `-1` is "no limit", which the kubelet has no word for)."""
    m = _DOCKER_SIZE.match(docker_size.strip())
    if not m:
        return None
    power = "kmgtp".index(m.group(2).lower()) + 1 if m.group(2) else 0
    number = m.group(1)
    whole, _, frac = number.partition(".")
    # exact arithmetic: bytes = number * 1024**power, truncated as Docker does (int64 of a float)
    scale = 10 ** len(frac)
    size = int(whole + frac) * 1024**power // scale
    if size <= 0:
        return None
    step = 0
    while step < len(_BINARY) - 1 and size % 1024 == 0:
        size //= 1024
        step += 1
    return f"{size}{_BINARY[step]}"


@dataclass(frozen=True)
class LogRotation:
    """Docker's json-file rotation as the kubelet's: containerLogMaxSize / containerLogMaxFiles."""

    max_size: str | None  # a kubelet quantity; None when daemon.json sets no usable max-size
    max_files: int | None
    docker_files: int | None  # the number of files Docker kept (max-file, 1 when only max-size is set)
    lost: tuple[str, ...] = ()  # log-opts not carried, each with why

    @property
    def raised(self) -> bool:
        """Docker kept fewer files than the kubelet accepts: the kubelet keeps its minimum."""
        return self.docker_files is not None and self.docker_files < KUBELET_MIN_LOG_FILES


def log_rotation(daemon: Mapping[str, Any] | None) -> LogRotation | None:
    """What the kubelet carries of daemon.json's log-opts; None when there is nothing to carry (no
    log-opts, or a driver other than json-file, whose options the kubelet has no use for)."""
    daemon = daemon or {}
    opts = daemon.get("log-opts")
    if not isinstance(opts, Mapping) or daemon.get("log-driver") not in _ROTATED_DRIVERS:
        return None
    lost: list[str] = []
    size = opts.get("max-size")
    max_size = kubelet_quantity(size) if isinstance(size, str) else None
    if size is not None and max_size is None:
        lost.append(f"max-size {_word(size)}: not a positive size the kubelet can take")
    files = opts.get("max-file")
    docker_files: int | None = None
    if max_size is not None:
        docker_files = 1  # json-file's default: max-size alone keeps one file
    if files is not None:
        text = str(files).strip() if isinstance(files, str | int) and not isinstance(files, bool) else ""
        if text.isdigit() and int(text) >= 1:
            docker_files = int(text) if max_size is not None else None
            if max_size is None:
                lost.append(f"max-file {text}: Docker rotates only with a max-size")
        else:
            lost.append(f"max-file {_word(files)}: not a number of files")
    for opt in sorted(k for k in opts if k not in ("max-size", "max-file")):
        lost.append(f"{opt}: the kubelet's rotation has no such option")
    max_files = None if docker_files is None else max(docker_files, KUBELET_MIN_LOG_FILES)
    return LogRotation(max_size, max_files, docker_files, tuple(lost))


def _log_opts_fate(value: Any, daemon: Mapping[str, Any]) -> Rule:
    rotation = log_rotation({**daemon, "log-opts": value})
    if rotation is None or rotation.max_size is None:
        return _r(
            "Docker's log options are not carried: under containerd the kubelet writes and rotates "
            f"container logs in /var/log/pods (containerLogMaxSize {KUBELET_LOG_MAX_SIZE}, "
            f"containerLogMaxFiles {KUBELET_LOG_MAX_FILES} by default)",
            "set containerLogMaxSize / containerLogMaxFiles in the KubeletConfiguration to keep a rotation",
        )
    carried = (
        f"the kubelet's containerLogMaxSize {rotation.max_size}, containerLogMaxFiles {rotation.max_files}"
    )
    if rotation.raised:
        return _r(
            f"carried as {carried}: Docker kept {rotation.docker_files} file, the kubelet keeps at least "
            f"{KUBELET_MIN_LOG_FILES} (one more rotated file of {rotation.max_size} per container)",
            "check the disk under /var/log/pods has room for it",
        )
    if rotation.lost:
        return _r(
            f"carried as {carried}; not carried: {'; '.join(rotation.lost)}",
            "check what those options did; the kubelet's log rotation has only a size and a number of files",
        )
    return _t(carried + " (set by the switch unless the kubelet already sets its own)")


_RUNTIMES_TO = f"containerd.runtimes.<name> of {_CRI_RUNTIME}"


def _runtimes_fate(daemon: Mapping[str, Any]) -> Rule:
    found = docker_runtimes(daemon)
    if found.malformed:
        return _r(
            "runtimes is not an object of runtimes (dockerd does not start with it): nothing is carried",
            "fix daemon.json runtimes, then probe the node again",
        )
    carried = ", ".join(
        f"{r.name} ({r.runtime_type}" + (f", BinaryName {r.binary}" if r.binary else "") + ")"
        for r in found.carried
    )
    where = f"{_RUNTIMES_TO}, SystemdCgroup as the node's cgroup driver"
    if not found.refused:
        if not found.carried:
            return _i("no runtimes besides runc; containerd's CRI plugin has runc")
        return _t(f"{carried} in {where}")
    lost = "; ".join(f"{r.name}: {r.reason}" for r in found.refused)
    advice = "; ".join(f"{r.name}: {r.advice}" for r in found.refused)
    text = (f"carried as {carried} in {where}; " if carried else "") + f"not carried: {lost}"
    return _r(text + " (pods of a RuntimeClass with that handler would not start)", advice)


def _default_runtime_fate(value: Any, daemon: Mapping[str, Any]) -> Rule:
    found = docker_runtimes(daemon)
    name = found.default
    if name == "runc":
        return _i("containerd's CRI plugin runs pods with runc by default too")
    if name in found.carried_names():
        return _t(
            f"containerd's default_runtime_name is {name} (its runtimes.{name}), so pods without a "
            "RuntimeClass run with it, as Docker ran every container"
        )
    refused = found.refusal(name)
    why = (
        refused.reason
        if refused is not None
        else f"daemon.json runtimes defines no {_word(value)} runtime (dockerd refuses to start so)"
    )
    return _x(
        f"Docker ran every container with the {_word(value)} runtime, which is not carried ({why}); "
        "containerd would run them with runc (e.g. without GPU access for an nvidia runtime)",
        (refused.advice + "; or " if refused is not None else "")
        + f"set containerd.default_runtime_name and the runtime in {_CRI_RUNTIME} ({_EXTRA}), "
        "then plan again",
    )


#: Docker storage drivers with a containerd snapshotter of the same name and filesystem: carried when
#: the node's containerd loads that snapshotter plugin (`ctr plugins ls` says ok).
SNAPSHOTTER_DRIVERS = ("zfs", "btrfs")


def carried_snapshotter(daemon: Mapping[str, Any] | None, snapshotters: Mapping[str, str]) -> str | None:
    """The snapshotter the CRI plugin gets for Docker's storage-driver, or None (overlayfs)."""
    driver = (daemon or {}).get("storage-driver")
    if driver in SNAPSHOTTER_DRIVERS and snapshotters.get(str(driver)) == "ok":
        return str(driver)
    return None


def _storage_driver_fate(value: Any, snapshotters: Mapping[str, str] | None) -> Rule:
    if value in ("overlay2", "overlay"):
        return _i('containerd\'s default snapshotter "overlayfs" uses the same kernel overlay filesystem')
    if value == "devicemapper":
        return _x(
            "Docker's devicemapper storage keeps its images in a thin pool containerd cannot use: its "
            "devmapper snapshotter needs a pool of its own, which shimshift does not set up, and its "
            "overlayfs snapshotter may not work on the filesystem such nodes have under /var/lib",
            "move the node to overlay2 first (Docker removed devicemapper in 25.0), or configure "
            f"containerd's devmapper snapshotter and pool in {_EXTRA} yourself, then plan again",
        )
    if value in SNAPSHOTTER_DRIVERS:
        driver = str(value)
        if snapshotters is not None and snapshotters.get(driver) == "ok":
            return _t(
                f"the CRI plugin's snapshotter is \"{driver}\" (the node's containerd loads its {driver} "
                "snapshotter plugin); images are unpacked into it"
            )
        state = (snapshotters or {}).get(driver)
        why = f"reports {state}" if state else "is not loaded (or was not probed)"
        return _x(
            f"Docker stored images on {driver}; containerd's {driver} snapshotter plugin {why} on the node, "
            f'and its "overlayfs" snapshotter may not work on a {driver} /var/lib/containerd',
            f"make containerd load its {driver} snapshotter (its root, /var/lib/containerd/io.containerd."
            f"snapshotter.v1.{driver}, on {driver}; a containerd built with it), then probe the node again",
        )
    return _r(
        f'containerd uses the "overlayfs" snapshotter, not Docker\'s {_word(value)} storage driver',
        f"set the snapshotter in {_CRI_IMAGES} ({_EXTRA}) if the node needs another",
    )


def daemon_json_fate(
    key: str,
    value: Any,
    daemon: Mapping[str, Any] | None = None,
    snapshotters: Mapping[str, str] | None = None,
) -> Rule:
    """What becomes of daemon.json `key` set to `value`; `daemon`: the whole daemon.json, for a key
    whose fate depends on another (log-opts on log-driver); `snapshotters`: the node's containerd's
    snapshotter plugins and their status (`NodeFacts.snapshotters`), for storage-driver."""
    if key == "log-opts":
        return _log_opts_fate(value, daemon or {})
    if key == "exec-opts":
        other = [o for o in _strings(value) if o.partition("=")[0].strip() != "native.cgroupdriver"]
        if other:
            return _r(
                f"exec options other than native.cgroupdriver ({', '.join(other)}) have no containerd "
                "equivalent",
                f"check what they did; runc's options are under containerd.runtimes.runc.options ({_EXTRA})",
            )
        return _t(
            "native.cgroupdriver: SystemdCgroup of runc follows the kubelet's cgroupDriver, or Docker's "
            "driver when the kubelet sets none"
        )
    if key == "storage-driver":
        return _storage_driver_fate(value, snapshotters)
    if key == "log-driver":
        if value in ("json-file", "local", None, ""):
            return _i(
                "the kubelet writes container logs to /var/log/pods under containerd (readers of "
                "/var/lib/docker/containers are named among the Docker dependencies)"
            )
        driver = _word(value)
        return _r(
            f"Docker sent container logs to {driver}; under containerd the kubelet writes them to "
            "files in /var/log/pods only",
            f"run a log shipper that reads /var/log/pods (CRI log format) to keep sending them to {driver}",
        )
    if key == "default-runtime":
        return _default_runtime_fate(value, {**(daemon or {}), key: value})
    if key == "runtimes":
        return _runtimes_fate({**(daemon or {}), key: value})
    if key == "selinux-enabled":
        if value is not True:
            return _i("SELinux labelling was off under Docker; containerd's enable_selinux is off by default")
        return _r(
            "Docker labelled containers for SELinux; containerd's CRI plugin does not unless enable_selinux "
            "is set",
            f"set enable_selinux = true in {_CRI_RUNTIME} ({_EXTRA})",
        )
    if key == "ip-forward":
        if value is False:
            return _i("Docker left net.ipv4.ip_forward alone; so does containerd")
        return _r(
            "Docker set net.ipv4.ip_forward when it started; containerd does not, so after a reboot with "
            "Docker not started nothing sets it and pod traffic is not forwarded",
            "set net.ipv4.ip_forward = 1 in /etc/sysctl.d (as kubeadm's prerequisites say)",
        )
    if key == "userns-remap":
        if not value:
            return _i("userns-remap is empty: Docker did not remap user IDs; neither does containerd")
        who = "dockremap" if value == "default" else _word(value)
        return _x(
            f"Docker ran every container in a user namespace remapped to {who}'s subordinate "
            "IDs (container root was an unprivileged host uid); containerd's CRI plugin runs them with "
            "the host's IDs, so root in a container becomes root on the node, and the files pods wrote "
            "to hostPath and local volumes belong to the remapped uids (e.g. 100000 + N), not the N "
            "their processes run as after the switch",
            "turn userns-remap off under Docker first, in a maintenance window: stop Docker, chown the "
            "data pods wrote to hostPath and local volumes from the remapped range back (uid 100000 + N "
            "to N, as /etc/subuid gives the range), remove userns-remap from daemon.json, start Docker, "
            "check the pods, then plan again; pods that need a user namespace under containerd set "
            "hostUsers: false (Kubernetes 1.30+, containerd 2.0+)",
        )
    if key == "init":
        if value is not True:
            return _i("Docker ran no init in containers; neither does containerd")
        return _r(
            "Docker ran an init (docker-init) as PID 1 of every container; containerd runs none, so "
            "processes that leave zombies no longer have them reaped",
            "add an init (tini, dumb-init) to the images that need one, or set shareProcessNamespace",
        )
    return DAEMON_JSON.get(key, _UNKNOWN_KEY)


# ---- kubelet flags ------------------------------------------------------------------------------

_DROPPED = "dropped by the switch (dockershim-only; kubelet 1.24+ refuses it)"

#: Dockershim-era kubelet flags (without dashes) whose fate does not depend on their value. `docker*`
#: flags not named here go as `docker-endpoint` does (`kubelet_flag_fate`).
KUBELET_FLAGS: Mapping[str, Rule] = {
    "container-runtime": _t("remote before kubelet 1.27, dropped from 1.27 (which refuses it)"),
    "container-runtime-endpoint": _t("spec.kubelet.runtimeEndpoint (containerd's socket)"),
    "pod-infra-container-image": _t(
        "containerd's sandbox image (unless spec.containerd.sandboxImage sets one); the flag stays for "
        "the kubelet's image garbage collection until 1.35, which drops it"
    ),
    "docker": _i(_DROPPED + ": the Docker endpoint"),
    "docker-endpoint": _i(_DROPPED + ": the Docker endpoint dockershim used"),
    "docker-root": _i(_DROPPED + ": Docker's data root as dockershim saw it"),
    "dockershim-root-directory": _i(_DROPPED + ": dockershim's own state"),
    "experimental-dockershim-root-directory": _i(_DROPPED + ": dockershim's own state"),
    "image-pull-progress-deadline": _i(
        _DROPPED + ": containerd's CRI plugin has its own image_pull_progress_timeout (1.7 and later)"
    ),
    "non-masquerade-cidr": _i(_DROPPED + ": only kubenet read it"),
    "redirect-container-streaming": _i(
        "removed in kubelet 1.20, left as it is: containerd streams through the kubelet"
    ),
}

#: Flags decided by their value (`kubelet_flag_fate`); listed so the table names every flag.
KUBELET_FLAGS_BY_VALUE = frozenset(
    {"network-plugin", "network-plugin-mtu", "cni-bin-dir", "cni-conf-dir", "cni-cache-dir"}
)

#: Dockershim-era flags the switch step drops from the flags files (checked against steps.switch).
KUBELET_FLAGS_DROPPED = frozenset(
    {
        "network-plugin",
        "network-plugin-mtu",
        "cni-bin-dir",
        "cni-conf-dir",
        "cni-cache-dir",
        "docker",
        "docker-endpoint",
        "docker-root",
        "dockershim-root-directory",
        "experimental-dockershim-root-directory",
        "image-pull-progress-deadline",
        "non-masquerade-cidr",
    }
)


def kubelet_flags() -> frozenset[str]:
    """Every dockershim-era kubelet flag the tables name."""
    return frozenset(KUBELET_FLAGS) | KUBELET_FLAGS_BY_VALUE


def is_dockershim_era_flag(name: str) -> bool:
    """A flag these tables decide (the kubelet's other flags are not the migration's business)."""
    return name in kubelet_flags() or name.startswith("docker")


def cni_dir_key(flag: str, schema: int) -> str:
    """The containerd setting a --cni-bin-dir or --cni-conf-dir value belongs in, for `schema`."""
    plugin = "io.containerd.grpc.v1.cri" if schema == 2 else "io.containerd.cri.v1.runtime"
    return f'plugins."{plugin}".cni.{"bin_dir" if flag == "cni-bin-dir" else "conf_dir"}'


_PATH = re.compile(r"^/[^\s\x00-\x1f\x7f,\"\\]*$")


def _dirs(value: str) -> tuple[str, ...]:
    """A --cni-*-dir value as directories (the kubelet splits --cni-bin-dir on commas)."""
    return tuple(d.strip().rstrip("/") or "/" for d in value.split(",") if d.strip())


@dataclass(frozen=True)
class CniDirs:
    """The node's own CNI directories, from its kubelet's (or cri-dockerd's) dockershim flags, that
    containerd's CRI plugin is given: empty when the node uses containerd's defaults."""

    bin_dirs: tuple[str, ...] = ()
    conf_dir: str | None = None
    as_list: bool = False  # rendered as bin_dirs (containerd 2.1 and later), else bin_dir


def node_cni_dirs(
    kubelet_flags: tuple[tuple[str, str], ...],
    cri_dockerd_flags: tuple[tuple[str, str], ...] = (),
    *,
    bin_dirs: bool = False,
) -> CniDirs:
    """The CNI directories to carry into containerd: the kubelet's flag, else cri-dockerd's (where
    dockershim's settings live on 1.24+ nodes); `bin_dirs`: containerd reads the bin_dirs list (2.1
    and later, which log bin_dir as deprecated). A default directory needs nothing, and what
    containerd cannot take (several bin directories without bin_dirs; a value that is not an
    absolute path) is not carried, so the flag stays a blocker.

    The bin directory is the node's own: its kubelet already ran CNI plugins from it as root, so it
    is carried without spec.containerd.allowUnsafe (which a bin_dir set in extraConfig needs)."""
    flags = dict(cri_dockerd_flags) | dict(kubelet_flags)
    bins = _dirs(flags.get("cni-bin-dir", ""))
    confs = _dirs(flags.get("cni-conf-dir", ""))
    carried_bins: tuple[str, ...] = ()
    if bins and bins != (CNI_BIN_DIR,) and all(_PATH.match(d) for d in bins) and (len(bins) == 1 or bin_dirs):
        carried_bins = bins
    conf = None
    if len(confs) == 1 and confs[0] != CNI_CONF_DIR and _PATH.match(confs[0]):
        conf = confs[0]
    return CniDirs(carried_bins, conf, bin_dirs)


def kubelet_flag_fate(
    name: str,
    value: str,
    *,
    carried: bool = False,
    pod_cidrs: tuple[str, ...] | None = None,
    kubenet: bool = False,
) -> Rule:
    """What becomes of kubelet flag `--name=value`; `carried`: containerd's rendered configuration
    already holds its value (a CNI directory set through spec.containerd.extraConfig); `pod_cidrs`:
    the Node's podCIDRs, which a kubenet network is translated on (`model.kubenet`; None: unknown);
    `kubenet`: the node runs dockershim's kubenet."""
    if name == "network-plugin-mtu":
        if not kubenet:
            return _i(_DROPPED + ": only kubenet read it (dockershim's CNI network plugin ignores it)")
        if not pod_cidrs:
            return _i(_DROPPED + ": kubenet's network cannot be carried on this node (no podCIDR)")
        if value.strip().isdigit() and int(value) > 0:
            return _t(
                f"carried: the mtu of kubenet's bridge network in {KUBENET_FILE}; the switch drops the flag"
            )
        return _i(_DROPPED + f": kubenet chose its MTU itself, and {KUBENET_FILE} keeps what it chose")
    if name == "network-plugin":
        if value == "cni":
            return _i(_DROPPED + ": containerd's CRI plugin runs the CNI plugins itself")
        if value == "kubenet" and pod_cidrs:
            return _r(
                f"carried as kubenet's bridge network, the CNI configuration {KUBENET_FILE} in containerd's "
                f"CNI conf_dir (bridge {KUBENET_BRIDGE}, host-local IPAM on the Node's podCIDR "
                f"{', '.join(pod_cidrs)}, portmap), and the switch drops the flag; not as it was: the bridge "
                "masquerades all the pods' traffic that leaves this node's pod CIDR, where kubenet's "
                "iptables rule left traffic to --non-masquerade-cidr (10.0.0.0/8 by default) alone, so "
                "pods on other nodes see this node's address as the source of its pods' traffic",
                "nothing to do for connectivity; where pods must see each other's pod IPs, run "
                "ip-masq-agent, or move the cluster to a CNI plugin (the cluster's CNI) afterwards",
            )
        if value == "kubenet":
            return _x(
                "containerd has no kubenet network plugin, and the Node has no spec.podCIDR to translate "
                "kubenet's bridge network on, so pods would get no network and the node would stay "
                "NotReady (NetworkReady false)",
                "give the Node its podCIDR (kube-controller-manager --allocate-node-cidrs with "
                "--cluster-cidr, or spec.podCIDR when the node is registered), or move the node to a "
                "CNI plugin first with --network-plugin=cni, then plan again",
            )
        return _x(
            f"containerd has no {value or 'built-in'} network plugin, so pods "
            "would get no network and the node would stay NotReady (NetworkReady false)",
            "move the node to a CNI plugin first (for kubenet: the bridge and host-local CNI plugins, "
            "or the cluster's CNI) with --network-plugin=cni, then plan again",
        )
    if name in ("cni-bin-dir", "cni-conf-dir"):
        default = CNI_BIN_DIR if name == "cni-bin-dir" else CNI_CONF_DIR
        if value.rstrip("/") == default:
            return _i(_DROPPED + f": containerd's CRI plugin reads {default} by default too")
        if carried:
            what = "bin_dir (bin_dirs from containerd 2.1)" if name == "cni-bin-dir" else "conf_dir"
            return _t(
                f"carried: containerd's CNI {what} is {value}, and the switch drops the flag "
                "(dockershim-only; kubelet 1.24+ refuses it)"
            )
        return _x(
            f"containerd's CRI plugin would look for CNI in {default} instead (shimshift carries one "
            "absolute directory, several bin directories only into bin_dirs of containerd 2.1+), so pods "
            "would get no network and the node would stay NotReady",
            f"set {cni_dir_key(name, 2)} (schema 2) or {cni_dir_key(name, 3)} (schema 3 and 4) to "
            f"{value} in {_EXTRA}"
            + (" with RuntimeBinary in spec.containerd.allowUnsafe" if name == "cni-bin-dir" else "")
            + ", then plan again",
        )
    if name == "cni-cache-dir":
        if value.rstrip("/") == CNI_CACHE_DIR:
            return _i(_DROPPED + f": containerd's CNI library uses {CNI_CACHE_DIR} too")
        return _r(
            f"containerd's CNI library keeps its cache in {CNI_CACHE_DIR}; "
            "the cached results of the pods running now are not seen",
            "nothing to set: the node is drained, and new pods' results go to the default cache",
        )
    rule = KUBELET_FLAGS.get(name)
    if rule is not None:
        return rule
    if name.startswith("docker"):
        return _i(_DROPPED + ": a Docker setting of dockershim")
    return _r(
        f"--{name} is not a kubelet flag shimshift knows",
        "check it; the switch leaves it as it is",
    )


# ---- cri-dockerd's flags (dockershim's settings on kubelet 1.24+ nodes) --------------------------

_CRI_DOCKERD_OWN = "cri-dockerd's own setting; cri-dockerd is stopped at the switch"

#: cri-dockerd flags whose fate does not depend on their value; its network and sandbox flags are
#: decided as the kubelet's were (`cri_dockerd_flag_fate`).
CRI_DOCKERD_FLAGS: Mapping[str, Rule] = {
    "container-runtime-endpoint": _i(
        "cri-dockerd's own socket; the switch points the kubelet at containerd's "
        "(spec.kubelet.runtimeEndpoint)"
    ),
    "docker-endpoint": _i(_CRI_DOCKERD_OWN + ": the Docker socket it used"),
    "cri-dockerd-root-directory": _i(_CRI_DOCKERD_OWN + ": its own state"),
    "log-level": _i(_CRI_DOCKERD_OWN + ": its own log"),
    "streaming-bind-addr": _i(_CRI_DOCKERD_OWN + ": containerd streams through the kubelet"),
    "image-pull-progress-deadline": _i(
        _CRI_DOCKERD_OWN + ": containerd's CRI plugin has its own image_pull_progress_timeout (1.7 and later)"
    ),
    "runtime-cgroups": _i(_CRI_DOCKERD_OWN + ": the cgroup of its own process"),
    "hairpin-mode": _i(_CRI_DOCKERD_OWN + ": only kubenet read it"),
    "ipv6-dual-stack": _i(_CRI_DOCKERD_OWN + ": only kubenet read it"),
}


def cri_dockerd_flag_fate(
    name: str,
    value: str,
    *,
    carried: bool = False,
    sandbox: str | None = None,
    pod_cidrs: tuple[str, ...] | None = None,
    kubenet: bool = False,
) -> Rule:
    """What becomes of cri-dockerd's `--name=value`; `carried` as for `kubelet_flag_fate`, `sandbox`:
    the sandbox image containerd's rendered configuration uses."""
    if name == "network-plugin-mtu":
        return kubelet_flag_fate(name, value, pod_cidrs=pod_cidrs, kubenet=kubenet)
    if name in ("network-plugin", "cni-bin-dir", "cni-conf-dir", "cni-cache-dir"):
        rule = kubelet_flag_fate(name, value, carried=carried, pod_cidrs=pod_cidrs)
        if rule.fate is Fate.IRRELEVANT:
            return _i(
                _CRI_DOCKERD_OWN + ": containerd's CRI plugin runs the CNI plugins from the same defaults"
            )
        return rule
    if name == "pod-infra-container-image":
        if sandbox is not None and value == sandbox:
            return _t("containerd's sandbox image (the same image)")
        return _r(
            f"cri-dockerd's pod sandbox image {value} is not carried: containerd's is {sandbox or 'unknown'}",
            f"set spec.containerd.sandboxImage to {value} if the pods need that one (it is in Docker's "
            "store, so the images step migrates it)",
        )
    known = CRI_DOCKERD_FLAGS.get(name)
    if known is not None:
        return known
    return _r(
        f"cri-dockerd's --{name} is not a flag shimshift knows: nothing carries it into containerd",
        "check what it did and set its containerd equivalent by hand",
    )
