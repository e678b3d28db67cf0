"""Where a testbed cluster keeps its state, and which paths each node gets privately.

Every file, socket and pidfile of a cluster lives under one cluster directory
(``<root>/<cluster name>/``); nothing is written outside it on the host. Inside a node the
private paths below are overlays or bind mounts in the node's own mount namespace, so a node
writing ``/etc/containerd/config.toml`` changes only its own copy, and the host sees the
change under the node directory (``upper/etc/...``).

Every process the testbed starts on the host carries ``MARKER_ENV`` in its environment, which is
how stale processes of a killed run are found again (see ``cleanup.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Environment variable set on every process the testbed starts; its value is the cluster dir.
MARKER_ENV = "SHIMSHIFT_TESTBED_CLUSTER"
#: Root under which cluster directories live unless the caller says otherwise.
DEFAULT_ROOT = Path(os.environ.get("SHIMSHIFT_TESTBED_ROOT", "/tmp/shimshift-testbed"))

#: Node paths that are an overlay of the host's directory (host content readable, writes private).
#: /usr/local/bin is the node's own so that a profile's crictl can be placed there (testbed.nodes.binaries).
OVERLAY_DIRS: tuple[str, ...] = ("/etc", "/var", "/opt", "/root", "/usr/local/bin")
#: Node paths bind-mounted from a plain directory of the node (mounted after the overlays).
#: containerd's and Docker's overlay snapshotters cannot work on top of an overlayfs upper dir.
BIND_DIRS: dict[str, str] = {
    "/var/lib/containerd": "containerd",
    "/var/lib/docker": "docker",
    # the kubelet's root dir (pods' volumes, its certificates): a plain directory, as on a node
    "/var/lib/kubelet": "kubelet",
    "/run": "run",
    "/tmp": "tmp",
}

SSH_PORT_IN_NODE = 22
REGISTRY_HOST = "registry.shimshift.test"
SYSTEMCTL_LOG = "/var/log/systemctl-calls.log"
UNIT_DIR = "/etc/fake-systemd"

#: The kernel settings a real kubelet writes at start-up (its ``setupKernelTunables``) with the values
#: it wants. They are not namespaced: a kubelet in a node would set them for the whole host (and
#: ``kernel.panic_on_oops=1`` on a shared machine is not harmless). Each node therefore sees, in its own
#: mount namespace, a private file with the wanted value over each of these /proc/sys entries.
KUBELET_SYSCTLS: dict[str, str] = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class NodeDir:
    """The host-side directory of one node and the named places inside it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def upper(self, node_path: str) -> Path:
        """Host path of the overlay upper dir holding the node's writes under ``node_path``."""
        return self.path / "upper" / node_path.strip("/")

    def work(self, node_path: str) -> Path:
        return self.path / "work" / node_path.strip("/")

    def bind_source(self, node_path: str) -> Path:
        return self.path / BIND_DIRS[node_path]

    def in_node(self, node_path: str) -> Path:
        """Host path of a file that the node writes: the upper dir or a bind source.

        Only reflects files the node (or the testbed) created; for the node's full view of a
        file that may come from the host's lower layer use ``Node.view()``.
        """
        for mount_point in sorted(BIND_DIRS, key=len, reverse=True):
            if node_path == mount_point or node_path.startswith(mount_point + "/"):
                return self.bind_source(mount_point) / node_path[len(mount_point) :].lstrip("/")
        return self.path / "upper" / node_path.lstrip("/")

    @property
    def ssh_socket(self) -> Path:
        return self.path / "ssh.sock"

    @property
    def kubelet_socket(self) -> Path:
        """The unix socket the host's kubelet relay reaches the node's kubelet port through."""
        return self.path / "kubelet.sock"

    @property
    def init_pidfile(self) -> Path:
        return self.path / "init.pid"

    @property
    def log(self) -> Path:
        return self.path / "init.log"

    def all_dirs(self) -> list[Path]:
        dirs = [self.upper(p) for p in OVERLAY_DIRS] + [self.work(p) for p in OVERLAY_DIRS]
        dirs += [self.bind_source(p) for p in BIND_DIRS]
        # mount points inside the overlays, created in the upper dirs so that the host's own
        # /var/lib stays untouched
        dirs += [self.upper(p) for p in BIND_DIRS if p.startswith("/var/")]
        return dirs
