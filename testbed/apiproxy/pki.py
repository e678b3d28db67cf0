"""The proxy's own throwaway CA and a server certificate for 127.0.0.1 and localhost, issued by the
testbed's one certificate authority (``testbed.controlplane.pki.Authority``: SHA-256, P-256);
``issue_client_cert`` signs a client certificate with such a CA (tests use it for an upstream admin)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed.controlplane.pki import Authority


@dataclass(frozen=True)
class ServingPki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_serving_pki(directory: Path, common_name: str = "shimshift apiproxy") -> ServingPki:
    """Write ``ca.crt``, ``ca.key``, ``server.crt`` and ``server.key`` (keys mode 0600) into ``directory``."""
    authority = Authority.create(directory, f"{common_name} CA")
    server = authority.issue("server", common_name, server=True, ips=("127.0.0.1",), dns=("localhost",))
    return ServingPki(authority.cert_path, authority.key_path, server.cert, server.key)


def issue_client_cert(pki: ServingPki, common_name: str, directory: Path) -> tuple[Path, Path]:
    """A client certificate for ``common_name`` (organization ``system:masters``, as a cluster's admin)
    signed by ``pki``'s CA, written into ``directory``; returns its certificate and key paths."""
    pair = Authority(pki.ca_cert.parent).issue(
        f"client-{common_name}", common_name, organizations=("system:masters",)
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    pair.cert.replace(cert)
    pair.key.replace(key)
    return cert, key
