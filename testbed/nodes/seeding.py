"""Put images and kubelet-named containers into each node's Docker, without any registry."""

from __future__ import annotations

import hashlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.nodes.docker_api import DockerClient
from testbed.nodes.images import BASE, ImageSpec, LayerSpec, kube_proxy_image, node_images, write_archive
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
    return [
        {
            "name": pod,
            "namespace": "kube-system",
            "uid": pod_uid(node.name, pod),
            "container": "kube-proxy",
            "image": kube_proxy_image(node.profile.kubelet_version),
        }
    ]


def daemonset_pod_manifests(node: Node) -> list[dict[str, Any]]:
    """The node's DaemonSet pods as API objects, bound to the node (the Docker containers of
    ``seed_node`` carry the same pod names)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod["name"],
                "namespace": pod["namespace"],
                "labels": {"k8s-app": "kube-proxy"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": "kube-proxy",
                        "uid": pod_uid("daemonset", "kube-proxy"),
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "nodeName": node.name,
                "containers": [{"name": pod["container"], "image": pod["image"]}],
                "tolerations": [{"operator": "Exists"}],
            },
        }
        for pod in daemonset_pods(node)
    ]


def _labels(pod: dict[str, str], container: str, kind: str) -> dict[str, str]:
    return {
        "io.kubernetes.pod.name": pod["name"],
        "io.kubernetes.pod.namespace": pod["namespace"],
        "io.kubernetes.pod.uid": pod["uid"],
        "io.kubernetes.container.name": container,
        "io.kubernetes.docker.type": kind,
    }


def seed_node(node: Node, archives: dict[str, Path]) -> None:
    docker = DockerClient(node.docker_socket)
    # runc's systemd cgroup manager needs a running systemd (D-Bus), which no node has: with
    # Docker on the systemd driver the containers are created, named and labelled, but not started.
    can_run = node.profile.cgroup_driver == "cgroupfs"
    docker.load(archives[node.profile.name.value])
    for pod in daemonset_pods(node):
        # names exactly as dockershim / cri-dockerd make them: k8s_<container>_<pod>_<ns>_<uid>_<attempt>
        base = f"{pod['name']}_{pod['namespace']}_{pod['uid']}_0"
        sandbox = docker.create_container(
            f"k8s_POD_{base}",
            {
                "Image": node.profile.sandbox_image,
                "Labels": _labels(pod, "POD", "podsandbox"),
                "HostConfig": {"NetworkMode": "none"},
            },
        )
        if can_run:
            docker.start_container(sandbox)
        app = docker.create_container(
            f"k8s_{pod['container']}_{base}",
            {
                "Image": pod["image"],
                "Labels": _labels(pod, pod["container"], "container"),
                "HostConfig": {"NetworkMode": f"container:{sandbox}"},
            },
        )
        if can_run:
            docker.start_container(app)


#: Images that exist only in the registry, to test pulls through a node's registry configuration.
REGISTRY_ONLY = [
    ImageSpec(("registry.shimshift.test/team/app:2.0",), (BASE, LayerSpec("app-2.0", 256 * 1024))),
    ImageSpec(
        ("docker.io/library/busybox:1.36",), (LayerSpec("busybox-1.36", busybox=True),), cmd=("/bin/sh",)
    ),
]


def seed_registry(cluster: Cluster) -> None:
    """Copy the registry-only images into the registry with skopeo (no daemon involved)."""
    registry = cluster.registry
    assert registry is not None
    archive = cluster.dir / "images" / "registry.tar"
    write_archive(REGISTRY_ONLY, archive)
    for image in REGISTRY_ONLY:
        tag = image.tags[0]
        path = tag.split("/", 1)[1]
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-cert-dir",
                str(registry.cert_dir),
                f"docker-archive:{archive}:{tag}",
                f"docker://{registry.address}/{path}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


def push_from_node(node: Node, ref: str) -> str:
    """``docker push`` through the node's own Docker and registry config; return the RepoDigest."""
    docker = DockerClient(node.docker_socket)
    repo, _, tag = ref.rpartition(":")
    docker.push(repo, tag)
    image = docker.inspect_image(ref) or {}
    digests: list[str] = image.get("RepoDigests") or []
    return digests[0] if digests else ""


def seed_nodes(cluster: Cluster) -> None:
    archives: dict[str, Path] = {}
    for node in cluster.nodes:
        key = node.profile.name.value
        if key not in archives:
            dest = cluster.dir / "images" / f"{key}.tar"
            write_archive(node_images(node.profile.sandbox_image, node.profile.kubelet_version), dest)
            archives[key] = dest
    with ThreadPoolExecutor(max_workers=len(cluster.nodes) + 1) as pool:
        registry_done = pool.submit(seed_registry, cluster) if cluster.registry else None
        list(pool.map(lambda n: seed_node(n, archives), cluster.nodes))
        if registry_done is not None:
            registry_done.result()
        if cluster.registry is not None:
            # a RepoDigest exists only for an image pushed to (or pulled from) a registry
            # one push only: docker-registry's filesystem driver answers 500 to concurrent uploads
            # of the same blob. The other nodes pull it back, which records the same RepoDigest
            # (all their layers are present, so only the manifest travels).
            ref = "registry.shimshift.test/team/app:1.0"
            registry_nodes = [n for n in cluster.nodes if n.profile.uses_registry]
            if registry_nodes:
                push_from_node(registry_nodes[0], ref)
                list(pool.map(lambda n: DockerClient(n.docker_socket).pull(ref), registry_nodes[1:]))


def load_images(nodes: list[Node], images: list[ImageSpec], archive: Path) -> dict[str, str]:
    """Write ``images`` (e.g. ``images.benchmark_images()``) to ``archive`` once and
    ``docker load`` it into each node's Docker; return tag -> image ID."""
    ids = write_archive(images, archive)
    with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        list(pool.map(lambda n: DockerClient(n.docker_socket, timeout=300).load(archive), nodes))
    return ids
