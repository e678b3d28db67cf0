"""Generate snapshot directories for `shimshift plan --snapshot`: the embedded example and bench fleets.

`example` is the realistic cluster committed as examples/snapshot/ (3 control-plane + 9 workers, about
150 pods): a PDB that never allows an eviction, one that blocks now, a DaemonSet mounting docker.sock,
a log shipper on /var/lib/docker/containers, cAdvisor on Docker labels, CI runners with Docker-in-Docker
and the host socket, an unmanaged pod, completed Job pods, a node with an insecure registry in
daemon.json, a node short on disk, mixed cgroup drivers, an admin-cordoned node and a node already on
containerd. `fleet` scales the same shapes to bench sizes (5,000 nodes / 150,000 pods / 2,000 PDBs).
Both are deterministic for a given seed.

    python -m testbed.snapshot_gen example examples/snapshot
    python -m testbed.snapshot_gen fleet /tmp/fleet --nodes 5000 --pods 150000 --pdbs 2000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shimshift.model.facts import DockerImage, KubeletFacts, KubeletLayout, NodeFacts, Setting
from shimshift.planning.snapshot import write_snapshot

TAKEN_AT = "2026-01-15T09:30:00Z"
KUBELET_VERSION = "v1.23.17"
DOCKER_VERSION = "20.10.24"
CONTAINERD_VERSION = "1.6.20"
GIB = 1024**3
MIB = 1024**2
PAUSE = "k8s.gcr.io/pause:3.6"
DOCKER_CE_CONTAINERD_CONFIG = (
    "#   Copyright 2018-2022 Docker Inc.\n\n"
    '#   Licensed under the Apache License, Version 2.0 (the "License");\n\n'
    'disabled_plugins = ["cri"]\n\n'
    '#root = "/var/lib/containerd"\n#state = "/run/containerd"\n'
)
CP_LABEL = "node-role.kubernetes.io/control-plane"
WORKER_LABEL = "node-role.kubernetes.io/worker"


def _uid(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def image_id(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


@dataclass
class Cluster:
    """Raw objects being assembled, as `kubectl get -o json` would print them."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    pdbs: list[dict[str, Any]] = field(default_factory=list)
    controllers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)  # reference -> size

    def add_controller(self, plural: str, obj: dict[str, Any]) -> None:
        self.controllers.setdefault(plural, []).append(obj)

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        return {"nodes": self.nodes, "pods": self.pods, "poddisruptionbudgets": self.pdbs, **self.controllers}


def node_obj(name: str, *, control_plane: bool, runtime: str, unschedulable: bool = False) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    labels[CP_LABEL if control_plane else WORKER_LABEL] = ""
    annotations = {"kubeadm.alpha.kubernetes.io/cri-socket": "/var/run/dockershim.sock"}
    if runtime.startswith("containerd"):
        annotations["kubeadm.alpha.kubernetes.io/cri-socket"] = "unix:///run/containerd/containerd.sock"
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24"}
    if unschedulable:
        spec["unschedulable"] = True
    if control_plane:
        spec["taints"] = [{"key": CP_LABEL, "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": _uid("node", name), "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {
                "containerRuntimeVersion": runtime,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "osImage": "Ubuntu 20.04.6 LTS",
                "kernelVersion": "5.4.0-169-generic",
            },
        },
    }


def container(
    name: str,
    image: str,
    *,
    mounts: Mapping[str, str] | None = None,
    privileged: bool = False,
    command: Sequence[str] = (),
    args: Sequence[str] = (),
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image}
    if command:
        c["command"] = list(command)
    if args:
        c["args"] = list(args)
    if mounts:
        c["volumeMounts"] = [{"name": v, "mountPath": p} for v, p in mounts.items()]
    if privileged:
        c["securityContext"] = {"privileged": True}
    return c


def host_path(name: str, path: str, kind: str = "") -> dict[str, Any]:
    hp: dict[str, Any] = {"path": path}
    if kind:
        hp["type"] = kind
    return {"name": name, "hostPath": hp}


def empty_dir(name: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {}}


@dataclass(frozen=True)
class Workload:
    """A pod template and its controller, enough to stamp out pods."""

    namespace: str
    name: str
    kind: str  # Deployment | StatefulSet | DaemonSet | Job | "" (unmanaged)
    containers: tuple[dict[str, Any], ...]
    volumes: tuple[dict[str, Any], ...] = ()
    replicas: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    grace: int = 30


