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

from testbed.nodes.layout import BIND_DIRS, OVERLAY_DIRS, NodeDir


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True)


def build_node_view(node: NodeDir, systemctl: Path) -> None:
    """Mount overlays and binds so the node's stock paths are its own."""
    for path in OVERLAY_DIRS:
        options = f"lowerdir={path},upperdir={node.upper(path)},workdir={node.work(path)}"
        _mount("-t", "overlay", "overlay", "-o", options, path)
    # The node dir itself lives under the host's /tmp: every bind whose source is under /tmp
    # must be mounted before the node's private /tmp hides it.
    _mount("--bind", str(systemctl), "/usr/bin/systemctl")
    for path in sorted(BIND_DIRS, key=lambda p: (p == "/tmp", len(p))):
        _mount("--bind", str(node.bind_source(path)), path)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


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
