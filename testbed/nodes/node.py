"""One testbed node as tests see it: SSH coordinates, sockets on the host, and ways to look inside.

``exec`` runs an argv inside all of the node's namespaces (no SSH, for test set-up and
assertions); ``ssh_client`` gives a paramiko client that verifies the node's host key. The node's
containerd and dockerd sockets are reachable from the host through the node's /run bind source.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.nodes.layout import MARKER_ENV, SYSTEMCTL_LOG, NodeDir
from testbed.nodes.profiles import Profile

if TYPE_CHECKING:
    import grpc
    import paramiko


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str
    command: tuple[str, ...]


@dataclass
class Node:
    name: str
    profile: Profile
    dir: NodeDir
    ssh_host: str
    ssh_port: int
    ssh_user: str = "root"
    init_pid: int = 0
    #: the real kubelet the node's kubelet unit runs, or None for the Python model
    kubelet_binary: str | None = None
    #: the real kubelet's port (its KubeletConfiguration `port`, the Node's daemonEndpoints): the host
    #: relays ssh_host:kubelet_port to it, so the API server reaches the kubelet (logs, exec); None for
    #: the Python model
    kubelet_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- host-side paths ----------------------------------------------------------------
    @property
    def cri_socket(self) -> Path:
        """containerd's socket (the node's /run/containerd/containerd.sock) as a host path."""
        return self.dir.in_node("/run/containerd/containerd.sock")

    @property
    def docker_socket(self) -> Path:
        return self.dir.in_node("/run/docker.sock")

    @property
    def cri_endpoint(self) -> str:
        return f"unix://{self.cri_socket}"

    def view(self, node_path: str) -> Path:
        """Host path showing ``node_path`` exactly as the node sees it (through /proc/PID/root)."""
        return Path(f"/proc/{self.init_pid}/root") / node_path.lstrip("/")

    def read(self, node_path: str) -> str:
        return self.view(node_path).read_text()

    # ---- running things -----------------------------------------------------------------
    def exec(self, argv: list[str], timeout: float = 60, input: str | None = None) -> CommandResult:
        """Run ``argv`` inside the node (all its namespaces, its root and cwd /)."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            MARKER_ENV: str(self.dir.path.parent),
        }
        cmd = ["nsenter", f"--target={self.init_pid}", "--all", "--", *argv]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input, check=False
        )
        return CommandResult(proc.returncode, proc.stdout, proc.stderr, tuple(argv))

    def systemctl_calls(self) -> list[dict[str, Any]]:
        """Every fake-systemctl call made in the node so far: ``{"time", "argv", "rc"}``."""
        path = self.dir.in_node(SYSTEMCTL_LOG)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def ssh_client(self, private_key: Path, known_hosts: Path, timeout: float = 10) -> paramiko.SSHClient:
        """A connected paramiko client that rejects unknown host keys."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.ssh_host,
            port=self.ssh_port,
            username=self.ssh_user,
            key_filename=str(private_key),
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            look_for_keys=False,
            allow_agent=False,
        )
        return client

    def cri_channel(self) -> grpc.Channel:
        import grpc

        return grpc.insecure_channel(self.cri_endpoint)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "profile": self.profile.name.value,
            "ssh_host": self.ssh_host,
            "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user,
            "init_pid": self.init_pid,
            "dir": str(self.dir.path),
            "cri_socket": str(self.cri_socket),
            "docker_socket": str(self.docker_socket),
            "kubelet_binary": self.kubelet_binary,
            "kubelet_port": self.kubelet_port,
        }


def ssh_run(client: paramiko.SSHClient, argv: list[str], timeout: float = 60) -> CommandResult:
    """Run ``argv`` over SSH (each argument quoted separately) and collect the result."""
    import shlex

    _stdin, stdout, stderr = client.exec_command(shlex.join(argv), timeout=timeout)
    out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    return CommandResult(stdout.channel.recv_exit_status(), out, err, tuple(argv))