def _pod_labels(w: Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": w.name, **w.labels}


def add_workload(cluster: Cluster, w: Workload, placement: Sequence[str], *, rs_hash: str = "") -> None:
    """Add `w`'s controller objects and one pod per entry of `placement` (node names)."""
    labels = _pod_labels(w)
    template = {"metadata": {"labels": labels}, "spec": {"containers": list(w.containers)}}
    meta = {
        "namespace": w.namespace,
        "name": w.name,
        "uid": _uid(w.namespace, w.kind, w.name),
        "labels": labels,
    }
    owner: dict[str, Any] | None = None
    selector = {"matchLabels": labels}
    if w.kind == "Deployment":
        rs_hash = rs_hash or hashlib.sha256(w.name.encode()).hexdigest()[:10]
        rs_name = f"{w.name}-{rs_hash}"
        cluster.add_controller(
            "deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {"replicas": w.replicas, "selector": selector, "template": template},
            },
        )
        rs_uid = _uid(w.namespace, "ReplicaSet", rs_name)
        cluster.add_controller(
            "replicasets",
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "namespace": w.namespace,
                    "name": rs_name,
                    "uid": rs_uid,
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": w.name,
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {"replicas": w.replicas, "selector": selector, "template": template},
            },
        )
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": rs_name,
            "uid": rs_uid,
            "controller": True,
        }
        names = [
            f"{rs_name}-{hashlib.sha256(f'{rs_name}{i}'.encode()).hexdigest()[:5]}"
            for i in range(len(placement))
        ]
    elif w.kind in ("StatefulSet", "DaemonSet", "Job"):
        plural = {"StatefulSet": "statefulsets", "DaemonSet": "daemonsets", "Job": "jobs"}[w.kind]
        spec: dict[str, Any] = {"selector": selector, "template": template}
        if w.kind == "StatefulSet":
            spec["replicas"] = w.replicas
        if w.kind == "Job":
            spec["parallelism"] = 1
        api = "batch/v1" if w.kind == "Job" else "apps/v1"
        cluster.add_controller(plural, {"apiVersion": api, "kind": w.kind, "metadata": meta, "spec": spec})
        owner = {"apiVersion": api, "kind": w.kind, "name": w.name, "uid": meta["uid"], "controller": True}
        if w.kind == "StatefulSet":
            names = [f"{w.name}-{i}" for i in range(len(placement))]
        else:
            names = [f"{w.name}-{hashlib.sha256(f'{w.name}{n}'.encode()).hexdigest()[:5]}" for n in placement]
    else:
        names = [w.name]
    for pod_name, node in zip(names, placement, strict=True):
        cluster.pods.append(pod_obj(w, pod_name, node, owner))
    for c in w.containers:
        cluster.images.setdefault(c["image"], _image_size(c["image"]))


def pod_obj(
    w: Workload, name: str, node: str, owner: Mapping[str, Any] | None, *, phase: str = "", ready: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": w.namespace,
        "name": name,
        "uid": _uid(w.namespace, "Pod", name),
        "labels": _pod_labels(w),
    }
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    phase = phase or ("Succeeded" if w.kind == "Job" else "Running")
    ready = ready and phase == "Running"
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": list(w.containers),
        "terminationGracePeriodSeconds": w.grace,
    }
    if w.volumes:
        spec["volumes"] = list(w.volumes)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _image_size(ref: str) -> int:
    digest = hashlib.sha256(ref.encode()).digest()
    return (40 + digest[0] * 2 + digest[1] % 50) * MIB  # 40..600 MiB, stable per reference


def pdb_obj(namespace: str, name: str, labels: Mapping[str, str], **budget: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"namespace": namespace, "name": name, "uid": _uid(namespace, "PDB", name)},
        "spec": {"selector": {"matchLabels": dict(labels)}, **budget},
    }


