"""Node profiles: the files of a realistic pre-migration node, as data (pure, no I/O).

Each profile renders the node paths a real node of that kind has (kubelet flags and config,
containerd as docker-ce ships it, Docker's daemon.json with mirrors / insecure registries /
log options, CA files in /etc/docker/certs.d) and the fake-systemd units that run the real
daemons. ``render_node_files`` returns node path -> file content; ``cluster.py`` writes them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from testbed.nodes.layout import REGISTRY_HOST

REPO_ROOT = Path(__file__).resolve().parents[2]

# /etc/containerd/config.toml exactly as the docker-ce / containerd.io package ships it: no
# version line (so v1), and the CRI plugin disabled.
DOCKER_CE_CONTAINERD_CONFIG = """\
#   Copyright 2018-2022 Docker Inc.

#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at

#       http://www.apache.org/licenses/LICENSE-2.0

#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.

disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0

#[debug]
#  address = "/run/containerd/debug.sock"
#  uid = 0
#  gid = 0
#  level = "info"
"""

KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \
$KUBELET_EXTRA_ARGS
"""

CNI_CONFIG = {
    "cniVersion": "0.4.0",
    "name": "testbed",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}},
    ],
}


#: A real kubelet refuses a loopback node IP (``nodeIP can't be loopback address``), but a node is
#: reached only on the host's loopback (127.0.0.1x). So a real kubelet runs as on a cloud with an
#: external cloud controller manager: it leaves the Node's addresses to the cloud, and the testbed's
#: stand-in for that controller (``cloud.py``) sets InternalIP to the node's SSH address and removes
#: the ``node.cloudprovider.kubernetes.io/uninitialized`` taint. kubeadm nodes carry the flag in
#: /etc/default/kubelet (KUBELET_EXTRA_ARGS), Kubespray nodes in KUBELET_CLOUDPROVIDER.
EXTERNAL_CLOUD = "--cloud-provider=external"


class ProfileName(StrEnum):
    KUBEADM_SYSTEMD = "kubeadm-systemd"
    KUBEADM_CGROUPFS = "kubeadm-cgroupfs"
    KUBESPRAY = "kubespray"
    CRI_DOCKERD = "cri-dockerd"
    CONTAINERD_22 = "containerd-2.2"
    CONTAINERD_23 = "containerd-2.3"


class RegistryUse(StrEnum):
    MIRROR_WITH_CA = "mirror-with-ca"  # registry-mirrors + /etc/docker/certs.d/<host>/ca.crt
    INSECURE = "insecure"  # insecure-registries, no CA
    AIR_GAPPED = "air-gapped"  # no registry reachable at all


@dataclass(frozen=True)
class Profile:
    name: ProfileName
    kubelet_version: str
    cgroup_driver: str  # kubelet and Docker agree before the migration
    layout: str  # "kubeadm", "kubespray" or "cri-dockerd"
    registry: RegistryUse
    sandbox_image: str
    #: containerd built from its Go module (scripts/components/versions) in place of Debian's 1.6.20
    #: at /usr/bin/{containerd,ctr,containerd-shim-runc-v2}; None keeps Debian's
    containerd: str | None = None
    #: crictl built from cri-tools at /usr/local/bin/crictl, as a kubeadm node has it (cri-tools is a
    #: dependency of the kubeadm package); None: no crictl on the node
    crictl: str | None = None

    @property
    def uses_registry(self) -> bool:
        return self.registry is not RegistryUse.AIR_GAPPED

    @property
    def containerd_version(self) -> str:
        """What `containerd --version` reports on such a node."""
        return f"v{self.containerd}" if self.containerd else DEBIAN_CONTAINERD


#: Debian bookworm's containerd package, what `containerd --version` prints for it
DEBIAN_CONTAINERD = "1.6.20~ds1"
#: the crictl every kubeadm-like profile gets (a line of scripts/components/versions)
CRICTL = "1.34.0"


