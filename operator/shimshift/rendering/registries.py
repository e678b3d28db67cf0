"""Registry intents (spec + translated Docker config) -> the hosts.toml plan for certs.d/<host>/.

Spec registries win over translated ones, host by host; each override is reported as a conflict.
A CA given for a host applies to the host and its mirrors (CRD: caSecretRef); a mirror host that has
its own entry (Docker's certs.d/<mirror>/, an insecure mirror) also gets that entry's TLS settings.

TLS material is checked before it becomes a file (shimshift.model.pem): a CA (caBundle, caSecretRef, a
*.crt carried from Docker's certs.d) is X.509 certificates only, since ca.crt is written 0644; a client
pair (clientCertSecretRef) is a certificate and its own key, written 0644 and 0600. Anything else is a
problem naming the registry, the field and the Secret (or the node file), never the content.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, replace

from shimshift.model.errors import Problem
from shimshift.model.pem import ca_bundle_problem, client_pair_problem
from shimshift.model.spec import Registry
from shimshift.rendering.docker import (
    DOCKER_HUB,
    DOCKER_HUB_SERVER,
    HOST_RE,
    ClientPair,
    DockerTranslation,
    RegistryIntent,
    host_in_networks,
    mirror_problem,
    url_host,
)
from shimshift.rendering.values import (
    ClientCert,
    NodeLayout,
    RegistryMaterial,
    RegistryOverride,
    TranslatedHost,
)

PULL_CAPS = ("pull", "resolve")


@dataclass(frozen=True)
class Tls:
    ca: tuple[str, ...] = ()  # file paths on the node
    client: tuple[tuple[str, str], ...] = ()  # (cert path, key path)
    skip_verify: bool = False


@dataclass(frozen=True)
class Endpoint:
    url: str
    capabilities: tuple[str, ...]
    tls: Tls


@dataclass(frozen=True)
class HostsPlan:
    """One certs.d/<host>/hosts.toml and the files next to it."""

    host: str
    source: str
    server: str | None
    server_tls: Tls
    endpoints: tuple[Endpoint, ...]
    files: tuple[tuple[str, str, bool], ...]  # (path, text, secret) of CA / client files to write

    def referenced_paths(self) -> set[str]:
        paths = set(self.server_tls.ca) | {p for pair in self.server_tls.client for p in pair}
        for e in self.endpoints:
            paths |= set(e.tls.ca) | {p for pair in e.tls.client for p in pair}
        return paths


def spec_intents(
    registries: Sequence[Registry], material: RegistryMaterial
) -> tuple[list[RegistryIntent], list[Problem]]:
    """Intents from spec.containerd.registries with the secret material resolved."""
    intents: list[RegistryIntent] = []
    problems: list[Problem] = []
    for i, reg in enumerate(registries):
        path = f"spec.containerd.registries[{i}]"
        if not HOST_RE.match(reg.host):
            problems.append(
                Problem(f"{path}.host", f"{reg.host!r} is not a registry host[:port] or _default")
            )
            continue
        if reg.plain_http and reg.host in (DOCKER_HUB, "_default"):
            what = "Docker Hub only speaks HTTPS" if reg.host == DOCKER_HUB else "_default names no server"
            problems.append(
                Problem(
                    f"{path}.plainHTTP", f"{what}; give plain-HTTP mirrors as http:// URLs in mirrors instead"
                )
            )
        if reg.host == "_default" and reg.skip_verify and not reg.mirrors:
            problems.append(
                Problem(
                    f"{path}.skipVerify",
                    "_default without mirrors has no host entry to carry it (containerd 1.6 ignores it); "
                    "list the registries, or give _default a mirror",
                )
            )
        for j, mirror in enumerate(reg.mirrors):
            problem = mirror_problem(mirror)
            if problem:
                problems.append(Problem(f"{path}.mirrors[{j}]", f"{mirror!r} {problem}"))
        cas: tuple[tuple[str, str], ...] = ()
        if reg.ca_bundle is not None:
            bad = ca_bundle_problem(reg.ca_bundle)
            if bad:
                problems.append(Problem(f"{path}.caBundle", f"registry {reg.host}: {bad}"))
            else:
                cas = (("ca.crt", reg.ca_bundle),)
        elif reg.ca_secret is not None:
            problems += _ca_from_secret(path, reg, material)
            if reg.host in material.ca_bundles and not problems_for(problems, f"{path}.caSecretRef"):
                cas = (("ca.crt", material.ca_bundles[reg.host]),)
        pairs: tuple[ClientPair, ...] = ()
        if reg.client_cert_secret is not None:
            problems += _client_from_secret(path, reg, material)
            client: ClientCert | None = material.client_certs.get(reg.host)
            if client is not None and not problems_for(problems, f"{path}.clientCertSecretRef"):
                pairs = (ClientPair(cert_pem=client.cert_pem, key_pem=client.key_pem),)
        intents.append(
            RegistryIntent(
                host=reg.host,
                source=path,
                mirrors=tuple(m.rstrip("/") for m in reg.mirrors),
                ca_pems=cas,
                client_pairs=pairs,
                skip_verify=reg.skip_verify,
                plain_http=reg.plain_http,
            )
        )
    return intents, problems


def problems_for(problems: Sequence[Problem], path: str) -> bool:
    return any(p.path == path for p in problems)


#: Why a Secret-backed registry file is missing from an offline plan, and what to do instead.
_OFFLINE = "an offline plan reads no Secrets: plan with --probe-namespace, or in the operator's Plan mode"


def _unusable(field: str, where: str, refused: str | None, missing: bool, unresolved: str) -> list[Problem]:
    """The problem of a registry Secret the resolver refused or never read (none when it has content)."""
    if refused:
        return [Problem(field, f"{where}: {refused}")]
    return [Problem(field, unresolved)] if missing else []


def _ca_from_secret(path: str, reg: Registry, material: RegistryMaterial) -> list[Problem]:
    assert reg.ca_secret is not None
    field = f"{path}.caSecretRef"
    where = f"registry {reg.host}: Secret {reg.ca_secret.name} (key {reg.ca_secret.key})"
    pem = material.ca_bundles.get(reg.host)
    unusable = _unusable(
        field,
        where,
        material.refused.get((reg.host, "caSecretRef")),
        pem is None,
        f"{where} was not resolved ({_OFFLINE}); create the Secret in the operator's namespace",
    )
    if unusable or pem is None:
        return unusable
    bad = ca_bundle_problem(pem)
    if bad:
        return [
            Problem(
                field,
                f"{where}: {bad}; nothing was written: a CA is put on every node world-readable, so "
                "point caSecretRef at a Secret that holds only the CA certificate(s)",
            )
        ]
    return []


def _client_from_secret(path: str, reg: Registry, material: RegistryMaterial) -> list[Problem]:
    field = f"{path}.clientCertSecretRef"
    where = f"registry {reg.host}: Secret {reg.client_cert_secret}"
    client = material.client_certs.get(reg.host)
    unusable = _unusable(
        field,
        where,
        material.refused.get((reg.host, "clientCertSecretRef")),
        client is None,
        f"{where}: the client certificate was not resolved ({_OFFLINE}); create a kubernetes.io/tls "
        "Secret with tls.crt and tls.key",
    )
    if unusable or client is None:
        return unusable
    bad = client_pair_problem(client.cert_pem, client.key_pem)
    if bad:
        which, why = bad
        key = "tls.crt" if which == "certificate" else "tls.key"
        return [
            Problem(
                field,
                f"{where} (key {key}): {why}; nothing was written: give a kubernetes.io/tls Secret whose "
                "tls.crt is the client certificate and tls.key its private key",
            )
        ]
    return []


def carried_ca_problems(intents: Sequence[RegistryIntent], layout_certs_dir: str) -> list[Problem]:
    """CA files carried over from the node (Docker's certs.d) that are not certificates only.

    They are copied to containerd's certs.d world-readable, so a key that sits in a *.crt file there
    (Docker itself skips non-certificate blocks) would become readable by every user of the node."""
    problems: list[Problem] = []
    for intent in intents:
        if intent.source.startswith("spec."):
            continue
        for name, pem in intent.ca_pems:
            bad = ca_bundle_problem(pem)
            if bad:
                problems.append(
                    Problem(
                        f"/etc/docker/certs.d/{intent.host}/{name}",
                        f"registry {intent.host}: {bad}; this file would be copied to "
                        f"{posixpath.join(layout_certs_dir, intent.host, name)} readable by every user of "
                        "the node: leave only the certificates in it, or list the registry in "
                        "spec.containerd.registries (its CA there wins), or set importDockerConfig: false",
                    )
                )
    return problems


def merge_intents(
    spec: Sequence[RegistryIntent], translation: DockerTranslation | None
) -> tuple[list[RegistryIntent], list[RegistryOverride], list[TranslatedHost]]:
    """Spec entries win host by host; report what the translation would have set."""
    merged = {i.host: i for i in spec}
    conflicts: list[RegistryOverride] = []
    translated: list[TranslatedHost] = []
    if translation is not None:
        for t in translation.intents:
            if t.host in merged:
                conflicts.append(
                    RegistryOverride(t.host, f"{t.source} ({_summary(t)})", merged[t.host].source)
                )
                continue
            merged[t.host] = t
            translated.append(TranslatedHost(t.host, t.source, _summary(t)))
        networks = translation.insecure_networks
        if networks:
            # CIDR insecure-registries apply to every endpoint whose address lies inside them.
            for host, intent in list(merged.items()):
                if intent.source.startswith("spec."):
                    continue
                if host_in_networks(host, networks) and not intent.try_http:
                    merged[host] = replace(intent, try_http=True)
    return [merged[h] for h in sorted(merged)], conflicts, translated


def _summary(intent: RegistryIntent) -> str:
    parts: list[str] = []
    if intent.mirrors:
        parts.append("mirrors " + ", ".join(intent.mirrors))
    if intent.ca_pems:
        parts.append("CA " + ", ".join(name for name, _ in intent.ca_pems))
    if intent.client_pairs:
        parts.append(f"{len(intent.client_pairs)} client certificate(s)")
    if intent.try_http:
        parts.append("insecure (HTTPS without verification, then HTTP)")
    if intent.skip_verify:
        parts.append("skip_verify")
    if intent.plain_http:
        parts.append("plain HTTP")
    return "; ".join(parts) or "nothing"


def plan_hosts(
    intents: Sequence[RegistryIntent], layout: NodeLayout, insecure_networks: Sequence[str] = ()
) -> list[HostsPlan]:
    by_host = {i.host: i for i in intents}
    plans: list[HostsPlan] = []
    for intent in intents:
        directory = posixpath.join(layout.certs_dir, intent.host)
        files: list[tuple[str, str, bool]] = []
        ca_paths: list[str] = []
        for name, pem in intent.ca_pems:
            path = posixpath.join(directory, name)
            files.append((path, pem if pem.endswith("\n") else pem + "\n", False))
            ca_paths.append(path)
        client: list[tuple[str, str]] = []
        for n, pair in enumerate(intent.client_pairs):
            if pair.cert_pem is not None and pair.key_pem is not None:
                stem = "client" if n == 0 else f"client-{n}"
                cert = posixpath.join(directory, f"{stem}.cert")
                key = posixpath.join(directory, f"{stem}.key")
                files.append((cert, pair.cert_pem, False))
                files.append((key, pair.key_pem, True))
                client.append((cert, key))
            else:
                client.append((pair.cert_path, pair.key_path))
        own_tls = Tls(ca=tuple(ca_paths), client=tuple(client), skip_verify=intent.skip_verify)

        endpoints: list[Endpoint] = []
        for mirror in intent.mirrors:
            mirror_host = url_host(mirror)
            other = by_host.get(mirror_host)
            tls = Tls(ca=own_tls.ca)
            insecure = False
            if other is not None and other is not intent:
                other_ca = tuple(posixpath.join(layout.certs_dir, mirror_host, n) for n, _ in other.ca_pems)
                other_client = tuple(
                    (p.cert_path, p.key_path) for p in other.client_pairs if p.cert_pem is None
                ) + tuple(
                    (
                        posixpath.join(layout.certs_dir, mirror_host, "client.cert"),
                        posixpath.join(layout.certs_dir, mirror_host, "client.key"),
                    )
                    for p in other.client_pairs[:1]
                    if p.cert_pem is not None
                )
                tls = Tls(ca=tls.ca + other_ca, client=other_client, skip_verify=other.skip_verify)
                insecure = other.try_http
            elif host_in_networks(mirror_host, insecure_networks):
                insecure = True
            if insecure and mirror.startswith("https://"):
                endpoints.append(Endpoint(mirror, PULL_CAPS, replace(tls, skip_verify=True)))
                endpoints.append(Endpoint("http://" + mirror[len("https://") :], PULL_CAPS, Tls()))
            else:
                endpoints.append(Endpoint(mirror, PULL_CAPS, tls if mirror.startswith("https://") else Tls()))

        server: str | None
        server_tls = own_tls
        if intent.host == "_default":
            server = None
        elif intent.host == DOCKER_HUB:
            server = DOCKER_HUB_SERVER
        elif intent.plain_http:
            # containerd 1.6 ignores the scheme of `server` (it still speaks HTTPS to it; found on the
            # real daemon), so plain HTTP needs a host entry of its own.
            endpoints.append(Endpoint(f"http://{intent.host}", (*PULL_CAPS, "push"), Tls()))
            server = f"http://{intent.host}"
            server_tls = Tls()
        elif intent.try_http:
            # Docker's insecure registry: try TLS without verification, then plain HTTP.
            endpoints.append(
                Endpoint(f"https://{intent.host}", (*PULL_CAPS, "push"), replace(own_tls, skip_verify=True))
            )
            endpoints.append(Endpoint(f"http://{intent.host}", (*PULL_CAPS, "push"), Tls()))
            server = f"https://{intent.host}"
            server_tls = replace(own_tls, skip_verify=True)
        else:
            server = f"https://{intent.host}"
        if not endpoints and server is not None:
            # containerd 1.6 cannot decode a hosts.toml without [host] tables ("invalid `host` tree",
            # found on the real daemon) and silently falls back to Docker-style files in the directory;
            # so the server gets a host entry of its own.
            endpoints.append(Endpoint(server, (*PULL_CAPS, "push"), server_tls))
        unique: dict[str, Endpoint] = {}
        for endpoint in endpoints:  # a mirror listed twice, or also the registry's own HTTP fallback
            unique.setdefault(endpoint.url, endpoint)
        endpoints = list(unique.values())
        plans.append(
            HostsPlan(
                host=intent.host,
                source=intent.source,
                server=server,
                server_tls=server_tls,
                endpoints=tuple(endpoints),
                files=tuple(files),
            )
        )
    return plans
