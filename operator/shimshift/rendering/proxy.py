"""Docker's HTTP proxy for containerd: a systemd drop-in of containerd.service with the same
HTTP_PROXY / HTTPS_PROXY / NO_PROXY (`model.proxy` reads them), or containerd's own drop-in kept when
it already sets a proxy. Pure.

The drop-in's first line marks it as shimshift's (`model.proxy.OWN_MARK`), so a later probe of the node
tells it from an admin's. It is written 0600 when a value holds a URL password. What people see of it
(plan, diff, notes) has URL passwords redacted; the written file is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shimshift.model.facts import NodeFacts, Setting
from shimshift.model.proxy import (
    DAEMON_JSON_PROXIES,
    OWN_MARK,
    PROXY_VARIABLES,
    docker_proxy,
    effective_environment,
    is_own_dropin,
    proxy_environment,
)
from shimshift.rendering.redact import redact_text
from shimshift.rendering.values import NodeLayout, NotCarried, RenderedFile, TranslatedHost


@dataclass(frozen=True)
class ProxyRender:
    """What becomes of Docker's proxy on one node."""

    file: RenderedFile | None = None
    translated: tuple[TranslatedHost, ...] = ()
    not_carried: tuple[NotCarried, ...] = ()
    notes: tuple[str, ...] = ()
    #: the proxy environment containerd runs with afterwards (variable -> value), and where it is set
    containerd_env: Mapping[str, str] = field(default_factory=dict)
    containerd_env_file: str = ""


def _source(s: Setting) -> str:
    return DAEMON_JSON_PROXIES if s.file == DAEMON_JSON_PROXIES else f"{s.file} Environment"


def _quoted(name: str, value: str) -> str:
    """One `Environment="NAME=value"` line, escaped for systemd (quotes, backslashes, specifiers)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'Environment="{name}={escaped}"'


def dropin_text(env: Mapping[str, Setting]) -> str:
    sources = ", ".join(dict.fromkeys(_source(s) for s in env.values()))
    lines = [
        f"{OWN_MARK}: the HTTP proxy Docker pulled through ({sources}), for containerd's pulls.",
        "# The undo of shimshift's configure step removes this file.",
        "[Service]",
        *(_quoted(name, env[name].value) for name in PROXY_VARIABLES if name in env),
    ]
    return "\n".join(lines) + "\n"


def _shown_env(env: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={redact_text(v)}" for k, v in env.items()) or "no proxy variables"


def containerd_proxy(facts: NodeFacts, layout: NodeLayout) -> ProxyRender:
    docker, problems = docker_proxy(facts.docker_proxy_env, facts.daemon_json)
    not_carried = tuple(
        NotCarried(
            DAEMON_JSON_PROXIES,
            redact_text(p),
            f"set it in a drop-in of containerd.service ({layout.proxy_dropin} is shimshift's)",
        )
        for p in problems
    )
    foreign = {p: t for p, t in facts.containerd_dropins.items() if not is_own_dropin(t)}
    own_env = {k: s.value for k, s in effective_environment(proxy_environment(foreign)).items() if s.value}
    if own_env or layout.proxy_dropin in foreign:
        paths = ", ".join(sorted(foreign)) if own_env else layout.proxy_dropin
        note = f"containerd's own drop-in {paths} is kept as it is ({_shown_env(own_env)})"
        if docker:
            shown_docker = _shown_env({k: s.value for k, s in docker.items()})
            note += f"; Docker's proxy ({shown_docker}) is not written over it"
        return ProxyRender(
            not_carried=not_carried,
            notes=(note,),
            containerd_env=own_env,
            containerd_env_file=paths,
        )
    if not docker:
        return ProxyRender(not_carried=not_carried)
    text = dropin_text(docker)
    secret_url = any(redact_text(s.value) != s.value for s in docker.values())
    rendered = RenderedFile(layout.proxy_dropin, text.encode(), 0o600 if secret_url else 0o644)
    translated = tuple(
        TranslatedHost(f"{name}={redact_text(s.value)}", _source(s), f"in {layout.proxy_dropin}")
        for name, s in docker.items()
    )
    shown_docker = _shown_env({k: s.value for k, s in docker.items()})
    carried_note = (
        f"Docker's HTTP proxy goes to {layout.proxy_dropin} ({shown_docker}); "
        "systemd reloads its units before containerd restarts"
    )
    return ProxyRender(
        rendered,
        translated,
        not_carried,
        (carried_note,),
        {k: s.value for k, s in docker.items()},
        layout.proxy_dropin,
    )
