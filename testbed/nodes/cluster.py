"""Bring testbed nodes up and tear them down.

A node is a process tree in its own network, mount, UTS and PID namespaces: tini as PID 1, a real
sshd, and the real containerd and dockerd started through the fake systemctl, all on their stock
paths, with the node's private /etc, /var, /opt, /root (overlays of the host's), /run and /tmp.
The host reaches a node's sshd on 127.0.0.<10+i>:<cluster port> through two socat relays (host
TCP -> unix socket in the node dir -> the node's own 127.0.0.1:22); only loopback and unix
sockets carry traffic.

Ownership: the process that brings a cluster up holds an flock on ``owner.lock`` for as long as it
lives; a cluster dir whose lock is free and that was not left up on purpose (``detached``) is stale
and is torn down by ``cleanup_stale`` (the session fixture and ``python -m testbed up`` call it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from testbed import components
from testbed.nodes import processes
from testbed.nodes.binaries import binary_mounts, write_mounts
from testbed.nodes.layout import DEFAULT_ROOT, MARKER_ENV, SSH_PORT_IN_NODE, NodeDir
from testbed.nodes.node import Node
from testbed.nodes.profiles import REPO_ROOT, Profile, profile, render_node_files, services_to_start
from testbed.nodes.registry import Registry, make_pki
from testbed.ports import free_port as _free_port
from testbed.waiting import wait_until

log = logging.getLogger(__name__)

#: A cluster's name prefixes its nodes' names (``<name>-node<i>``), which become their hostnames and the
#: fake kubelets' Kubernetes Node names: each must be a lowercase RFC 1123 label of at most 63 characters.
CLUSTER_NAME_PATTERN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
NODE_NAME_MAX = 63


def cluster_name_problem(name: str, nodes: int = 1) -> str | None:
    """Why ``name`` cannot name a cluster of ``nodes`` nodes, or None."""
    rule = (
        f"it names the nodes ({name}-node1, ...), which become hostnames and Kubernetes Node names, "
        f"so it must be a lowercase DNS label: lowercase letters, digits and '-', starting and ending "
        f"with a letter or digit ({CLUSTER_NAME_PATTERN})"
    )
    if not re.fullmatch(CLUSTER_NAME_PATTERN, name):
        return f"{name!r} is not allowed: {rule}"
    longest = NODE_NAME_MAX - len(f"-node{max(nodes, 1)}")
    if len(name) > longest:
        return (
            f"{name!r} has {len(name)} characters, at most {longest} fit; {rule}, of at most {NODE_NAME_MAX}"
        )
    return None


READY_TIMEOUT = 30.0
#: Debian's containernetworking-plugins: bridge, host-local, loopback, portmap...
CNI_PLUGINS = Path("/usr/lib/cni")


def _kubeconfig_ca(text: str) -> bytes | None:
    """The cluster CA a kubeconfig carries inline (``certificate-authority-data``), if any."""
    import base64

    import yaml

    try:
        document = yaml.safe_load(text) or {}
        data = document["clusters"][0]["cluster"].get("certificate-authority-data")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return base64.b64decode(data) if data else None


def real_kubelet_binary(p: Profile) -> Path:
    """The built kubelet of profile ``p``'s version (``ComponentMissing`` names the build command)."""
    return components.binary("kubelet", "kubelet", f"v{p.kubelet_version}")


SSHD_CONFIG = """\
Port 22
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys .ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
"""


#: where a cluster dir holds the run directory of a control plane that belongs to it (the demo's):
#: the cluster's teardown stops it too
CONTROLPLANE_SUBDIR = "controlplane"


class TestbedError(Exception):
    """A node could not be brought up or torn down; the message names the node and the log."""


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=10,
    )
    return path.with_suffix(".pub").read_text().strip()


def _wait_for(what: str, check: Any, timeout: float, log_file: Path | None = None) -> None:
    def see_log() -> str:
        return f"see {log_file}{_tail(log_file)}"

    wait_until(
        check, timeout, what=what, interval=0.02, error=TestbedError, detail=see_log if log_file else None
    )