PROFILES: dict[ProfileName, Profile] = {
    p.name: p
    for p in (
        Profile(
            ProfileName.KUBEADM_SYSTEMD,
            "1.23.17",
            "systemd",
            "kubeadm",
            RegistryUse.MIRROR_WITH_CA,
            "k8s.gcr.io/pause:3.6",
            crictl=CRICTL,
        ),
        Profile(
            ProfileName.KUBEADM_CGROUPFS,
            "1.23.17",
            "cgroupfs",
            "kubeadm",
            RegistryUse.INSECURE,
            "k8s.gcr.io/pause:3.6",
            crictl=CRICTL,
        ),
        # Kubespray on Docker installs no crictl: the profile where verify falls back to ctr
        Profile(
            ProfileName.KUBESPRAY,
            "1.23.17",
            "systemd",
            "kubespray",
            RegistryUse.AIR_GAPPED,
            "k8s.gcr.io/pause:3.6",
        ),
        Profile(
            ProfileName.CRI_DOCKERD,
            "1.27.16",
            "systemd",
            "cri-dockerd",
            RegistryUse.MIRROR_WITH_CA,
            "registry.k8s.io/pause:3.9",
            crictl=CRICTL,
        ),
        # Docker 20.10 over a containerd 2.x built from its module: the target config schema is 3 on
        # 2.2 and 4 on 2.3, rendered for and loaded by that very containerd
        Profile(
            ProfileName.CONTAINERD_22,
            "1.23.17",
            "cgroupfs",
            "kubeadm",
            RegistryUse.MIRROR_WITH_CA,
            "k8s.gcr.io/pause:3.6",
            containerd="2.2.9",
            crictl=CRICTL,
        ),
        Profile(
            ProfileName.CONTAINERD_23,
            "1.27.16",
            "systemd",
            "cri-dockerd",
            RegistryUse.MIRROR_WITH_CA,
            "registry.k8s.io/pause:3.9",
            containerd="2.3.7",
            crictl=CRICTL,
        ),
    )
}

#: Profile names in a fixed order (the session cluster has one node of each, in this order).
PROFILE_NAMES: list[str] = [p.value for p in ProfileName]


def profile(name: str | ProfileName) -> Profile:
    try:
        return PROFILES[ProfileName(name)]
    except ValueError as e:
        known = ", ".join(p.value for p in ProfileName)
        raise ValueError(f"unknown node profile {name!r}; known profiles: {known}") from e


#: What a real kubelet needs in a node without systemd, in a network namespace on a shared host
#: (kind and usernetes run kubelet so): no QoS cgroup hierarchy or node-allocatable enforcement (the
#: nodes share the host's cgroup tree, and Docker puts each container in its own cgroup), swap
#: allowed, eviction and image garbage collection that never fire on a busy test host.
#:
#: Where a real kubelet's node cannot be laid out as a real node is:
#: - the unit runs the built binary from the component cache, not /usr/bin/kubelet (kubeadm) or
#:   /usr/local/bin/kubelet (Kubespray): /usr is the host's, shared by every node;
#: - the lines below are added to the profile's KubeletConfiguration, and ``EXTERNAL_CLOUD`` to its flags;
#: - the systemd cgroup driver (kubeadm-systemd, kubespray, cri-dockerd): kubelet 1.23 with
#:   ``cgroupDriver: systemd`` and ``cgroupsPerQOS: false`` starts and reports Ready without systemd
#:   (it never asks systemd for a cgroup then), but every pod sandbox fails in runc ("systemd not running
#:   on this host, cannot use systemd cgroups manager"): on those profiles a real kubelet's pods stay
#:   ContainerCreating under Docker (seen with dockershim; containerd with ``SystemdCgroup = true`` calls
#:   the same runc, not tried). Pods run for real on kubeadm-cgroupfs only;
#: - the cri-dockerd profile's kubelet is 1.27.16, which is not built (the cache has 1.23.17, 1.24.17 and
#:   1.34.4), so ``real_kubelet`` refuses that profile with ``ComponentMissing``.
REAL_KUBELET_SETTINGS = [
    "# testbed: a real kubelet in a node without systemd on a shared host (as kind and usernetes run it)",
    "cgroupsPerQOS: false",
    "enforceNodeAllocatable: []",
    "failSwapOn: false",
    "imageGCHighThresholdPercent: 100",
    "imageGCLowThresholdPercent: 99",
    "evictionHard:",
    '  imagefs.available: "0%"',
    '  nodefs.available: "0%"',
    '  nodefs.inodesFree: "0%"',
    "syncFrequency: 5s",
    "nodeStatusUpdateFrequency: 4s",
    "fileCheckFrequency: 5s",
]