def kubelet_facts(cgroup: str, pause: str = PAUSE) -> KubeletFacts:
    flags_file = "/var/lib/kubelet/kubeadm-flags.env"
    config_file = "/var/lib/kubelet/config.yaml"
    flags = (("network-plugin", "cni"), ("pod-infra-container-image", pause))
    flags_text = f'KUBELET_KUBEADM_ARGS="--network-plugin=cni --pod-infra-container-image={pause}"\n'
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": cgroup,
        "clusterDNS": ["10.96.0.10"],
        "clusterDomain": "cluster.local",
    }
    config_text = (
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        f"cgroupDriver: {cgroup}\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\n"
    )
    return KubeletFacts(
        version=KUBELET_VERSION,
        layout=KubeletLayout.KUBEADM_FLAGS,
        flags_file=flags_file,
        flags=flags,
        config_file=config_file,
        config=config,
        cgroup_driver=Setting(cgroup, config_file, "cgroupDriver"),
        pod_infra_image=Setting(pause, flags_file, "--pod-infra-container-image"),
        files={flags_file: flags_text, config_file: config_text},
        active=True,
    )


def node_facts(
    name: str,
    pods: Sequence[Mapping[str, Any]],
    sizes: Mapping[str, int],
    *,
    cgroup: str,
    free: int,
    daemon_json: Mapping[str, Any],
    stale: Sequence[str] = (),
) -> NodeFacts:
    used = sorted({c["image"] for p in pods for c in p["spec"]["containers"]} | {PAUSE})
    images = [
        DockerImage(image_id(ref), (ref,), (), sizes.get(ref, _image_size(ref)), in_use=True) for ref in used
    ] + [DockerImage(image_id(ref), (ref,), (), _image_size(ref), in_use=False) for ref in stale]
    return NodeFacts(
        node=name,
        os_release="Ubuntu 20.04.6 LTS",
        kernel="5.4.0-169-generic",
        docker_version=DOCKER_VERSION,
        docker_running=True,
        docker_cgroup_driver=cgroup,
        containerd_version=CONTAINERD_VERSION,
        containerd_config=DOCKER_CE_CONTAINERD_CONFIG,
        containerd_config_version=1,
        containerd_running=True,
        containerd_root_free_bytes=free,
        cri_enabled=False,
        daemon_json=dict(daemon_json),
        kubelet=kubelet_facts(cgroup),
        images=tuple(sorted(images, key=lambda i: i.id)),
        services={"docker": True, "containerd": True, "kubelet": True},
    )


def _daemon_json(cgroup: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3"},
        "storage-driver": "overlay2",
        "registry-mirrors": ["https://mirror.gcr.io"],
    }
    if cgroup == "systemd":
        out["exec-opts"] = ["native.cgroupdriver=systemd"]
    out.update(extra or {})
    return out


# ---- the embedded example ------------------------------------------------------------------------

CONTROL = ("cp-1", "cp-2", "cp-3")
WORKERS = tuple(f"worker-{i:02d}" for i in range(1, 10))
ON_CONTAINERD = "worker-09"  # migrated by hand last year: skipped
CORDONED = "worker-07"  # cordoned by an admin for a hardware ticket
SHORT_ON_DISK = "worker-05"
INSECURE_REGISTRY = "worker-03"
CGROUPFS_NODES = (
    "worker-06",
    "worker-07",
    "worker-08",
)  # an older batch, installed before systemd was the rule


def _daemonsets() -> list[tuple[Workload, bool]]:
    """(workload, on control-plane nodes too)."""
    return [
        (
            Workload(
                "kube-system",
                "kube-proxy",
                "DaemonSet",
                (
                    container(
                        "kube-proxy",
                        "k8s.gcr.io/kube-proxy:v1.23.17",
                        mounts={"lib-modules": "/lib/modules"},
                        privileged=True,
                    ),
                ),
                (host_path("lib-modules", "/lib/modules"),),
            ),
            True,
        ),
        (
            Workload(
                "kube-system",
                "calico-node",
                "DaemonSet",
                (
                    container(
                        "calico-node",
                        "docker.io/calico/node:v3.24.5",
                        mounts={"var-run-calico": "/var/run/calico", "lib-modules": "/lib/modules"},
                        privileged=True,
                    ),
                ),
                (host_path("var-run-calico", "/var/run/calico"), host_path("lib-modules", "/lib/modules")),
            ),
            True,
        ),
        (
            Workload(
                "logging",
                "fluent-bit",
                "DaemonSet",
                (
                    container(
                        "fluent-bit",
                        "cr.fluentbit.io/fluent/fluent-bit:1.9.10",
                        mounts={"varlog": "/var/log", "dockerlogs": "/var/lib/docker/containers"},
                    ),
                ),
                (host_path("varlog", "/var/log"), host_path("dockerlogs", "/var/lib/docker/containers")),
            ),
            True,
        ),
        (
            Workload(
                "monitoring",
                "node-exporter",
                "DaemonSet",
                (
                    container(
                        "node-exporter",
                        "quay.io/prometheus/node-exporter:v1.5.0",
                        args=["--path.rootfs=/host"],
                        mounts={"root": "/host"},
                    ),
                ),
                (host_path("root", "/"),),
            ),
            True,
        ),
        (
            Workload(
                "ops",
                "image-janitor",
                "DaemonSet",
                (
                    container(
                        "janitor",
                        "docker.io/library/docker:20.10-cli",
                        privileged=True,
                        command=[
                            "sh",
                            "-c",
                            "while true; do docker image prune -af --filter until=72h; sleep 3600; done",
                        ],
                        mounts={"docker-sock": "/var/run/docker.sock"},
                    ),
                ),
                (host_path("docker-sock", "/var/run/docker.sock", "Socket"),),
            ),
            False,
        ),
        (
            Workload(
                "monitoring",
                "cadvisor",
                "DaemonSet",
                (
                    container(
                        "cadvisor",
                        "gcr.io/cadvisor/cadvisor:v0.45.0",
                        args=["--docker_only=true", "--store_container_labels=true"],
                        mounts={"docker": "/var/lib/docker", "run": "/var/run"},
                    ),
                ),
                (host_path("docker", "/var/lib/docker"), host_path("run", "/var/run")),
            ),
            False,
        ),
    ]