def _ssh_banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


class Cluster:
    """N nodes under one cluster dir. Use ``Cluster.up(...)`` and ``down()`` (or ``with``)."""

    def __init__(self, directory: Path, nodes: list[Node], ssh_port: int, lock: IO[str] | None) -> None:
        self.dir = directory
        self.registry: Registry | None = None
        self.nodes = nodes
        self.ssh_port = ssh_port
        self._lock = lock
        self._children: list[subprocess.Popen[bytes]] = []
        self._cri_dockerd: str | None = None  # the built cri-dockerd, for real kubelets on its profile

    # ---- public coordinates -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def private_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in cluster {self.name}; nodes: {[n.name for n in self.nodes]}")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- bring-up -----------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        name: str,
        profiles: Sequence[str | Profile],
        root: Path = DEFAULT_ROOT,
        images: bool = True,
        registry: bool = True,
        real_kubelet: bool | Sequence[bool] = False,
    ) -> Cluster:
        """Bring up one node per entry of ``profiles`` (named ``<name>-node<i>``), and the TLS
        registry unless ``registry`` is false. ``images`` seeds Docker images and containers.
        ``real_kubelet``: each node's kubelet unit runs the real kubelet of its profile's version
        (built by ``scripts/build-components kubelet``; ``ComponentMissing`` if it is not), else the
        Python model; one flag per entry of ``profiles`` chooses node by node."""
        problem = cluster_name_problem(name, len(profiles))
        if problem:
            raise ValueError(f"cluster name {problem}")
        chosen = [prof if isinstance(prof, Profile) else profile(prof) for prof in profiles]
        real = [real_kubelet] * len(chosen) if isinstance(real_kubelet, bool) else list(real_kubelet)
        if len(real) != len(chosen):
            raise ValueError(f"real_kubelet has {len(real)} flags for {len(chosen)} profiles")
        kubelets = [str(real_kubelet_binary(p)) if r else None for p, r in zip(chosen, real, strict=True)]
        cri_dockerd = None
        if any(r and p.layout == "cri-dockerd" for p, r in zip(chosen, real, strict=True)):
            cri_dockerd = str(components.binary("cri-dockerd", "cri-dockerd"))
        root.mkdir(parents=True, exist_ok=True)
        cleanup_stale(root)
        directory = root / name
        if directory.exists():
            teardown_dir(directory)
        directory.mkdir(parents=True)
        lock = (directory / "owner.lock").open("w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        client_pub = _keygen(directory / "id_ed25519", f"testbed@{name}")
        port = _free_port()
        # the real kubelets' port, one per cluster as the SSH port (each node has its own address)
        kubelet_port = _free_port() if any(real) else None
        wrapper = directory / "bin" / "systemctl"
        wrapper.parent.mkdir()
        wrapper.write_text(
            "#!/bin/sh\n# testbed: the fake systemctl of testbed.nodes.systemctl\n"
            f'PYTHONPATH={REPO_ROOT} exec {sys.executable} -m testbed.nodes.systemctl "$@"\n'
        )
        wrapper.chmod(0o755)
        runc = directory / "bin" / "runc"
        runc.write_text(
            "#!/bin/sh\n# testbed: runc with oomScoreAdj raised to what the testbed may set (runc_shim.py)\n"
            f'exec {sys.executable} -I -S {REPO_ROOT / "testbed" / "nodes" / "runc_shim.py"} "$@"\n'
        )
        runc.chmod(0o755)
        nodes = []
        for i, p in enumerate(chosen, start=1):
            node_name = f"{name}-node{i}"
            nodes.append(
                Node(
                    name=node_name,
                    profile=p,
                    dir=NodeDir(directory / node_name),
                    ssh_host=f"127.0.0.{10 + i}",
                    ssh_port=port,
                    kubelet_binary=kubelets[i - 1],
                    kubelet_port=kubelet_port if kubelets[i - 1] else None,
                )
            )
        cluster = cls(directory, nodes, port, lock)
        cluster._cri_dockerd = cri_dockerd
        (directory / "cluster.json").write_text(json.dumps(cluster.describe(), indent=1))
        try:
            if registry:
                cluster.registry = cluster._start_registry()
            hosts = Path("/etc/hosts").read_text()
            with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
                host_keys = list(
                    pool.map(lambda n: cluster._start_node(n, client_pub, hosts, wrapper), nodes)
                )
            cluster.known_hosts.write_text(
                "".join(
                    f"[{n.ssh_host}]:{n.ssh_port} {key}\n" for n, key in zip(nodes, host_keys, strict=True)
                )
            )
            (directory / "cluster.json").write_text(json.dumps(cluster.describe(), indent=1))
            if images:
                from testbed.nodes.seeding import seed_nodes

                seed_nodes(cluster)
        except BaseException:
            cluster.down()
            raise
        return cluster

    def _spawn(self, argv: list[str], log_file: Path, pidfile: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, MARKER_ENV: str(self.dir), "PYTHONPATH": str(REPO_ROOT)}
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
            )
        pidfile.write_text(f"{proc.pid}\n")
        self._children.append(proc)
        return proc

    def _relay(
        self, node: Node, pid: int, socket_path: Path, port_in_node: int, host_port: int, what: str, name: str
    ) -> None:
        """Two socat relays: one in the node's network and PID namespaces (so it dies with the node) from
        ``socket_path`` to the node's 127.0.0.1:``port_in_node``, and one on the host from
        ``node.ssh_host``:``host_port`` to that socket; only loopback and unix sockets carry traffic."""
        nd = node.dir
        inside = ["nsenter", f"--target={pid}", "--net", "--pid", "--", "socat"]
        self._spawn(
            [*inside, f"UNIX-LISTEN:{socket_path},fork,unlink-early", f"TCP:127.0.0.1:{port_in_node}"],
            nd.path / "relay.log",
            nd.path / f"{name}-in.pid",
        )
        _wait_for(f"{what} relay of node {node.name}", socket_path.exists, 10, nd.path / "relay.log")
        self._spawn(
            [
                "socat",
                f"TCP-LISTEN:{host_port},bind={node.ssh_host},fork,reuseaddr",
                f"UNIX-CONNECT:{socket_path}",
            ],
            nd.path / "relay.log",
            nd.path / f"{name}-out.pid",
        )

    def _start_node(self, node: Node, client_pub: str, etc_hosts: str, systemctl: Path) -> str:
        nd = node.dir
        for d in nd.all_dirs():
            d.mkdir(parents=True, exist_ok=True)
        ssh_dir = nd.upper("/etc") / "ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        _keygen(ssh_dir / "ssh_host_ed25519_key", f"root@{node.name}")
        (ssh_dir / "sshd_config").write_text(SSHD_CONFIG)
        (ssh_dir / "authorized_keys").write_text(client_pub + "\n")
        ca_pem = self.registry.ca_cert.read_text() if self.registry else None
        write_mounts(nd.path, binary_mounts(node.profile))
        files = render_node_files(
            node.profile,
            node.name,
            node.ssh_host,
            etc_hosts,
            ca_pem,
            kubelet_binary=node.kubelet_binary,
            cri_dockerd_binary=self._cri_dockerd if node.kubelet_binary else None,
            kubelet_port=node.kubelet_port,
        )
        for path, content in files.items():
            target = nd.in_node(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        # What a kubeadm node has besides its files: the CNI plugins in /opt/cni/bin (the
        # kubernetes-cni package; here Debian's containernetworking-plugins) and the static pod dir.
        cni_bin = nd.in_node("/opt/cni/bin")
        cni_bin.mkdir(parents=True, exist_ok=True)
        if CNI_PLUGINS.is_dir():
            for plugin in CNI_PLUGINS.iterdir():
                (cni_bin / plugin.name).symlink_to(plugin)
        nd.in_node("/etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
        (nd.in_node("/etc/testbed-node")).write_text(f"{node.name} {node.profile.name.value}\n")
        # /root is an overlay of the host's: without files of its own, every SSH session into the node
        # would run the host's shell setup (here `eval "$(pyenv init -)"`, whose rehash waits up to 60 s
        # on a lock) and stall node commands. Real nodes do not share a developer's shell setup.
        for rc in ("/root/.bashrc", "/root/.profile"):
            nd.in_node(rc).write_text("# testbed node: root's own shell setup, not the host's\n")
        launcher = self._spawn(
            [
                "unshare",
                "--net",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "testbed.nodes.init",
                str(nd.path),
                str(systemctl),
            ],
            nd.log,
            nd.path / "launcher.pid",
        )

        def init_pid() -> int | None:
            try:
                children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
            except OSError:
                return None
            return int(children[0]) if children else None

        def sshd_up() -> bool:
            if launcher.poll() is not None:
                raise TestbedError(f"node {node.name} exited during start-up:{_tail(nd.log)}")
            return (nd.in_node("/run/sshd.pid")).exists()

        _wait_for(f"sshd of node {node.name}", sshd_up, READY_TIMEOUT, nd.log)
        pid = init_pid()
        if pid is None:
            raise TestbedError(f"node {node.name} has no init process; see {nd.log}")
        node.init_pid = pid
        nd.init_pidfile.write_text(f"{pid}\n")
        # the host's <ssh_host>:<ssh_port> -> a unix socket in the node dir -> the node's own sshd
        self._relay(node, pid, nd.ssh_socket, SSH_PORT_IN_NODE, node.ssh_port, "ssh", "relay")
        if node.kubelet_port is not None:
            # the API server dials the Node's InternalIP (its SSH address) at the kubelet's port for
            # logs, exec and port-forward
            port = node.kubelet_port
            self._relay(node, pid, nd.kubelet_socket, port, port, "kubelet", "relay-kubelet")
        if self.registry is not None and node.profile.uses_registry:
            # the node's own 127.0.0.1:443 (registry.shimshift.test in its /etc/hosts) -> the registry
            self._spawn(
                [
                    "nsenter",
                    f"--target={pid}",
                    "--net",
                    "--pid",
                    "--",
                    "socat",
                    "TCP-LISTEN:443,bind=127.0.0.1,fork,reuseaddr",
                    f"UNIX-CONNECT:{self.registry.socket}",
                ],
                nd.path / "relay.log",
                nd.path / "relay-registry.pid",
            )
        result = node.exec(["systemctl", "start", *services_to_start(node.profile)], timeout=60)
        if result.exit_status != 0:
            raise TestbedError(f"node {node.name}: starting services failed: {result.stderr.strip()}")
        _wait_for(
            f"ssh of node {node.name} at {node.ssh_host}:{node.ssh_port}",
            lambda: _ssh_banner(node.ssh_host, node.ssh_port),
            10,
            nd.path / "relay.log",
        )
        host_key_line = (ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()
        return " ".join(host_key_line[:2])

    def _start_registry(self) -> Registry:
        directory = self.dir / "registry"
        registry = Registry(directory, _free_port())
        make_pki(directory / "pki")
        registry.cert_dir.mkdir()
        shutil.copy(registry.ca_cert, registry.cert_dir / "ca.crt")
        (directory / "data").mkdir()
        (directory / "config.yml").write_text(registry.config())
        log_file = directory / "registry.log"
        self._spawn(
            ["docker-registry", "serve", str(directory / "config.yml")], log_file, directory / "registry.pid"
        )
        self._spawn(
            ["socat", f"UNIX-LISTEN:{registry.socket},fork,unlink-early", f"TCP:{registry.address}"],
            log_file,
            directory / "relay.pid",
        )
        _wait_for("the registry", registry.is_up, 10, log_file)
        _wait_for("the registry relay", registry.socket.exists, 10, log_file)
        return registry

    # ---- the Kubernetes API and the fake kubelets -------------------------------------------
    def attach_api(
        self,
        url: str,
        kubeconfig: Path | str,
        start_kubelets: bool = True,
        node_kubeconfig: Callable[[str], str] | None = None,
        admin_kubeconfig: Path | None = None,
    ) -> None:
        """Make the API server at ``url`` (on the host's loopback) reachable from every node at the
        same address, install ``kubeconfig`` as each node's /etc/kubernetes/kubelet.conf, and start
        the kubelets (``systemctl start kubelet`` inside each node).

        ``node_kubeconfig(node name)``: each node's own kubelet.conf instead (a real API server's Node
        authorizer admits a kubelet for its own Node only); the kubeconfig's CA becomes the node's
        /etc/kubernetes/pki/ca.crt (the KubeletConfiguration's clientCAFile). Nodes with a real
        kubelet need ``admin_kubeconfig``: with it, the cloud node controller's stand-in
        (``cloud.py``) gives each registered Node its address and lifts the uninitialized taint."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port is None:
            raise TestbedError(f"the API server must listen on the host's loopback with a port, got {url}")
        relay = self.dir / "kubeapi.sock"
        if not relay.exists():
            self._spawn(
                ["socat", f"UNIX-LISTEN:{relay},fork,unlink-early", f"TCP:127.0.0.1:{parsed.port}"],
                self.dir / "kubeapi-relay.log",
                self.dir / "kubeapi-relay.pid",
            )
            _wait_for("the API relay", relay.exists, 10, self.dir / "kubeapi-relay.log")
        text = Path(kubeconfig).read_text() if isinstance(kubeconfig, Path) else kubeconfig
        for node in self.nodes:
            self._spawn(
                [
                    "nsenter",
                    f"--target={node.init_pid}",
                    "--net",
                    "--pid",
                    "--",
                    "socat",
                    f"TCP-LISTEN:{parsed.port},bind=127.0.0.1,fork,reuseaddr",
                    f"UNIX-CONNECT:{relay}",
                ],
                node.dir.path / "relay.log",
                node.dir.path / "relay-kubeapi.pid",
            )
            target = node.dir.in_node("/etc/kubernetes/kubelet.conf")
            target.parent.mkdir(parents=True, exist_ok=True)
            own = node_kubeconfig(node.name) if node_kubeconfig else text
            target.write_text(own)
            target.chmod(0o600)
            ca = _kubeconfig_ca(own)
            if ca is not None:
                pki = node.dir.in_node("/etc/kubernetes/pki/ca.crt")
                pki.parent.mkdir(parents=True, exist_ok=True)
                pki.write_bytes(ca)
        real = [n for n in self.nodes if n.kubelet_binary]
        if real and start_kubelets and admin_kubeconfig is None:
            raise TestbedError(
                f"nodes {[n.name for n in real]} run a real kubelet: attach_api needs admin_kubeconfig "
                "to initialize their Nodes as a cloud controller manager would"
            )
        if start_kubelets:
            with ThreadPoolExecutor(max_workers=len(self.nodes) or 1) as pool:
                results = list(
                    pool.map(lambda n: n.exec(["systemctl", "start", "kubelet"], timeout=60), self.nodes)
                )
            for node, result in zip(self.nodes, results, strict=True):
                if result.exit_status != 0:
                    log_tail = _tail(node.dir.in_node("/var/log/kubelet.log"))
                    raise TestbedError(
                        f"node {node.name}: kubelet did not start: {result.stderr.strip()}{log_tail}"
                    )
            if real and admin_kubeconfig is not None:
                self.initialize_nodes(admin_kubeconfig, real)

    def initialize_nodes(self, admin_kubeconfig: Path, nodes: Sequence[Node] | None = None) -> None:
        """What the cloud controller manager does for a new Node of a real kubelet (``cloud.py``)."""
        from testbed.nodes.cloud import NodeAddress, initialize_all
        from testbed.nodes.kube_http import KubeHttp
        from testbed.nodes.profiles import kubeadm_annotations

        chosen = [n for n in (nodes if nodes is not None else self.nodes) if n.kubelet_binary]
        initialize_all(
            KubeHttp(admin_kubeconfig),
            [NodeAddress(n.name, n.ssh_host, kubeadm_annotations(n.profile)) for n in chosen],
        )

    # ---- teardown -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dir": str(self.dir),
            "ssh_port": self.ssh_port,
            "private_key": str(self.private_key),
            "known_hosts": str(self.known_hosts),
            "nodes": [n.describe() for n in self.nodes],
            "registry": self.registry.describe() if self.registry else None,
        }

    def down(self) -> None:
        """Kill every process of the cluster and remove its directory (bounded, idempotent)."""
        teardown_dir(self.dir, self._children)
        self._children.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def detach(self) -> None:
        """Leave the cluster running after this process exits (the CLI's ``up``)."""
        (self.dir / "detached").write_text(f"{os.getpid()}\n")
        for proc in self._children:
            proc.returncode = 0  # not ours to wait for any more; silences Popen's ResourceWarning
        self._children.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def teardown_dir(
    directory: Path, children: Sequence[subprocess.Popen[bytes]] = (), timeout: float = 5.0
) -> None:
    """Kill all marked processes of the cluster at ``directory`` and remove the directory.

    ``children`` are the caller's own child processes among them: they are reaped as soon as
    they die, because a node's PID namespace only finishes dying once every member whose parent
    is outside it (the relays started through nsenter) has been reaped.

    A control plane whose run directory is under ``directory/controlplane/`` (the demo's) is
    stopped too, first (``testbed.controlplane.cluster.teardown_dir``).
    """
    planes = directory / CONTROLPLANE_SUBDIR
    if planes.is_dir():
        from testbed.controlplane.cluster import teardown_dir as teardown_controlplane

        for run_dir in sorted(planes.iterdir()):
            if run_dir.is_dir():
                teardown_controlplane(run_dir)
    pids = list(processes.marked_processes(directory))
    for proc in children:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    alive = processes.kill_and_wait(pids, timeout, reap=children)
    if alive:
        raise TestbedError(f"processes {alive} of {directory} survived SIGKILL for {timeout}s")

    def ignore_vanished(_func: object, _path: str, exc_info: Any) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):  # else another cleaner got there first
            raise exc_info[1]

    if directory.exists():
        shutil.rmtree(directory, onerror=ignore_vanished)


def is_owned(directory: Path) -> bool:
    """True while the process that brought the cluster at ``directory`` up is alive (or while
    another process is cleaning it up)."""
    with _claim(directory) as claimed:
        return not claimed


@contextlib.contextmanager
def _claim(directory: Path) -> Iterator[bool]:
    """Hold the cluster's lock if nobody else does; yields whether it was claimed."""
    lock_path = directory / "owner.lock"
    if not lock_path.exists():
        # no lock (yet): a cluster being created right now, or the remains of a crashed one
        try:
            young = time.time() - directory.stat().st_mtime < 60
        except FileNotFoundError:
            young = True
        yield not young
        return
    try:
        lock = lock_path.open("a")
    except OSError:
        yield False
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def cleanup_stale(root: Path = DEFAULT_ROOT, include_detached: bool = False) -> list[Path]:
    """Tear down clusters under ``root`` left behind by a process that died, and kill marked
    processes whose cluster dir is gone. Returns the cluster dirs cleaned."""
    cleaned = []
    if root.is_dir():
        for directory in sorted(root.iterdir()):
            if not directory.is_dir() or ((directory / "detached").exists() and not include_detached):
                continue
            # holding the lock while cleaning keeps a concurrent session from cleaning it too
            with _claim(directory) as claimed:
                if not claimed:
                    continue
                log.warning("testbed: cleaning stale cluster %s", directory)
                teardown_dir(directory)
                cleaned.append(directory)
    orphans = [pid for pid, d in processes.marked_processes(root).items() if not d.exists()]
    if orphans:
        log.warning("testbed: killing orphaned testbed processes %s", orphans)
        processes.kill_and_wait(orphans)
    return cleaned
