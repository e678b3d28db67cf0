"""A real TLS registry (Debian ``docker-registry``) with a throwaway CA, reachable from nodes by name.

The registry listens on the host's 127.0.0.1:<port>. A host socat relays ``registry.sock`` in the
cluster dir to it, and in each node that uses the registry a socat inside the node's netns listens
on the node's own 127.0.0.1:443 and relays to that unix socket; the node's /etc/hosts maps
``registry.shimshift.test`` (a reserved TLD, so a forgotten config fails fast instead of
resolving anywhere) to 127.0.0.1. Its certificate is valid for that name, localhost and 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.nodes.layout import REGISTRY_HOST

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {cert}
    key: {key}
"""


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def make_pki(directory: Path, host: str = REGISTRY_HOST) -> tuple[Path, Path, Path]:
    """Write a throwaway CA and a server certificate for ``host``; return (ca, cert, key) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shimshift testbed CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(host),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return ca_path, cert_path, key_path


@dataclass(frozen=True)
class Registry:
    """Coordinates of the cluster's registry. ``host`` is the name nodes use; from the host use
    ``url`` (https://127.0.0.1:<port>) with ``ca_cert``."""

    directory: Path
    port: int
    host: str = REGISTRY_HOST

    @property
    def ca_cert(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        return self.directory / "registry.sock"

    @property
    def cert_dir(self) -> Path:
        """A directory holding only ``ca.crt``, as skopeo's ``--dest-cert-dir`` wants."""
        return self.directory / "certs"

    def config(self) -> str:
        pki = self.directory / "pki"
        return CONFIG.format(
            data=self.directory / "data", port=self.port, cert=pki / "server.crt", key=pki / "server.key"
        )

    def is_up(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                tls.sendall(f"GET /v2/ HTTP/1.0\r\nHost: {self.host}\r\n\r\n".encode())
                status_line = tls.recv(64).split(b"\r\n", 1)[0]
                return status_line.split()[1:2] == [b"200"]
        except OSError:
            return False

    def describe(self) -> dict[str, str | int]:
        return {
            "host": self.host,
            "url": self.url,
            "port": self.port,
            "ca_cert": str(self.ca_cert),
            "socket": str(self.socket),
        }
