"""Reading the pieces of a kubeconfig the proxy needs, and writing one that points at the proxy.

Only what the testbed's kubeconfigs use is understood: the current context's cluster (``server``,
``certificate-authority`` or ``-data``, ``insecure-skip-tls-verify``) and user (``token`` or
``tokenFile``, ``client-certificate``/``client-key`` or their ``-data``). Anything else (exec plugins,
auth providers) is refused with a ``KubeconfigError`` naming it.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """A kubeconfig the proxy cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class Credentials:
    """The current context of a kubeconfig: where the server is and who the user is."""

    server: str
    ca_pem: bytes | None  # None: the system's trust store (or no TLS for http://)
    insecure: bool
    token: str | None
    client_cert_pem: bytes | None
    client_key_pem: bytes | None


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigError(f"{path}: cannot read the kubeconfig: {e}") from e
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig (no mapping at the top)")
    return doc


def _named(doc: dict[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for entry in doc.get(section) or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            key = section.rstrip("s")
            value = entry.get(key) or {}
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"{path}: no {section} entry named {name!r}")


def _current(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    name = doc.get("current-context")
    if not name:
        raise KubeconfigError(f"{path}: no current-context")
    return _named(doc, "contexts", str(name), path)


def _pem(entry: dict[str, Any], key: str, base: Path, path: Path) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except ValueError as e:
            raise KubeconfigError(f"{path}: {key}-data is not base64") from e
    file = entry.get(key)
    if file:
        target = Path(str(file))
        target = target if target.is_absolute() else base / target
        try:
            return target.read_bytes()
        except OSError as e:
            raise KubeconfigError(f"{path}: {key} {target}: {e.strerror}") from e
    return None


def read_credentials(path: Path) -> Credentials:
    """The server and user of ``path``'s current context."""
    doc = _load(path)
    context = _current(doc, path)
    cluster = _named(doc, "clusters", str(context.get("cluster", "")), path)
    user = _named(doc, "users", str(context.get("user", "")), path) if context.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username", "password"):
        if unsupported in user:
            raise KubeconfigError(f"{path}: the user's {unsupported!r} is not supported by the test proxy")
    server = str(cluster.get("server") or "")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"{path}: the cluster's server {server!r} is not an http(s) URL")
    base = path.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = (base / str(user["tokenFile"])).read_text().strip()
        except OSError as e:
            raise KubeconfigError(f"{path}: tokenFile: {e.strerror}") from e
    return Credentials(
        server=server.rstrip("/"),
        ca_pem=_pem(cluster, "certificate-authority", base, path),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=str(token) if token else None,
        client_cert_pem=_pem(user, "client-certificate", base, path),
        client_key_pem=_pem(user, "client-key", base, path),
    )


def write_proxy_kubeconfig(source: Path, dest: Path, proxy_url: str, proxy_ca_pem: bytes) -> Path:
    """Copy ``source`` to ``dest`` with its current context's cluster pointing at the proxy (its URL,
    trusting its CA); users and contexts, and so the credentials, stay as they are. File references of
    the users are made absolute so ``dest`` works from any directory."""
    doc = copy.deepcopy(_load(source))
    context = _current(doc, source)
    cluster = _named(doc, "clusters", str(context.get("cluster", "")), source)
    for key in ("certificate-authority", "insecure-skip-tls-verify", "tls-server-name", "proxy-url"):
        cluster.pop(key, None)
    cluster["server"] = proxy_url
    cluster["certificate-authority-data"] = base64.b64encode(proxy_ca_pem).decode()
    for entry in doc.get("users") or ():
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in ("client-certificate", "client-key", "tokenFile"):
            if user.get(key) and not Path(str(user[key])).is_absolute():
                user[key] = str((source.parent / str(user[key])).resolve())
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    dest.chmod(0o600)
    return dest