def _static_pods(cluster: Cluster, node: str) -> None:
    for comp, image in (
        ("etcd", "k8s.gcr.io/etcd:3.5.6-0"),
        ("kube-apiserver", "k8s.gcr.io/kube-apiserver:v1.23.17"),
        ("kube-controller-manager", "k8s.gcr.io/kube-controller-manager:v1.23.17"),
        ("kube-scheduler", "k8s.gcr.io/kube-scheduler:v1.23.17"),
    ):
        w = Workload(
            "kube-system",
            comp,
            "",
            (container(comp, image),),
            labels={"component": comp, "tier": "control-plane"},
        )
        pod = pod_obj(
            w,
            f"{comp}-{node}",
            node,
            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": _uid("node", node), "controller": True},
        )
        pod["metadata"]["annotations"] = {
            "kubernetes.io/config.mirror": hashlib.md5(
                pod["metadata"]["name"].encode(), usedforsecurity=False
            ).hexdigest(),
            "kubernetes.io/config.source": "file",
        }
        cluster.pods.append(pod)
        cluster.images.setdefault(image, _image_size(image))


def _spread(rng: random.Random, count: int, nodes: Sequence[str]) -> list[str]:
    """`count` nodes for replicas, spread like a scheduler with anti-affinity would (then random)."""
    order = list(nodes)
    rng.shuffle(order)
    return [order[i % len(order)] for i in range(count)]