def _kubelet_config(p: Profile, real: bool = False, port: int | None = None) -> str:
    lines = [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        f"cgroupDriver: {p.cgroup_driver}",
        "clusterDNS:",
        "- 10.96.0.10",
        "clusterDomain: cluster.local",
        "authentication:",
        "  anonymous:",
        "    enabled: false",
        "  x509:",
        "    clientCAFile: /etc/kubernetes/pki/ca.crt",
        "rotateCertificates: true",
        "staticPodPath: /etc/kubernetes/manifests",
    ]
    if p.layout == "cri-dockerd":
        lines.append("containerRuntimeEndpoint: unix:///run/cri-dockerd.sock")
    if real:
        lines += REAL_KUBELET_SETTINGS
        if port is not None:  # the host relays the node's address at this port to it (cluster.py)
            lines.append(f"port: {port}")
    return "\n".join(lines) + "\n"


def _daemon_json(p: Profile) -> str:
    config: dict[str, object] = {
        "exec-opts": [f"native.cgroupdriver={p.cgroup_driver}"],
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3"},
        "storage-driver": "overlay2",
    }
    if p.registry is RegistryUse.MIRROR_WITH_CA:
        config["registry-mirrors"] = [f"https://{REGISTRY_HOST}"]
    elif p.registry is RegistryUse.INSECURE:
        config["insecure-registries"] = [REGISTRY_HOST]
    return json.dumps(config, indent=2) + "\n"


def _unit(exec_argv: list[str], **extra: object) -> str:
    return json.dumps({"exec": exec_argv, **extra}, indent=1) + "\n"


