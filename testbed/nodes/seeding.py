"""Put images and kubelet-named containers into each node's Docker, without any registry."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from testbed.nodes.docker_api import DockerClient
from testbed.nodes.images import kube_proxy_image, node_images, write_archive
from testbed.nodes.node import Node

if TYPE_CHECKING:
    from testbed.nodes.cluster import Cluster


def pod_uid(node: str, pod: str) -> str:
    h = hashlib.sha256(f"{node}/{pod}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def daemonset_pods(node: Node) -> list[dict[str, str]]:
    """The DaemonSet pods a node runs before the migration (one per node, like kube-proxy)."""
    suffix = hashlib.sha256(node.name.encode()).hexdigest()[:5]
    pod = f"kube-proxy-{suffix}"
    return [{
        "name": pod,
        "namespace": "kube-system",
        "uid": pod_uid(node.name, pod),
        "container": "kube-proxy",
        "image": kube_proxy_image(node.profile.kubelet_version),
    }]


def _labels(pod: dict[str, str], container: str, kind: str) -> dict[str, str]:
    return {
        "io.kubernetes.pod.name": pod["name"],
        "io.kubernetes.pod.namespace": pod["namespace"],
        "io.kubernetes.pod.uid": pod["uid"],
        "io.kubernetes.container.name": container,
        "io.kubernetes.docker.type": kind,
    }


def seed_node(node: Node, archives: dict[str, object]) -> None:
    docker = DockerClient(node.docker_socket)
    # runc's systemd cgroup manager needs a running systemd (D-Bus), which no node has: with
    # Docker on the systemd driver the containers are created, named and labelled, but not started.
    can_run = node.profile.cgroup_driver == "cgroupfs"
    docker.load(archives[node.profile.name.value])  # type: ignore[arg-type]
    for pod in daemonset_pods(node):
        # names exactly as dockershim / cri-dockerd make them: k8s_<container>_<pod>_<ns>_<uid>_<attempt>
        base = f"{pod['name']}_{pod['namespace']}_{pod['uid']}_0"
        sandbox = docker.create_container(f"k8s_POD_{base}", {
            "Image": node.profile.sandbox_image,
            "Labels": _labels(pod, "POD", "podsandbox"),
            "HostConfig": {"NetworkMode": "none"},
        })
        if can_run:
            docker.start_container(sandbox)
        app = docker.create_container(f"k8s_{pod['container']}_{base}", {
            "Image": pod["image"],
            "Labels": _labels(pod, pod["container"], "container"),
            "HostConfig": {"NetworkMode": f"container:{sandbox}"},
        })
        if can_run:
            docker.start_container(app)


def seed_nodes(cluster: Cluster) -> None:
    archives: dict[str, object] = {}
    for node in cluster.nodes:
        key = node.profile.name.value
        if key not in archives:
            dest = cluster.dir / "images" / f"{key}.tar"
            write_archive(node_images(node.profile.sandbox_image, node.profile.kubelet_version), dest)
            archives[key] = dest
    with ThreadPoolExecutor(max_workers=len(cluster.nodes) or 1) as pool:
        list(pool.map(lambda n: seed_node(n, archives), cluster.nodes))
