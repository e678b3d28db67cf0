"""Two real registries (Debian docker-registry) on 127.0.0.1 for pull tests: one TLS with a throwaway
CA (the testbed's make_pki), one plain HTTP; both seeded with a tiny busybox image by skopeo from a
generated docker-archive. No internet: every name is a reserved .test name mapped to 127.0.0.1 in the
private /etc/hosts of the containerd under test.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testbed.nodes.images import ImageSpec, LayerSpec, write_archive
from testbed.nodes.registry import make_pki
from testbed.ports import free_port as _free_port
from testbed.waiting import wait_until

MIRROR_HOST = "mirror.shimshift.test"  # the TLS registry's name (its certificate is for this name)
UPSTREAM_HOST = "upstream.shimshift.test"  # a registry that exists only through its mirror
INSECURE_HOST = "insecure.shimshift.test"  # the plain HTTP registry's name
MTLS_HOST = "mtls.shimshift.test"  # a TLS registry that requires a client certificate
IMAGE_PATH = "team/tiny:1.0"
HOSTS_FILE = f"127.0.0.1\tlocalhost {MIRROR_HOST} {UPSTREAM_HOST} {INSECURE_HOST} {MTLS_HOST}\n"
READY_TIMEOUT = 10.0


def missing_prerequisites() -> list[str]:
    return [t for t in ("docker-registry", "skopeo") if shutil.which(t) is None]


@dataclass(frozen=True)
class Registries:
    tls_port: int
    http_port: int
    ca_pem: str
    mtls_port: int
    mtls_ca_pem: str
    client_cert_pem: str
    client_key_pem: str

    @property
    def mtls(self) -> str:
        return f"{MTLS_HOST}:{self.mtls_port}"

    @property
    def mirror_url(self) -> str:
        return f"https://{MIRROR_HOST}:{self.tls_port}"

    @property
    def insecure(self) -> str:
        return f"{INSECURE_HOST}:{self.http_port}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_mtls_pki(directory: Path) -> dict[str, Path]:
    """A CA that signs both the registry's server certificate and a client certificate."""
    directory.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shimshift mTLS test CA")])

    def cert(
        name: str, key: ec.EllipticCurvePrivateKey, usage: x509.ObjectIdentifier, ca: bool = False
    ) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(ca_name if ca else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            if usage == ExtendedKeyUsageOID.SERVER_AUTH:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    ),
                    critical=False,
                )
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": cert("", ca_key, ExtendedKeyUsageOID.SERVER_AUTH, ca=True),
        "server.crt": cert(MTLS_HOST, server_key, ExtendedKeyUsageOID.SERVER_AUTH),
        "server.key": _pem_key(server_key),
        "client.cert": cert("shimshift-node", client_key, ExtendedKeyUsageOID.CLIENT_AUTH),
        "client.key": _pem_key(client_key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in files}


def _config(data: Path, port: int, tls: tuple[Path, Path] | None, client_ca: Path | None = None) -> str:
    lines = [
        "version: 0.1",
        "log: {level: warn}",
        f"storage: {{filesystem: {{rootdirectory: {data}}}}}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if client_ca:
        lines += ["    clientcas:", f"      - {client_ca}"]
    return "\n".join(lines) + "\n"


def _wait_up(port: int, ca: Path | None, name: str = MIRROR_HOST) -> None:
    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                if ca is not None:
                    context = ssl.create_default_context(cafile=str(ca))
                    with context.wrap_socket(raw, server_hostname=name):
                        return True
                return True
        except OSError:
            return False

    wait_until(up, READY_TIMEOUT, what=f"the registry on 127.0.0.1:{port}", interval=0.05)


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
    mtls = make_mtls_pki(directory / "mtls")
    mtls_certs = directory / "mtls-certs"  # skopeo's --dest-cert-dir: ca.crt + client.cert/.key
    mtls_certs.mkdir()
    for name in ("ca.crt", "client.cert", "client.key"):
        shutil.copy(mtls[name], mtls_certs / name)
    tls_port, http_port, mtls_port = _free_port(), _free_port(), _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, port, tls, client_ca in (
            ("tls", tls_port, (cert, key), None),
            ("http", http_port, None, None),
            ("mtls", mtls_port, (mtls["server.crt"], mtls["server.key"]), mtls["ca.crt"]),
        ):
            config = directory / f"{name}.yml"
            config.write_text(_config(directory / f"data-{name}", port, tls, client_ca))
            log = (directory / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()
        _wait_up(tls_port, ca)
        _wait_up(http_port, None)
        _wait_up(mtls_port, None)
        source = f"docker-archive:{archive}:{UPSTREAM_HOST}/{IMAGE_PATH}"
        for dest in (
            ["--dest-cert-dir", str(cert_dir), f"docker://127.0.0.1:{tls_port}/{IMAGE_PATH}"],
            ["--dest-tls-verify=false", f"docker://127.0.0.1:{http_port}/{IMAGE_PATH}"],
            ["--dest-cert-dir", str(mtls_certs), f"docker://127.0.0.1:{mtls_port}/{IMAGE_PATH}"],
        ):
            subprocess.run(
                ["skopeo", "copy", "--quiet", source, *dest], check=True, capture_output=True, timeout=60
            )
        yield Registries(
            tls_port,
            http_port,
            ca.read_text(),
            mtls_port,
            mtls["ca.crt"].read_text(),
            mtls["client.cert"].read_text(),
            mtls["client.key"].read_text(),
        )
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=5)