def example(seed: int = 20260115) -> tuple[Cluster, list[NodeFacts]]:
    rng = random.Random(seed)
    cluster = Cluster()
    for name in CONTROL:
        cluster.nodes.append(node_obj(name, control_plane=True, runtime=f"docker://{DOCKER_VERSION}"))
    for name in WORKERS:
        runtime = (
            f"containerd://{CONTAINERD_VERSION}" if name == ON_CONTAINERD else f"docker://{DOCKER_VERSION}"
        )
        cluster.nodes.append(
            node_obj(name, control_plane=False, runtime=runtime, unschedulable=name == CORDONED)
        )
    for name in CONTROL:
        _static_pods(cluster, name)
    for w, everywhere in _daemonsets():
        add_workload(cluster, w, sorted((*CONTROL, *WORKERS) if everywhere else WORKERS))
    schedulable = [w for w in WORKERS if w != CORDONED]
    web = {"tier": "frontend"}
    apps: list[tuple[Workload, dict[str, Any] | None]] = [
        (
            Workload(
                "shop",
                "web",
                "Deployment",
                (
                    container(
                        "web", "registry.internal:5000/shop/web:2.14.1", mounts={"cache": "/var/cache/nginx"}
                    ),
                ),
                (empty_dir("cache"),),
                replicas=8,
                labels=web,
            ),
            {"maxUnavailable": "25%"},
        ),
        (
            Workload(
                "shop",
                "api",
                "Deployment",
                (container("api", "registry.internal:5000/shop/api:3.2.0"),),
                replicas=6,
            ),
            {"minAvailable": "50%"},
        ),
        (
            Workload(
                "shop",
                "payments",
                "Deployment",
                (container("payments", "registry.internal:5000/shop/payments:1.9.3"),),
                replicas=3,
                grace=60,
            ),
            {"minAvailable": 3},
        ),
        (
            Workload(
                "shop",
                "checkout",
                "Deployment",
                (container("checkout", "registry.internal:5000/shop/checkout:1.4.0"),),
                replicas=4,
            ),
            None,
        ),
        (
            Workload(
                "kube-system",
                "coredns",
                "Deployment",
                (container("coredns", "k8s.gcr.io/coredns/coredns:v1.8.6"),),
                replicas=2,
            ),
            {"maxUnavailable": 1},
        ),
        (
            Workload(
                "monitoring",
                "prometheus",
                "StatefulSet",
                (container("prometheus", "quay.io/prometheus/prometheus:v2.41.0"),),
                replicas=2,
                grace=120,
            ),
            {"maxUnavailable": 1},
        ),
        (
            Workload(
                "data",
                "redis",
                "StatefulSet",
                (container("redis", "docker.io/library/redis:6.2.10"),),
                replicas=3,
            ),
            {"minAvailable": 2},
        ),
        (
            Workload(
                "data",
                "postgres",
                "StatefulSet",
                (container("postgres", "docker.io/library/postgres:14.6"),),
                replicas=2,
                grace=90,
            ),
            None,
        ),
        (
            Workload(
                "ci",
                "gitlab-runner",
                "Deployment",
                (
                    container(
                        "runner",
                        "docker.io/gitlab/gitlab-runner:v15.8.0",
                        mounts={"docker-sock": "/var/run/docker.sock"},
                    ),
                ),
                (host_path("docker-sock", "/var/run/docker.sock"),),
                replicas=2,
            ),
            None,
        ),
        (
            Workload(
                "ci",
                "image-builder",
                "Deployment",
                (
                    container(
                        "dind",
                        "docker.io/library/docker:20.10-dind",
                        privileged=True,
                        mounts={"graph": "/var/lib/docker"},
                    ),
                    container("builder", "docker.io/library/docker:20.10-cli", command=["sleep", "infinity"]),
                ),
                (empty_dir("graph"),),
                replicas=2,
            ),
            None,
        ),
        (
            Workload(
                "logging",
                "loki",
                "StatefulSet",
                (container("loki", "docker.io/grafana/loki:2.7.3"),),
                replicas=1,
            ),
            None,
        ),
    ]
    for i in range(1, 11):
        apps.append(
            (
                Workload(
                    "tenants",
                    f"app-{i:02d}",
                    "Deployment",
                    (container("app", f"registry.internal:5000/tenants/app-{i:02d}:1.{i}.0"),),
                    replicas=3,
                ),
                {"maxUnavailable": 1} if i % 3 == 0 else None,
            )
        )
    for w, budget in apps:
        placement = _spread(rng, w.replicas, schedulable)
        add_workload(cluster, w, placement)
        if budget is not None:
            cluster.pdbs.append(pdb_obj(w.namespace, w.name, _pod_labels(w), **budget))
    # prometheus-1 is still replaying its WAL: not Ready, so its PDB allows nothing right now.
    for pod in cluster.pods:
        if pod["metadata"]["name"] == "prometheus-1":
            pod["status"]["conditions"] = [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
            ]
    # Completed report jobs, and a debugging pod someone started by hand.
    for i in range(6):
        job = Workload(
            "batch",
            f"nightly-report-2026011{i}",
            "Job",
            (container("report", "registry.internal:5000/batch/report:0.9.1"),),
        )
        add_workload(cluster, job, [schedulable[i % len(schedulable)]])
    add_workload(
        cluster,
        Workload(
            "default",
            "debug-shell",
            "",
            (container("shell", "docker.io/library/busybox:1.36", command=["sleep", "86400"]),),
        ),
        ["worker-04"],
    )

    facts: list[NodeFacts] = []
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in cluster.pods:
        by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
    for name in (*CONTROL, *WORKERS):
        if name == ON_CONTAINERD:
            continue  # a containerd node has no Docker facts to migrate
        cgroup = "cgroupfs" if name in CGROUPFS_NODES else "systemd"
        extra = {"insecure-registries": ["registry.internal:5000"]} if name == INSECURE_REGISTRY else None
        free = 3 * GIB if name == SHORT_ON_DISK else (60 + rng.randrange(0, 60)) * GIB
        stale = ("registry.internal:5000/shop/web:2.13.0", "registry.internal:5000/shop/api:3.1.4")
        facts.append(
            node_facts(
                name,
                by_node.get(name, []),
                cluster.images,
                cgroup=cgroup,
                free=free,
                daemon_json=_daemon_json(cgroup, extra),
                stale=stale if name in WORKERS else (),
            )
        )
    return cluster, facts