def kubeadm_annotations(p: Profile) -> dict[str, str]:
    """What kubeadm puts on the Node object of a node of profile ``p`` when it joins."""
    if p.layout == "kubeadm":
        return {"kubeadm.alpha.kubernetes.io/cri-socket": "/var/run/dockershim.sock"}
    if p.layout == "cri-dockerd":
        return {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/cri-dockerd.sock"}
    return {}


#: The real kubelet's health endpoint (its default ``healthzPort``), which the unit waits for.
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"


def _kubelet_unit(p: Profile, node_ip: str, kubelet_binary: str | None = None) -> str:
    kubelet = [kubelet_binary] if kubelet_binary else [sys.executable, "-m", "testbed.nodes.kubelet"]
    # what a real kubelet binary knows about itself, and what kubeadm put on the Node
    env: dict[str, str] = {}
    if not kubelet_binary:
        env = {
            "PYTHONPATH": str(REPO_ROOT),
            "FAKE_KUBELET_VERSION": p.kubelet_version,
            "FAKE_KUBELET_NODE_IP": node_ip,
            "FAKE_KUBELET_ANNOTATIONS": json.dumps(kubeadm_annotations(p)),
        }
    if p.layout == "kubespray":
        # Kubespray: /etc/systemd/system/kubelet.service with EnvironmentFile=/etc/kubernetes/kubelet.env
        args = [
            "$KUBE_LOGTOSTDERR",
            "$KUBE_LOG_LEVEL",
            "$KUBELET_API_SERVER",
            "$KUBELET_ADDRESS",
            "$KUBELET_HOSTNAME",
            "$KUBELET_ARGS",
            "$DOCKER_SOCKET",
            "$KUBELET_NETWORK_PLUGIN",
            "$KUBELET_VOLUME_PLUGIN",
            "$KUBELET_CLOUDPROVIDER",
        ]
        files = ["/etc/kubernetes/kubelet.env"]
    else:
        env |= {
            "KUBELET_KUBECONFIG_ARGS": "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "KUBELET_CONFIG_ARGS": "--config=/var/lib/kubelet/config.yaml",
        }
        args = [
            "$KUBELET_KUBECONFIG_ARGS",
            "$KUBELET_CONFIG_ARGS",
            "$KUBELET_KUBEADM_ARGS",
            "$KUBELET_EXTRA_ARGS",
        ]
        files = ["-/var/lib/kubelet/kubeadm-flags.env", "-/etc/default/kubelet"]
    if kubelet_binary:
        # kubelet.service is Type=simple: systemd does not wait for it. The stand-in waits for the
        # health endpoint instead, so a kubelet that refuses its flags fails the start job at once.
        return _unit(
            kubelet + args,
            environment=env,
            environment_files=files,
            description="kubelet: The Kubernetes Node Agent",
            ready={"exec": ["curl", "-sf", "-m", "1", "-o", "/dev/null", KUBELET_HEALTHZ]},
            start_timeout=90,
            stop_timeout=20,
        )
    return _unit(
        kubelet + args,
        environment=env,
        environment_files=files,
        description="kubelet (testbed fake)",
        ready={"file": "/var/lib/kubelet/fake-kubelet.ready"},
        start_timeout=30,
    )


def render_node_files(
    p: Profile,
    node_name: str,
    node_ip: str,
    host_etc_hosts: str,
    registry_ca_pem: str | None,
    kubelet_binary: str | None = None,
    cri_dockerd_binary: str | None = None,
    kubelet_port: int | None = None,
) -> dict[str, str]:
    """All node files of profile ``p`` for one node, keyed by node path. With ``kubelet_binary`` the
    kubelet unit runs that real kubelet (else the Python model), and the kubelet's files carry what a
    real kubelet needs here (``REAL_KUBELET_SETTINGS``, the external cloud provider flag)."""
    real = kubelet_binary is not None
    files: dict[str, str] = {
        "/etc/hostname": node_name + "\n",
        "/etc/containerd/config.toml": DOCKER_CE_CONTAINERD_CONFIG,
        "/etc/docker/daemon.json": _daemon_json(p),
        "/etc/cni/net.d/10-testbed.conflist": json.dumps(CNI_CONFIG, indent=2) + "\n",
        "/etc/fake-systemd/containerd.json": _unit(
            ["/usr/bin/containerd"],
            description="containerd container runtime",
            ready={"socket": "/run/containerd/containerd.sock"},
        ),
        # The flags that must never be dropped here: the testbed allows loopback traffic only.
        "/etc/fake-systemd/docker.json": _unit(
            [
                "/usr/sbin/dockerd",
                "-H",
                "unix:///run/docker.sock",
                "--containerd=/run/containerd/containerd.sock",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
            ],
            description="Docker Application Container Engine",
            wants=["containerd"],
            ready={"socket": "/run/docker.sock"},
            stop_timeout=15,
        ),
        "/etc/fake-systemd/kubelet.json": _kubelet_unit(p, node_ip, kubelet_binary),
    }
    hosts = host_etc_hosts.rstrip("\n") + f"\n127.0.1.1\t{node_name}\n"
    if p.uses_registry:
        hosts += f"127.0.0.1\t{REGISTRY_HOST}\n"
    files["/etc/hosts"] = hosts
    if p.registry is RegistryUse.MIRROR_WITH_CA and registry_ca_pem:
        files[f"/etc/docker/certs.d/{REGISTRY_HOST}/ca.crt"] = registry_ca_pem
    if p.layout == "kubespray":
        files["/etc/kubernetes/kubelet.env"] = (
            'KUBE_LOGTOSTDERR="--logtostderr=true"\n'
            'KUBE_LOG_LEVEL="--v=2"\n'
            f'KUBELET_ADDRESS="--node-ip={node_ip}"\n'
            f'KUBELET_HOSTNAME="--hostname-override={node_name}"\n'
            'KUBELET_ARGS="--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \\\n'
            "--config=/etc/kubernetes/kubelet-config.yaml \\\n"
            "--kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
            f"--pod-infra-container-image={p.sandbox_image} \\\n"
            '--runtime-cgroups=/systemd/system.slice  "\n'
            'KUBELET_NETWORK_PLUGIN="--network-plugin=cni --cni-conf-dir=/etc/cni/net.d '
            '--cni-bin-dir=/opt/cni/bin"\n'
            f'KUBELET_CLOUDPROVIDER="{EXTERNAL_CLOUD if real else ""}"\n'
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        )
        files["/etc/kubernetes/kubelet-config.yaml"] = _kubelet_config(p, real, kubelet_port)
        files["/etc/systemd/system/kubelet.service"] = (
            "[Service]\nEnvironmentFile=-/etc/kubernetes/kubelet.env\n"
            "ExecStart=/usr/local/bin/kubelet $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBELET_API_SERVER "
            "$KUBELET_ADDRESS $KUBELET_PORT $KUBELET_HOSTNAME $KUBELET_ARGS $DOCKER_SOCKET "
            "$KUBELET_NETWORK_PLUGIN $KUBELET_VOLUME_PLUGIN $KUBELET_CLOUDPROVIDER\n"
        )
    else:
        flags = [f"--pod-infra-container-image={p.sandbox_image}"]
        if p.layout == "kubeadm":
            flags.insert(0, "--network-plugin=cni")
        files["/var/lib/kubelet/kubeadm-flags.env"] = f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n'
        files["/var/lib/kubelet/config.yaml"] = _kubelet_config(p, real, kubelet_port)
        files["/etc/default/kubelet"] = f"KUBELET_EXTRA_ARGS={EXTERNAL_CLOUD if real else ''}\n"
        files["/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"] = KUBEADM_DROPIN
    if p.layout == "cri-dockerd" and cri_dockerd_binary:
        # the real adapter; its socket is not handed over by systemd (fd://), it listens itself
        files["/etc/fake-systemd/cri-docker.json"] = _unit(
            [
                cri_dockerd_binary,
                "--container-runtime-endpoint",
                "unix:///run/cri-dockerd.sock",
                "--network-plugin=cni",
                f"--pod-infra-container-image={p.sandbox_image}",
            ],
            description="CRI Interface for Docker Application Container Engine",
            wants=["docker"],
            ready={"socket": "/run/cri-dockerd.sock"},
        )
    elif p.layout == "cri-dockerd":
        # Without the built cri-dockerd, a socat that relays the cri-dockerd socket to dockerd stands
        # in for it, so the endpoint exists only while cri-docker.service runs.
        files["/etc/fake-systemd/cri-docker.json"] = _unit(
            [
                "/usr/bin/socat",
                "UNIX-LISTEN:/run/cri-dockerd.sock,fork,unlink-early",
                "UNIX-CONNECT:/run/docker.sock",
            ],
            description="CRI Interface for Docker Application Container Engine (testbed stand-in)",
            wants=["docker"],
            ready={"socket": "/run/cri-dockerd.sock"},
        )
        files["/etc/systemd/system/cri-docker.service"] = (
            "[Service]\nExecStart=/usr/bin/cri-dockerd --container-runtime-endpoint fd:// "
            "--network-plugin=cni "
            f"--pod-infra-container-image={p.sandbox_image}\n"
        )
    return files


def services_to_start(p: Profile) -> list[str]:
    return ["containerd", "docker"] + (["cri-docker"] if p.layout == "cri-dockerd" else [])
