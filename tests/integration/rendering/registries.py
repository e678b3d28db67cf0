"""Two real registries (Debian docker-registry) on 127.0.0.1 for pull tests: one TLS with a throwaway
CA (the testbed's make_pki), one plain HTTP; both seeded with a tiny busybox image by skopeo from a
generated docker-archive. No internet: every name is a reserved .test name mapped to 127.0.0.1 in the
private /etc/hosts of the containerd under test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testbed.nodes.images import ImageSpec, LayerSpec, write_archive
from testbed.nodes.registry import make_pki

MIRROR_HOST = "mirror.shimshift.test"  # the TLS registry's name (its certificate is for this name)
UPSTREAM_HOST = "upstream.shimshift.test"  # a registry that exists only through its mirror
INSECURE_HOST = "insecure.shimshift.test"  # the plain HTTP registry's name
IMAGE_PATH = "team/tiny:1.0"
HOSTS_FILE = f"127.0.0.1\tlocalhost {MIRROR_HOST} {UPSTREAM_HOST} {INSECURE_HOST}\n"
READY_TIMEOUT = 10.0


def missing_prerequisites() -> list[str]:
    return [t for t in ("docker-registry", "skopeo") if shutil.which(t) is None]


@dataclass(frozen=True)
class Registries:
    tls_port: int
    http_port: int
    ca_pem: str

    @property
    def mirror_url(self) -> str:
        return f"https://{MIRROR_HOST}:{self.tls_port}"

    @property
    def insecure(self) -> str:
        return f"{INSECURE_HOST}:{self.http_port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(data: Path, port: int, tls: tuple[Path, Path] | None) -> str:
    lines = [
        "version: 0.1",
        "log: {level: warn}",
        f"storage: {{filesystem: {{rootdirectory: {data}}}}}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    return "\n".join(lines) + "\n"


def _wait_up(port: int, ca: Path | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                if ca is not None:
                    context = ssl.create_default_context(cafile=str(ca))
                    with context.wrap_socket(raw, server_hostname=MIRROR_HOST):
                        return
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"registry on 127.0.0.1:{port} not up within {READY_TIMEOUT}s")


@contextlib.contextmanager
def registries(directory: Path) -> Iterator[Registries]:
    ca, cert, key = make_pki(directory / "pki", host=MIRROR_HOST)
    cert_dir = directory / "certs"
    cert_dir.mkdir()
    shutil.copy(ca, cert_dir / "ca.crt")
    archive = directory / "tiny.tar"
    write_archive(
        [ImageSpec(tags=(f"{UPSTREAM_HOST}/{IMAGE_PATH}",), layers=(LayerSpec("tiny", busybox=True),))],
        archive,
    )
    tls_port, http_port = _free_port(), _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, port, tls in (("tls", tls_port, (cert, key)), ("http", http_port, None)):
            config = directory / f"{name}.yml"
            config.write_text(_config(directory / f"data-{name}", port, tls))
            log = (directory / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()
        _wait_up(tls_port, ca)
        _wait_up(http_port, None)
        source = f"docker-archive:{archive}:{UPSTREAM_HOST}/{IMAGE_PATH}"
        for dest in (
            ["--dest-cert-dir", str(cert_dir), f"docker://127.0.0.1:{tls_port}/{IMAGE_PATH}"],
            ["--dest-tls-verify=false", f"docker://127.0.0.1:{http_port}/{IMAGE_PATH}"],
        ):
            subprocess.run(
                ["skopeo", "copy", "--quiet", source, *dest], check=True, capture_output=True, timeout=60
            )
        yield Registries(tls_port, http_port, ca.read_text())
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=5)
