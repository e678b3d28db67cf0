"""What a testbed run may have left on the host: the checks behind "teardown leaves nothing".

``leftovers(root)`` lists, in words, every trace of testbed clusters under ``root`` outside the
clusters named in ``allowed``: marked processes (a nested control plane's too), mounts, named network
namespaces, cluster dirs, and files a node would leak to the host if its private view were incomplete.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from testbed.nodes.processes import marked_processes

#: the control plane's process marker (``testbed.controlplane.cluster.MARKER_ENV``), for control
#: planes whose run directory is under a cluster's (the demo's)
CONTROLPLANE_MARKER = "SHIMSHIFT_CONTROLPLANE"

# Paths the node daemons would create on the host if a private mount were missing.
HOST_PATHS_NODES_MUST_NOT_CREATE = (
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/opt/containerd",
    "/etc/docker/key.json",
    "/run/containerd",
    "/run/docker.sock",
    "/run/fake-systemd",
    "/var/log/systemctl-calls.log",
)
NETNS_PREFIX = "shimshift"


def leftovers(root: Path, allowed: Collection[str] = ()) -> list[str]:
    found = []
    for pid, cluster in marked_processes(root).items():
        if cluster.name not in allowed:
            found.append(f"process {pid} of cluster {cluster}")
    for pid, run_dir in marked_processes(root, marker=CONTROLPLANE_MARKER).items():
        if run_dir.relative_to(root).parts[0] not in allowed:
            found.append(f"control plane process {pid} of {run_dir}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if str(root) in line and not any(f"{root}/{name}" in line for name in allowed):
            found.append(f"mount: {line}")
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [f"network namespace {p.name}" for p in netns.iterdir() if p.name.startswith(NETNS_PREFIX)]
    if root.is_dir():
        found += [f"cluster dir {p}" for p in root.iterdir() if p.name not in allowed]
    found += [f"host path {p}" for p in HOST_PATHS_NODES_MUST_NOT_CREATE if Path(p).exists()]
    return found
