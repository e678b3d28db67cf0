"""Translate a node's own Docker registry configuration into registry intents.

Sources: `daemon.json` `registry-mirrors` (Docker uses them for docker.io only, in order),
`insecure-registries` (host[:port] or CIDR; Docker tries HTTPS without verification, then plain HTTP)
and `/etc/docker/certs.d/<host>/` (`*.crt` CAs, `<name>.cert` + `<name>.key` client pairs). Everything
else in daemon.json is reported with what becomes of it (the tables of `shimshift.model.dockerera`).
Client keys are referenced where they are on the node (the facts never carry key material).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from shimshift.model.dockerera import Fate, daemon_json_fate
from shimshift.model.facts import NodeFacts
from shimshift.rendering.values import NotCarried

HOST_RE = re.compile(r"^(_default|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?)$")
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"
# Docker treats these as insecure without being told (registry/config.go); not worth a report line.
_DOCKER_IMPLICIT_INSECURE = ("127.0.0.0/8",)


@dataclass(frozen=True)
class ClientPair:
    """A client certificate pair: rendered from a Secret (PEM) or referenced in place by path."""

    cert_path: str = ""
    key_path: str = ""
    cert_pem: str | None = None
    key_pem: str | None = None


@dataclass(frozen=True)
class RegistryIntent:
    """What one registry host should get, before it becomes files (spec entries and translated ones)."""

    host: str
    source: str
    mirrors: tuple[str, ...] = ()
    ca_pems: tuple[tuple[str, str], ...] = ()  # (file name in certs.d/<host>/, PEM)
    client_pairs: tuple[ClientPair, ...] = ()
    skip_verify: bool = False
    plain_http: bool = False
    try_http: bool = False  # Docker's insecure-registries: HTTPS without verification, then HTTP


@dataclass(frozen=True)
class DockerTranslation:
    intents: tuple[RegistryIntent, ...] = ()
    not_carried: tuple[NotCarried, ...] = ()
    insecure_networks: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = ()


def mirror_problem(url: str) -> str | None:
    """Why `url` is not a usable mirror URL, or None."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    if parts.scheme not in ("http", "https"):
        return "needs the scheme http:// or https://"
    if not parts.hostname:
        return "has no host"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "contains whitespace or control characters"
    return None


def url_host(url: str) -> str:
    """host[:port] of a URL, as certs.d names it."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def _strip_scheme(entry: str) -> str:
    for prefix in ("http://", "https://"):
        if entry.lower().startswith(prefix):
            return entry[len(prefix) :]
    return entry


def translate_docker_config(facts: NodeFacts) -> DockerTranslation:
    """Registry intents from daemon.json and /etc/docker/certs.d, plus what cannot be carried over."""
    daemon: Mapping[str, Any] = facts.daemon_json or {}
    not_carried: list[NotCarried] = []
    warnings: list[str] = []
    by_host: dict[str, RegistryIntent] = {}

    def intent(host: str, source: str) -> RegistryIntent:
        return by_host.setdefault(host, RegistryIntent(host=host, source=source))

    mirrors: list[str] = []
    for url in _as_list(daemon.get("registry-mirrors")):
        clean = url.strip().rstrip("/")
        problem = mirror_problem(clean)
        if problem:
            not_carried.append(
                NotCarried("daemon.json registry-mirrors", url, f"nothing: the mirror URL {problem}")
            )
        elif clean not in mirrors:
            mirrors.append(clean)
    if mirrors:
        by_host[DOCKER_HUB] = RegistryIntent(
            DOCKER_HUB, "daemon.json registry-mirrors", mirrors=tuple(mirrors)
        )

    networks: list[str] = []
    for raw in _as_list(daemon.get("insecure-registries")):
        entry = _strip_scheme(raw.strip()).rstrip("/")
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                not_carried.append(
                    NotCarried("daemon.json insecure-registries", raw, "nothing: not a host or CIDR")
                )
                continue
            networks.append(str(net))
            continue
        if not HOST_RE.match(entry) or entry == "_default":
            not_carried.append(
                NotCarried("daemon.json insecure-registries", raw, "nothing: not a registry host[:port]")
            )
            continue
        current = intent(entry, "daemon.json insecure-registries")
        by_host[entry] = replace(current, try_http=True)

    for certs in facts.docker_certs:
        host = certs.host
        if not HOST_RE.match(host) or host == "_default":
            not_carried.append(
                NotCarried("/etc/docker/certs.d", host, "nothing: the directory is not named host[:port]")
            )
            continue
        current = intent(host, "/etc/docker/certs.d")
        cas = tuple(
            (posixpath.basename(path), pem)
            for path, pem in sorted(certs.ca_certs.items())
            if path.endswith(".crt")
        )
        pairs: list[ClientPair] = []
        for cert in sorted(certs.client_certs):
            key = cert[: -len(".cert")] + ".key"
            if key in certs.client_keys:
                pairs.append(ClientPair(cert_path=cert, key_path=key))
            else:
                not_carried.append(
                    NotCarried(
                        f"/etc/docker/certs.d/{host}",
                        cert,
                        f"nothing: Docker pairs it with {key}, which is missing (Docker ignored it too)",
                    )
                )
        by_host[host] = replace(
            current, ca_pems=current.ca_pems + cas, client_pairs=current.client_pairs + tuple(pairs)
        )

    for key in sorted(daemon):
        rule = daemon_json_fate(key, daemon[key], daemon, facts.snapshotters)
        if rule.fate is Fate.TRANSLATED:
            continue
        value = json.dumps(daemon[key], sort_keys=True)
        outcome = f"{rule.text}; {rule.advice}" if rule.advice else rule.text
        not_carried.append(NotCarried(f"daemon.json {key}", value, outcome))
    extra_nets = [n for n in networks if n not in _DOCKER_IMPLICIT_INSECURE]
    return DockerTranslation(
        intents=tuple(by_host[h] for h in sorted(by_host)),
        not_carried=tuple(not_carried),
        insecure_networks=tuple(extra_nets),
        warnings=tuple(warnings),
    )


def docker_cgroup_driver(facts: NodeFacts) -> str | None:
    """native.cgroupdriver from daemon.json exec-opts, else what `docker info` reported."""
    for opt in _as_list((facts.daemon_json or {}).get("exec-opts")):
        name, _, value = opt.partition("=")
        if name.strip() == "native.cgroupdriver" and value.strip():
            return value.strip()
    return facts.docker_cgroup_driver


def host_in_networks(host: str, networks: Iterable[str]) -> bool:
    """Whether host (an IP literal, optionally with :port) lies in one of the CIDRs."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        addr = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n) for n in networks)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
