"""Run a real containerd on rendered files, privately, and ask it what it made of them.

`BUILDS` are the containerds every config is loaded by: Debian's 1.6 (schema 2) and containerd 2.2
(schema 3) and 2.3 (schema 4) built from their Go modules by scripts/build-components.

Each daemon runs in its own mount namespace (`unshare --mount`): a private tmpfs on /run (containerd
hard-codes /run/containerd/{fifo,runc,s}), its own /opt (the opt plugin) and its own /etc/hosts (test
registry names), so it never meets another engineer's containerd. Root, state and the socket live in
a short temporary directory. Shell text is a constant; every value is passed as an argument.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.components import ComponentMissing, binary
from testbed.waiting import wait_until

from shimshift.rendering import NodeLayout, RenderedConfig
from shimshift.rendering.existing import flatten

NAMESPACE_SCRIPT = (
    'set -e; mount -t tmpfs tmpfs /run; mount --bind "$1" /opt; mount --bind "$2" /etc/hosts; '
    'binary=$3; shift 3; exec "$binary" "$@"'
)
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Build:
    """One containerd to load configs with: its version label, the config schema it reads, and where
    its containerd and ctr are (None: a built component, looked up when used)."""

    version: str
    schema: int
    component: str | None = None  # the version in scripts/components/versions

    def program(self, name: str) -> str:
        if self.component is None:
            found = shutil.which(name)
            assert found is not None, f"{name} is not installed (Debian's containerd package)"
            return found
        try:
            return str(binary("containerd", name, self.component))
        except ComponentMissing as e:
            if os.environ.get("CI") == "true":
                pytest.fail(str(e))
            pytest.skip(str(e))

    @property
    def containerd(self) -> str:
        return self.program("containerd")

    @property
    def ctr(self) -> str:
        return self.program("ctr")


DEBIAN = Build("1.6.20~ds1", 2)
BUILDS = [DEBIAN, Build("v2.2.9", 3, "2.2.9"), Build("v2.3.7", 4, "2.3.7")]
BUILD_IDS = [b.version for b in BUILDS]


def missing_prerequisites() -> list[str]:
    missing = [tool for tool in ("containerd", "ctr", "unshare") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (mount namespaces)")
    return missing


@dataclass
class NodeRoot:
    """A private directory standing in for a node's /: rendered files go below it."""

    path: Path

    @property
    def layout(self) -> NodeLayout:
        return NodeLayout(
            config_file=str(self.path / "etc/containerd/config.toml"),
            certs_dir=str(self.path / "etc/containerd/certs.d"),
            proxy_dropin=str(self.path / "etc/systemd/system/containerd.service.d/http-proxy.conf"),
            limits_dropin=str(self.path / "etc/systemd/system/containerd.service.d/limits.conf"),
            base_spec=str(self.path / "etc/containerd/cri-base.json"),
        )

    @property
    def socket(self) -> Path:
        return self.path / "c.sock"

    def write(self, rendered: RenderedConfig) -> None:
        for f in rendered.files:
            target = Path(f.path)
            assert target.is_relative_to(self.path), f"{f.path} escapes the node root"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.content)
            target.chmod(f.mode)


@contextlib.contextmanager
def node_root(hosts: str = "127.0.0.1\tlocalhost\n") -> Iterator[NodeRoot]:
    path = Path(tempfile.mkdtemp(prefix="ss-r5-", dir="/tmp"))
    try:
        (path / "opt").mkdir()
        (path / "hosts").write_text(hosts)
        yield NodeRoot(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ignored_keys(rendered: str, dump: str) -> list[str]:
    """Key paths of the rendered config that containerd's effective config (`config dump`) lacks:
    what containerd silently ignored. Empty means it read every setting it was given."""
    have = set(flatten(tomllib.loads(dump)))
    return sorted(k for k in flatten(tomllib.loads(rendered)) if k not in have)


def config_dump(root: NodeRoot, build: Build = DEBIAN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [build.containerd, "--config", root.layout.config_file, "config", "dump"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


@dataclass
class Running:
    root: NodeRoot
    process: subprocess.Popen[bytes]
    build: Build = DEBIAN

    def plugins(self) -> str:
        result = subprocess.run(
            [self.build.ctr, "--address", str(self.root.socket), "plugins", "ls"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return result.stdout

    def cri_status(self) -> str | None:
        """The CRI plugin's status column (`ok`, `error`, `skip`), or None when it is absent."""
        for line in self.plugins().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0] == "io.containerd.grpc.v1" and fields[1] == "cri":
                return fields[3]
        return None

    def pull(self, image: str, timeout: float = 30.0) -> str:
        """A real CRI PullImage; returns the image ref or raises grpc.RpcError. The CRI plugin starts
        serving a moment after containerd's socket does (on a loaded machine, seconds): until then it
        answers "server is not initialized yet", which is asked again, not taken as the pull's answer."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(f"unix://{self.root.socket}") as channel:
            stub = api_pb2_grpc.ImageServiceStub(channel)
            while True:
                try:
                    reply = stub.PullImage(
                        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)),
                        timeout=max(deadline - time.monotonic(), 1.0),
                    )
                except grpc.RpcError as e:
                    details = str(e.details()) if hasattr(e, "details") else str(e)
                    if "server is not initialized yet" in details and time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    raise
                return str(reply.image_ref)

    def hosts_errors(self) -> list[str]:
        """containerd's complaints about hosts.toml files (it falls back silently after logging one)."""
        return [line for line in self.log().splitlines() if "hosts.toml" in line and "level=error" in line]

    def config_warnings(self) -> list[str]:
        """containerd 2.3's complaints about its config: keys it ignores, or a file it had to convert."""
        return [
            line
            for line in self.log().splitlines()
            if "Ignoring unknown key" in line or "Configuration migrated" in line
        ]

    def log(self) -> str:
        return (self.root.path / "containerd.log").read_text(errors="replace")


def _accepts(path: Path) -> bool:
    """Whether the daemon accepts connections (the socket file exists a moment before it does)."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def running_containerd(root: NodeRoot, build: Build = DEBIAN) -> Iterator[Running]:
    log = (root.path / "containerd.log").open("wb")
    argv = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh",
        str(root.path / "opt"), str(root.path / "hosts"), build.containerd,
        "--config", root.layout.config_file, "--root", str(root.path / "root"),
        "--state", str(root.path / "state"), "--address", str(root.socket),
    ]  # fmt: skip
    # a built containerd starts its own runc shim (found on PATH next to it), as the testbed's nodes
    # bind it over Debian's: 2.3 cannot start a sandbox through 1.6's shim
    env = dict(os.environ)
    if build.component is not None:
        env["PATH"] = f"{Path(build.containerd).parent}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    running = Running(root, process, build)
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"containerd exited with {process.returncode}:\n{running.log()[-3000:]}")
            return _accepts(root.socket)

        wait_until(
            listening,
            START_TIMEOUT,
            what=f"containerd to listen on {root.socket}",
            interval=0.02,
            detail=lambda: running.log()[-3000:],
        )
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log.close()
