"""A plain OpenSSH sshd on 127.0.0.1 with a throwaway host key, for the runner's integration tests.

Commands run as root on this machine through it, so tests only touch their own tmp_path.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from testbed.ports import free_port as _free_port
from testbed.waiting import WaitTimeout, wait_until

from shimshift.remote import NodeConnection, SshOptions, SshTarget

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class LocalSshd:
    host: str
    port: int
    host_public_key: str  # "ssh-ed25519 AAAA..."
    private_key: str
    dir: Path

    @property
    def known_hosts(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key}\n"

    def options(self, **kw: object) -> SshOptions:
        base: dict[str, object] = {
            "known_hosts": self.known_hosts,
            "private_key": self.private_key,
            "connect_timeout": 10.0,
            "command_timeout": 30.0,
        }
        base.update(kw)
        return SshOptions(**base)  # type: ignore[arg-type]

    def connect(self, **kw: object) -> NodeConnection:
        return NodeConnection(SshTarget("local-node", self.host, self.port), self.options(**kw))


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "shimshift-test", "-f", str(path)],
        check=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )


def _ssh_banner(host: str, port: int, proc: subprocess.Popen[bytes], fail: Callable[[], NoReturn]) -> bool:
    """Whether sshd at host:port greets with its banner; ``fail()`` as soon as the sshd process has exited."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            if s.recv(8).startswith(b"SSH-"):
                return True
    except OSError:
        pass
    if proc.poll() is not None:
        fail()
    return False


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip("needs root and openssh-server (scripts/setup installs it)")
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "id_ed25519")
    (d / "authorized_keys").write_text((d / "id_ed25519.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPidFile none\nAllowTcpForwarding yes\nMaxStartups 50\nMaxSessions 50\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = (d / "sshd.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)

    def fail() -> NoReturn:
        proc.kill()
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")

    try:
        wait_until(lambda: _ssh_banner("127.0.0.1", port, proc, fail), 15, what="sshd", interval=0.05)
    except WaitTimeout:
        fail()
    pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    try:
        yield LocalSshd("127.0.0.1", port, pub, (d / "id_ed25519").read_text(), d)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


class RotatingSshd:
    """An sshd on a fixed port whose host key can be replaced (`rotate`): a reinstalled node, or a
    machine-in-the-middle answering on its address. `log` is sshd's own log (authentications)."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.host = "127.0.0.1"
        self.port = _free_port()
        _keygen(d / "id_ed25519")
        (d / "authorized_keys").write_text((d / "id_ed25519.pub").read_text())
        self.private_key = (d / "id_ed25519").read_text()
        self.generation = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = (d / "sshd.log").open("ab")
        self._start()

    @property
    def host_public_key(self) -> str:
        return " ".join((self.dir / f"host_key{self.generation}.pub").read_text().split()[:2])

    @property
    def log(self) -> str:
        return (self.dir / "sshd.log").read_text(errors="replace")

    def rotate(self) -> None:
        self.stop()
        self.generation += 1
        self._start()

    def _start(self) -> None:
        d, key = self.dir, self.dir / f"host_key{self.generation}"
        _keygen(key)
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\nAuthorizedKeysFile {d}/authorized_keys\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=self._log, stderr=self._log
        )
        proc = self._proc

        def fail() -> NoReturn:
            self.stop()
            pytest.fail(f"sshd did not start: {self.log}")

        try:
            wait_until(lambda: _ssh_banner(self.host, self.port, proc, fail), 15, what="sshd", interval=0.05)
        except WaitTimeout:
            fail()

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()


@pytest.fixture
def rotating_sshd(tmp_path: Path) -> Iterator[RotatingSshd]:
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip("needs root and openssh-server (scripts/setup installs it)")
    server = RotatingSshd(tmp_path)
    try:
        yield server
    finally:
        server.close()