# ---- bench fleets --------------------------------------------------------------------------------


def fleet(nodes: int, pods: int, pdbs: int, seed: int = 7) -> tuple[Cluster, list[NodeFacts]]:
    """A large cluster with the example's shapes: 3 control-plane nodes, DaemonSets everywhere,
    Deployments across namespaces (five PDBs per namespace, one in fifty never allowing an eviction)."""
    rng = random.Random(seed)
    cluster = Cluster()
    control = [f"cp-{i}" for i in range(1, 4)]
    workers = [f"node-{i:05d}" for i in range(1, nodes - len(control) + 1)]
    for name in control:
        cluster.nodes.append(node_obj(name, control_plane=True, runtime=f"docker://{DOCKER_VERSION}"))
    for name in workers:
        cluster.nodes.append(node_obj(name, control_plane=False, runtime=f"docker://{DOCKER_VERSION}"))
    everyone = sorted((*control, *workers))
    daemonsets = [w for w, everywhere in _daemonsets() if everywhere][:3]
    for w in daemonsets:
        add_workload(cluster, w, everyone)
    per_ns_pdbs = 5
    namespaces = max(1, pdbs // per_ns_pdbs)
    remaining = max(0, pods - len(cluster.pods))
    per_ns = remaining // namespaces
    made_pdbs = 0
    for n in range(namespaces):
        ns = f"team-{n:04d}"
        left = per_ns + (remaining - per_ns * namespaces if n == namespaces - 1 else 0)
        d = 0
        while left > 0:
            replicas = min(left, rng.choice((2, 3, 5, 8, 10, 12, 20)))
            w = Workload(
                ns,
                f"svc-{d:03d}",
                "Deployment",
                (container("app", f"registry.internal:5000/{ns}/svc-{d % 7}:1.{d % 5}.0"),),
                (empty_dir("tmp"),) if d % 4 == 0 else (),
                replicas=replicas,
            )
            add_workload(cluster, w, [rng.choice(workers) for _ in range(replicas)])
            if d < per_ns_pdbs and made_pdbs < pdbs:
                budget: dict[str, Any] = (
                    {"minAvailable": replicas}
                    if made_pdbs % 50 == 0
                    else {"maxUnavailable": "25%"}
                    if d % 2
                    else {"minAvailable": max(1, replicas // 2)}
                )
                cluster.pdbs.append(pdb_obj(ns, w.name, _pod_labels(w), **budget))
                made_pdbs += 1
            left -= replicas
            d += 1
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in cluster.pods:
        by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
    facts = [
        node_facts(
            name,
            by_node.get(name, []),
            cluster.images,
            cgroup="systemd" if i % 3 else "cgroupfs",
            free=(40 + i % 80) * GIB,
            daemon_json=_daemon_json("systemd" if i % 3 else "cgroupfs"),
        )
        for i, name in enumerate(everyone)
    ]
    return cluster, facts


def write(cluster: Cluster, facts: Sequence[NodeFacts], out: Path, *, source: str, fmt: str) -> None:
    write_snapshot(out, cluster.objects(), facts, taken_at=TAKEN_AT, source=source, fmt=fmt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.snapshot_gen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("kind", choices=("example", "fleet"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--pdbs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.kind == "example":
        cluster, facts = example() if args.seed is None else example(args.seed)
        write(cluster, facts, args.out, source="testbed.snapshot_gen example (synthetic)", fmt="yaml")
    else:
        cluster, facts = fleet(args.nodes, args.pods, args.pdbs, 7 if args.seed is None else args.seed)
        write(
            cluster,
            facts,
            args.out,
            source=f"testbed.snapshot_gen fleet {args.nodes}/{args.pods}/{args.pdbs}",
            fmt="json",
        )
    print(
        f"{args.out}: {len(cluster.nodes)} nodes, {len(cluster.pods)} pods, {len(cluster.pdbs)} PDBs, "
        f"{len(facts)} facts files",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
