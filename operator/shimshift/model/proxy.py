"""The HTTP proxy a node's Docker pulled through, and the one containerd would: systemd `Environment=`
lines and daemon.json `proxies`, read into (variable, value, where) settings. Pure.

Docker takes HTTP_PROXY / HTTPS_PROXY / NO_PROXY (either case) from its service's environment (the
unit in /etc/systemd/system and its docker.service.d drop-ins, in systemd's order: the unit first,
then the drop-ins by file name, a later assignment winning) and, from Docker 23, from daemon.json
`proxies` (`http-proxy`, `https-proxy`, `no-proxy`), which wins over the environment. Values may hold
credentials (`http://user:password@proxy:3128`): whatever shows them goes through
`shimshift.rendering.redact.redact_text`; facts and the written drop-in keep them as they are.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from shimshift.model.facts import Setting

#: The variables carried, as containerd's Go HTTP client reads them first (upper case).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
#: daemon.json `proxies` keys -> the variable each one sets.
DAEMON_JSON_PROXY_KEYS = {"http-proxy": "HTTP_PROXY", "https-proxy": "HTTPS_PROXY", "no-proxy": "NO_PROXY"}
DAEMON_JSON_PROXIES = "daemon.json proxies"

DOCKER_UNIT = "/etc/systemd/system/docker.service"
DOCKER_DROPIN_DIR = "/etc/systemd/system/docker.service.d"
CONTAINERD_DROPIN_DIR = "/etc/systemd/system/containerd.service.d"
#: The first line of the drop-in shimshift writes: how a later probe tells it from an admin's own.
OWN_MARK = "# Written by shimshift"


def logical_lines(text: str) -> Iterable[str]:
    """A unit file's lines with backslash continuations joined (systemd's syntax)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def environment_assignments(text: str) -> list[tuple[str, str]]:
    """Every (name, value) of the [Service] section's `Environment=` lines, in order. An empty
    `Environment=` resets what came before it (systemd's rule), given as ("", "")."""
    out: list[tuple[str, str]] = []
    section = ""
    for line in logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        key, eq, value = stripped.partition("=")
        if not eq or section != "Service" or key.strip() != "Environment":
            continue
        value = value.strip()
        if not value:
            out.append(("", ""))
            continue
        try:
            words = shlex.split(value, comments=False, posix=True)
        except ValueError:  # an unbalanced quote: systemd ignores the line too
            continue
        for word in words:
            name, eq2, val = word.partition("=")
            if eq2 and name:
                out.append((name, val.replace("%%", "%")))
    return out


def proxy_environment(units: Mapping[str, str]) -> tuple[Setting, ...]:
    """The proxy variables (either case) set by `units` (path -> text, in systemd's order), each
    assignment as a Setting(value, file, name as written); a reset is a Setting("", file, "")."""
    out: list[Setting] = []
    for path, text in units.items():
        for name, value in environment_assignments(text):
            if not name:
                out.append(Setting("", path, ""))
            elif name.upper() in PROXY_VARIABLES:
                out.append(Setting(value, path, name))
    return tuple(out)


def effective_environment(settings: Iterable[Setting]) -> dict[str, Setting]:
    """Canonical variable -> the Setting that wins: a later one, upper case over lower case in the
    same place (Go reads HTTP_PROXY before http_proxy), nothing after a reset."""
    upper: dict[str, Setting] = {}
    lower: dict[str, Setting] = {}
    for s in settings:
        if not s.key:
            upper.clear()
            lower.clear()
            continue
        (upper if s.key.isupper() else lower)[s.key.upper()] = s
    merged = {**lower, **upper}
    return {name: merged[name] for name in PROXY_VARIABLES if name in merged}


def daemon_json_proxies(daemon: Mapping[str, Any] | None) -> tuple[dict[str, Setting], list[str]]:
    """daemon.json `proxies` as variables, and what in it could not be read (key: why)."""
    proxies = (daemon or {}).get("proxies")
    if proxies is None:
        return {}, []
    if not isinstance(proxies, Mapping):
        return {}, ["not an object"]
    out: dict[str, Setting] = {}
    problems: list[str] = []
    for key, value in proxies.items():
        name = DAEMON_JSON_PROXY_KEYS.get(str(key))
        if name is None:
            problems.append(f"{key}: not a proxy setting Docker knows")
        elif not isinstance(value, str):
            problems.append(f"{key}: not a string")
        elif value:
            out[name] = Setting(value, DAEMON_JSON_PROXIES, str(key))
    return out, problems


def docker_proxy(
    environment: Iterable[Setting], daemon: Mapping[str, Any] | None
) -> tuple[dict[str, Setting], list[str]]:
    """What Docker pulled through: its service's environment, with daemon.json `proxies` winning."""
    from_json, problems = daemon_json_proxies(daemon)
    env = {k: v for k, v in effective_environment(environment).items() if v.value}
    return {name: s for name in PROXY_VARIABLES if (s := from_json.get(name) or env.get(name))}, problems


def is_own_dropin(text: str) -> bool:
    return text.startswith(OWN_MARK)


def _without_port(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def no_proxy_covers(no_proxy: str, host: str) -> bool:
    """Whether a NO_PROXY list sends `host` (a name or an IP address, a port ignored) direct, the way
    Go's HTTP client reads it: `*`, the name itself, a domain suffix (`svc`, `.svc`, `*.svc`), or an
    address range containing the IP address."""
    wanted = _without_port(host)
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(wanted)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if address is not None and address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        bare = _without_port(entry).removeprefix("*").lstrip(".")
        if bare and (wanted == bare or wanted.endswith("." + bare)):
            return True
    return False
