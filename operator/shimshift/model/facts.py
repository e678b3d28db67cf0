"""What a read-only probe learned about one node: the input of planning and rendering.

Facts are tolerant of missing pieces: whatever could not be read is None/empty and explained in
`unreadable`, so a report can say exactly what is unknown instead of guessing. Secret material (client
keys) is never carried: only its path and a sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class KubeletLayout(StrEnum):
    """Where a node's kubelet gets its runtime flags: the file the switch step edits
    (steps/switch/kubelet.py)."""

    KUBEADM_FLAGS = "KubeadmFlags"  # /var/lib/kubelet/kubeadm-flags.env
    DEFAULT_FILE = "DefaultFile"  # /etc/default/kubelet
    SYSCONFIG_FILE = "SysconfigFile"  # /etc/sysconfig/kubelet
    KUBESPRAY_ENV = "KubesprayEnv"  # /etc/kubernetes/kubelet.env
    KUBELET_CONFIGURATION = "KubeletConfiguration"  # containerRuntimeEndpoint in the config file
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Setting:
    """A value and where it is set (file and key or flag), so edits and reports can point at it."""

    value: str
    file: str
    key: str


@dataclass(frozen=True)
class KubeletFacts:
    version: str | None = None
    layout: KubeletLayout = KubeletLayout.UNKNOWN
    flags_file: str | None = None
    flags: tuple[tuple[str, str], ...] = ()  # (flag name without dashes, value) in file order
    config_file: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    runtime_endpoint: Setting | None = None
    container_runtime: Setting | None = None  # --container-runtime=docker|remote (gone in 1.27)
    cgroup_driver: Setting | None = None
    pod_infra_image: Setting | None = None
    instance_config_file: str | None = None
    #: Raw text of every kubelet file the probe read (flags files, config, instance-config), by path:
    #: the switch edits these bytes, so untouched lines stay byte-identical.
    files: Mapping[str, str] = field(default_factory=dict)
    #: systemd units the kubelet's flags come from (unit file and drop-ins), by path, for reports.
    units: Mapping[str, str] = field(default_factory=dict)
    active: bool | None = None
    #: the other files its units read in EnvironmentFile= (not the flags files), by path: only their
    #: assignments of flags, the other lines blanked (the probe sends no more; line numbers kept)
    env_files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DockerCertFiles:
    """/etc/docker/certs.d/<host>/: CA certificates (public, carried) and client pairs (paths only)."""

    host: str
    ca_certs: Mapping[str, str] = field(default_factory=dict)  # file path -> PEM text
    client_certs: tuple[str, ...] = ()  # *.cert paths
    client_keys: Mapping[str, str] = field(default_factory=dict)  # *.key path -> sha256 (never the key)


@dataclass(frozen=True)
class DockerImage:
    id: str  # sha256:<config digest>, the image ID; equal to containerd's config digest
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0
    in_use: bool = False


@dataclass(frozen=True)
class K8sContainer:
    """A Docker container that dockershim created (`k8s_<container>_<pod>_<ns>_<uid>_<n>`)."""

    name: str
    container: str
    pod: str
    namespace: str
    image: str
    running: bool


@dataclass(frozen=True)
class OutsideContainer:
    """A running Docker container the kubelet did not create (`docker run`, compose, a systemd unit):
    dockershim's containers carry the `io.kubernetes.pod.name` label and a `k8s_` name, these do not.
    Stopping Docker at the switch stops them too."""

    name: str
    image: str
    restart_policy: str = ""  # Docker's RestartPolicy.Name: no, always, unless-stopped, on-failure


class Distribution(StrEnum):
    """A Kubernetes distribution whose node shimshift refuses, and why it is recognised."""

    RKE1 = "RKE1"  # Rancher's RKE: the kubelet itself is a Docker container
    K3S = "k3s"  # k3s embeds its own containerd
    RKE2 = "RKE2"  # RKE2 embeds its own containerd


#: How many outside containers the facts keep by name; the rest are counted.
MAX_OUTSIDE_CONTAINERS = 50


@dataclass(frozen=True)
class NodeFacts:
    node: str
    os_release: str | None = None
    kernel: str | None = None
    docker_version: str | None = None
    docker_running: bool = False
    docker_cgroup_driver: str | None = None
    containerd_version: str | None = None
    containerd_config: str | None = None  # text of /etc/containerd/config.toml
    #: The config's schema: 1 when it has no `version` line (docker-ce's file), else its `version`.
    containerd_config_version: int | None = None
    containerd_running: bool = False
    containerd_root: str = "/var/lib/containerd"
    containerd_root_free_bytes: int | None = None
    #: the mount point of the filesystem containerd's root is on (df's "Mounted on")
    containerd_root_mount: str | None = None
    #: Docker's data root (docker info DockerRootDir), its filesystem's mount point and free bytes
    docker_root: str | None = None
    docker_root_mount: str | None = None
    docker_root_free_bytes: int | None = None
    #: whether Docker's data root and containerd's root are on one filesystem (one device number);
    #: None when not probed
    roots_share_filesystem: bool | None = None
    containerd_images: tuple[str, ...] = ()  # image IDs already in containerd's k8s.io namespace
    cri_enabled: bool | None = None
    #: the snapshotter plugins `ctr plugins ls` lists (overlayfs, zfs, btrfs, ...) and their status
    snapshotters: Mapping[str, str] = field(default_factory=dict)
    #: what `crictl --version` reports ("v1.34.0"); None when the node has no crictl, and verify then
    #: checks the CRI plugin with ctr instead of asking crictl what the kubelet would see
    crictl_version: str | None = None
    daemon_json: Mapping[str, Any] | None = None
    docker_certs: tuple[DockerCertFiles, ...] = ()
    kubelet: KubeletFacts = field(default_factory=KubeletFacts)
    images: tuple[DockerImage, ...] = ()
    containers: tuple[K8sContainer, ...] = ()
    cri_dockerd: bool = False  # a cri-dockerd service or socket exists (1.24+ on Docker)
    #: the flags cri-dockerd's service starts it with (its --network-plugin, --cni-*,
    #: --pod-infra-container-image: dockershim's settings on 1.24+ nodes), and the unit file they are in
    cri_dockerd_flags: tuple[tuple[str, str], ...] = ()
    cri_dockerd_unit: str | None = None
    #: HTTP_PROXY / HTTPS_PROXY / NO_PROXY (either case) set by `Environment=` in docker.service in
    #: /etc/systemd/system and its docker.service.d drop-ins, in systemd's order (`model.proxy`):
    #: (value, file, variable as written); a reset (`Environment=`) has an empty variable
    docker_proxy_env: tuple[Setting, ...] = ()
    #: text of /etc/systemd/system/containerd.service.d/*.conf by path: containerd's own drop-ins
    containerd_dropins: Mapping[str, str] = field(default_factory=dict)
    #: text of docker.service and containerd.service in /etc/systemd/system, /run/systemd/system,
    #: /usr/local/lib/systemd/system, /lib/systemd/system and /usr/lib/systemd/system, of docker.service.d's
    #: drop-ins, and of containerd.service.d's outside /etc, by path (those in /etc: containerd_dropins)
    service_units: Mapping[str, str] = field(default_factory=dict)
    #: LimitNOFILE / LimitMEMLOCK of the running containerd (/proc/<pid>/limits, systemd's syntax):
    #: what every container's shim inherited; empty when not read
    containerd_limits: Mapping[str, str] = field(default_factory=dict)
    #: the command of the running containerd's parent process (`dockerd` when dockerd started it)
    containerd_parent: str | None = None
    #: `ctr oci spec`: the node's containerd's default OCI spec (JSON text), None when not read
    containerd_default_spec: str | None = None
    services: Mapping[str, bool] = field(default_factory=dict)  # unit -> active, for docker/containerd/...
    #: Docker's running containers that are not the kubelet's (at most MAX_OUTSIDE_CONTAINERS), and
    #: how many more there are; empty in facts from a probe that did not list them
    outside_containers: tuple[OutsideContainer, ...] = ()
    outside_containers_more: int = 0
    #: an RKE1, k3s or RKE2 node (None: none of them), and what gave it away
    distribution: Distribution | None = None
    distribution_evidence: str = ""
    #: the CNI configuration directories the probe listed (the default and any --cni-conf-dir):
    #: directory -> the names of its *.conf, *.conflist and *.json files, sorted (empty: none, or no
    #: such directory); a directory not listed was not probed
    cni_conf_dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cni_configs: Mapping[str, str] = field(default_factory=dict)  # path -> text, of those files
    #: the CNI plugin directories the probe listed (the default and any --cni-bin-dir): directory ->
    #: the names in it (empty: none, or no such directory)
    cni_bin_dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the binaries of daemon.json's runtimes the probe looked for as containerd will run them (each
    #: runtime's path, the containerd-shim-* of each runtime type): as named -> the executable found
    #: ("" when none is); a binary not listed was not looked for
    runtime_binaries: Mapping[str, str] = field(default_factory=dict)
    #: the Node object's spec.podCIDRs (else spec.podCIDR), not the probe's: what a kubenet node's
    #: bridge network allocates from (`model.kubenet`); set by the facts step and the plan
    pod_cidrs: tuple[str, ...] = ()
    #: the smallest MTU of the node's interfaces that are up and neither loopback nor point-to-point,
    #: as kubenet chose its bridge's MTU without --network-plugin-mtu; 0: none suitable (kubenet fell
    #: back to 1460); None: not probed
    min_link_mtu: int | None = None
    unreadable: Mapping[str, str] = field(default_factory=dict)  # what could not be read -> why

    @property
    def runtime_endpoint(self) -> str | None:
        setting = self.kubelet.runtime_endpoint
        return setting.value if setting else None

    @property
    def on_containerd(self) -> bool:
        """The kubelet already talks to containerd: nothing to migrate."""
        endpoint = self.runtime_endpoint or ""
        return "containerd" in endpoint

    @property
    def dockershim_node(self) -> bool:
        """Docker runs and the kubelet uses it (dockershim's default, an explicit docker runtime, or
        cri-dockerd): a node shimshift can migrate."""
        if self.on_containerd or self.docker_version is None:
            return False
        runtime = self.kubelet.container_runtime.value if self.kubelet.container_runtime else None
        endpoint = self.runtime_endpoint
        if endpoint is None:
            return runtime in (None, "docker")
        return "dockershim" in endpoint or "cri-dockerd" in endpoint or "docker" in endpoint

    @property
    def containerd_major(self) -> int | None:
        """1 for containerd 1.x, 2 for 2.x; None when unknown."""
        if not self.containerd_version:
            return None
        head = self.containerd_version.lstrip("v").split(".", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def containerd_minor(self) -> int | None:
        """3 for containerd 2.3.x; None when unknown."""
        if not self.containerd_version:
            return None
        parts = self.containerd_version.lstrip("v").split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def kubelet_minor(self) -> int | None:
        """24 for kubelet v1.24.x; None when unknown."""
        version = self.kubelet.version
        if not version:
            return None
        parts = version.lstrip("v").split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
