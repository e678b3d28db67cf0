"""Nodes with the real kubelet registered with a real control plane, for tests and the shell.

``real_stack`` brings up a control plane (``testbed.controlplane``) and a testbed cluster whose
kubelet units run the built kubelet of each profile's version (``Cluster.up(real_kubelet=True)``),
each kubelet with its own node client certificate (``system:node:<name>``). Helpers read what the
node's runtimes really run: Docker's containers (dockershim names them ``k8s_<container>_<pod>_...``)
and containerd's CRI containers (namespace ``k8s.io``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from testbed import components
from testbed.controlplane.cluster import ControlPlane, binaries
from testbed.nodes.cluster import Cluster, real_kubelet_binary
from testbed.nodes.node import Node
from testbed.nodes.profiles import Profile, ProfileName, RegistryUse, profile
from testbed.waiting import wait_until

#: The control plane whose version a kubelet 1.23 (two minors behind at most) and 1.24 may join.
OLD_CONTROL_PLANE = "v1.24.17"


#: A kubelet 1.27+ whose runtime endpoint is in its KubeletConfiguration, on Docker through the real
#: cri-dockerd: the cri-dockerd layout at the current control plane's version, with the cgroupfs driver
#: (pods cannot start on the systemd driver without systemd).
ENDPOINT_IN_CONFIG = Profile(
    ProfileName.CRI_DOCKERD,
    "1.34.4",
    "cgroupfs",
    "cri-dockerd",
    RegistryUse.MIRROR_WITH_CA,
    "registry.k8s.io/pause:3.9",
)
#: The control plane a kubelet 1.34 may join (a kubelet may not be newer than its API server).
NEW_CONTROL_PLANE = "v1.34.4"


#: Real-kubelet stacks are heavy (a control plane, several kubelets and their runtimes): whatever runs
#: them (a real-kubelet test module, ``scripts/demo``) holds one of ``HOST_LOCK_SLOTS`` slots of this
#: lock, so that at most that many run on this machine at a time. Two at once share the host's cgroup
#: hierarchy without harm: each kubelet runs with cgroupsPerQOS off in its node's own PID, mount and
#: network namespaces, and its runtimes name their cgroups by container ID (two suites of real-kubelet
#: modules ran side by side and passed, 9 tests in 9 minutes each).
HOST_LOCK = Path(
    os.environ.get("SHIMSHIFT_REAL_KUBELET_LOCK", "/run/lock/shimshift-testbed-real-kubelets.lock")
)
HOST_LOCK_SLOTS = 2


def _slot(i: int) -> Path:
    return HOST_LOCK if i == 0 else HOST_LOCK.with_name(f"{HOST_LOCK.name}.{i}")


def take_host_lock(wait: float, who: str = "other runs on this machine are running real kubelets") -> IO[str]:
    """A slot of ``HOST_LOCK``, taken (``WaitTimeout`` after ``wait`` seconds, when every slot stays
    held): it is held while the returned file, or a copy of its descriptor in a child process, stays
    open."""
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    held: list[IO[str]] = []

    def taken() -> bool:
        for i in range(HOST_LOCK_SLOTS):
            lock = _slot(i).open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            held.append(lock)
            return True
        return False

    wait_until(taken, wait, what=f"{HOST_LOCK} ({HOST_LOCK_SLOTS} slots): {who}", interval=0.5)
    return held[0]


@contextlib.contextmanager
def host_lock(
    wait: float, who: str = "other runs on this machine are running real kubelets"
) -> Iterator[None]:
    """Hold a slot of ``HOST_LOCK`` for the block (``take_host_lock``)."""
    lock = take_host_lock(wait, who)
    try:
        yield
    finally:
        lock.close()


def _profile(p: str | Profile) -> Profile:
    return p if isinstance(p, Profile) else profile(p)


def check_built(profiles: Sequence[str | Profile], control_plane: str = OLD_CONTROL_PLANE) -> None:
    """``ComponentMissing`` naming the first binary that is not built."""
    binaries(control_plane)
    for p in profiles:
        real_kubelet_binary(_profile(p))
        if _profile(p).layout == "cri-dockerd":
            components.binary("cri-dockerd", "cri-dockerd")


@contextlib.contextmanager
def real_stack(
    name: str, profiles: Sequence[str | Profile], root: Path, control_plane: str = OLD_CONTROL_PLANE
) -> Iterator[tuple[ControlPlane, Cluster]]:
    check_built(profiles, control_plane)
    plane = ControlPlane.up(name, root=root / "controlplane", version=control_plane)
    try:
        with Cluster.up(name, list(profiles), root=root / "nodes", real_kubelet=True) as cluster:
            cluster.attach_api(
                plane.url,
                plane.admin_kubeconfig,
                node_kubeconfig=plane.node_kubeconfig,
                admin_kubeconfig=plane.admin_kubeconfig,
            )
            yield plane, cluster
    finally:
        plane.down()


def docker_containers(node: Node) -> dict[str, str]:
    """Docker's running containers on ``node``: name -> image ID (dockershim creates them by ID)."""
    names = node.exec(["docker", "ps", "--format", "{{.Names}}"], timeout=30)
    if names.exit_status != 0 or not names.stdout.split():
        return {}
    inspected = node.exec(
        ["docker", "inspect", "-f", "{{.Name}} {{.Image}}", *names.stdout.split()], timeout=30
    )
    pairs = (line.split(" ", 1) for line in inspected.stdout.splitlines() if " " in line)
    return {name.lstrip("/"): image for name, image in pairs}


def docker_image_id(node: Node, ref: str) -> str:
    result = node.exec(["docker", "image", "inspect", "-f", "{{.Id}}", ref], timeout=30)
    return result.stdout.strip()


def cri_containers(node: Node) -> list[dict[str, Any]]:
    """containerd's running CRI containers on ``node`` (``ctr -n k8s.io``): their labels and image."""
    tasks = node.exec(["ctr", "-n", "k8s.io", "tasks", "ls"], timeout=30).stdout.splitlines()
    running = {line.split()[0] for line in tasks[1:] if "RUNNING" in line}
    found = []
    for cid in sorted(running):
        info = node.exec(["ctr", "-n", "k8s.io", "containers", "info", cid], timeout=30)
        if info.exit_status != 0:
            continue
        container = json.loads(info.stdout)
        labels = container.get("Labels") or {}
        found.append({"id": cid, "image": container.get("Image"), "labels": labels})
    return found


def pod_containers_in_containerd(node: Node) -> dict[str, str]:
    """containerd's running app containers (no sandboxes): ``<namespace>/<pod>/<container>`` -> image."""
    out = {}
    for c in cri_containers(node):
        labels = c["labels"]
        if labels.get("io.cri-containerd.kind") != "container":
            continue
        key = "/".join(
            labels.get(k, "")
            for k in ("io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.container.name")
        )
        out[key] = c["image"]
    return out
