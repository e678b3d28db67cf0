"""PID 1 of a node, before it becomes tini: build the node's private filesystem view, then exec.

Run by ``cluster.py`` as ``unshare --net --mount --uts --pid --fork --mount-proc
--propagation private python -m testbed.nodes.init NODE_DIR SYSTEMCTL``. Everything it mounts
lives in the node's own mount namespace and vanishes with it, so nothing here needs undoing.
It must not write to any host path outside NODE_DIR.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from testbed.nodes.binaries import read_mounts
from testbed.nodes.layout import BIND_DIRS, KUBELET_SYSCTLS, OVERLAY_DIRS, NodeDir
from testbed.nodes.profiles import REPO_ROOT
from testbed.nodes.runc_shim import REAL_RUNC

HOST_RUNC = "/usr/sbin/runc"


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True)


def host_paths_under_tmp() -> list[Path]:
    """Host paths that processes in the node need (the checkout on their PYTHONPATH, the Python that
    runs them) and that the node's private /tmp would hide: a CI clone or a virtualenv may live under
    the host's /tmp."""
    tmp = Path("/tmp")
    candidates = {REPO_ROOT, Path(sys.prefix)}
    return sorted(p for p in candidates if p != tmp and p.is_relative_to(tmp) and p.is_dir())


def build_node_view(node: NodeDir, systemctl: Path) -> None:
    """Mount overlays and binds so the node's stock paths are its own."""
    # Hold the host paths the private /tmp will hide, to bind them back in at the same place.
    kept = [(path, os.open(path, os.O_RDONLY | os.O_DIRECTORY)) for path in host_paths_under_tmp()]
    for path in OVERLAY_DIRS:
        options = f"lowerdir={path},upperdir={node.upper(path)},workdir={node.work(path)}"
        _mount("-t", "overlay", "overlay", "-o", options, path)
    # The node dir itself lives under the host's /tmp: every bind whose source is under /tmp
    # must be mounted before the node's private /tmp hides it.
    _mount("--bind", str(systemctl), "/usr/bin/systemctl")
    for node_path, built in sorted(read_mounts(node.path).items()):
        target = Path(node_path)
        if not target.exists():
            # only inside the node's own overlays: never create a file on a host path
            if not any(target.is_relative_to(d) for d in OVERLAY_DIRS):
                raise SystemExit(f"testbed init: {node_path} does not exist on the host to bind over")
            target.touch(mode=0o755)
        _mount("--bind", built, node_path)
    runc = systemctl.with_name("runc")
    if runc.exists() and Path(HOST_RUNC).is_file():
        # the real runc stays reachable for the shim (runc_shim.py) on a private overlay path
        real = Path(REAL_RUNC)
        real.parent.mkdir(parents=True, exist_ok=True)
        real.touch()
        _mount("--bind", HOST_RUNC, str(real))
        _mount("--bind", str(runc), HOST_RUNC)
    shield_sysctls(node)
    for path in sorted(BIND_DIRS, key=lambda p: (p == "/tmp", len(p))):
        _mount("--bind", str(node.bind_source(path)), path)
    for host_path, fd in kept:
        host_path.mkdir(parents=True, exist_ok=True)  # inside the node's private /tmp (under NODE_DIR)
        # --no-canonicalize: the kernel follows /proc/self/fd/N to the host directory held open above;
        # a canonicalized path would name the (empty) directory in the node's own /tmp instead.
        subprocess.run(
            ["mount", "--no-canonicalize", "--bind", f"/proc/self/fd/{fd}", str(host_path)],
            check=True,
            pass_fds=(fd,),
        )
        os.close(fd)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # Last: the host's root filesystem read-only in this node (its own copy of the root mount; the
    # overlays and binds above are mounts of their own and stay writable). A node shares the host's
    # /usr, /bin, /work...: a daemon in a node that removes or writes a path outside the node's private
    # directories (a real kubelet or CRI adapter cleaning up, say) fails with EROFS instead of changing
    # the host for every other process on it.
    _mount("-o", "remount,bind,ro", "/")


def shield_sysctls(node: NodeDir) -> None:
    """Private files over the host-wide /proc/sys entries a real kubelet writes (``KUBELET_SYSCTLS``),
    holding the values it wants, so it neither changes the host nor refuses to start."""
    directory = node.path / "sysctl"
    directory.mkdir(exist_ok=True)
    for entry, value in KUBELET_SYSCTLS.items():
        target = Path("/proc/sys") / entry
        if not target.exists():
            continue
        shield = directory / entry.replace("/", ".")
        shield.write_text(value + "\n")
        _mount("--bind", str(shield), str(target))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    node, systemctl = NodeDir(Path(args[0])), Path(args[1])
    socket.sethostname(node.name)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    build_node_view(node, systemctl)
    os.chdir("/")
    # tini reaps orphans (daemons started by the fake systemctl are re-parented to it) and
    # forwards signals; sshd in the foreground keeps the node alive.
    argv = ["tini", "-s", "-g", "--", "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"]
    os.execv("/usr/bin/tini", argv)  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    main()
