"""The kubelet's flags files, and parsing and editing the systemd EnvironmentFiles they are.

Shared by the facts probe's parser (`steps.facts.parse`) and the switch step's edit (`steps.switch.kubelet`),
which stay independent of each other.

Pure. An edit replaces exactly the bytes of one assignment and leaves every other line (comments,
order, other variables) untouched, so a diff shows only what shimshift meant to change. Values follow
systemd's EnvironmentFile rules closely enough for the files kubeadm, Kubespray and distribution
packages write: `NAME=value`, `NAME="value"`, `NAME='value'`, `\\`-newline continuations, `#`/`;`
comments; systemd splits `$NAME` on whitespace, which is how a value becomes kubelet flags.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shimshift.model.facts import KubeletFacts
from shimshift.model.spec import KubeletConfigMethod

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: The kubelet's flags and config files the facts probe reads and the switch step edits.
KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
DEFAULT_FILE = "/etc/default/kubelet"
SYSCONFIG_FILE = "/etc/sysconfig/kubelet"
KUBESPRAY_ENV = "/etc/kubernetes/kubelet.env"
INSTANCE_CONFIG = "/var/lib/kubelet/instance-config.yaml"

#: Flags files in the order kubelet's units read them, with the variable shimshift adds flags to.
FLAGS_FILES: tuple[tuple[str, str, KubeletConfigMethod], ...] = (
    (KUBEADM_FLAGS, "KUBELET_KUBEADM_ARGS", KubeletConfigMethod.KUBEADM_FLAGS),
    (KUBESPRAY_ENV, "KUBELET_ARGS", KubeletConfigMethod.KUBESPRAY_ENV),
    (DEFAULT_FILE, "KUBELET_EXTRA_ARGS", KubeletConfigMethod.DEFAULT_FILE),
    (SYSCONFIG_FILE, "KUBELET_EXTRA_ARGS", KubeletConfigMethod.SYSCONFIG_FILE),
)


#: containerRuntimeEndpoint in KubeletConfiguration exists from 1.27; --container-runtime is gone in 1.27.
CONFIG_ENDPOINT_SINCE = 27
#: --pod-infra-container-image stays accepted (deprecated, for image GC only) until it is removed in 1.35.
POD_INFRA_REMOVED_IN = 35

#: Flags only dockershim understood; kubelet 1.24+ refuses to start with them.
DOCKERSHIM_FLAGS = frozenset(
    {
        "network-plugin",
        "network-plugin-mtu",
        "cni-conf-dir",
        "cni-bin-dir",
        "cni-cache-dir",
        "image-pull-progress-deadline",
        "experimental-dockershim-root-directory",
        "dockershim-root-directory",
        "non-masquerade-cidr",
    }
)


def is_dockershim_flag(name: str, kubelet_minor: int) -> bool:
    """A flag the switch drops from the kubelet's flags files and its units in /etc/systemd/system."""
    if name in DOCKERSHIM_FLAGS or name.startswith("docker"):
        return True
    return name == "pod-infra-container-image" and kubelet_minor >= POD_INFRA_REMOVED_IN


def kubelet_minor(version: str | None) -> int | None:
    """The minor version of a kubelet version string (`v1.23.17` -> 23), None when unknown."""
    if not version:
        return None
    m = re.match(r"v?1\.(\d+)", version.strip())
    return int(m.group(1)) if m else None


def switched_flag(name: str, value: str | None, minor: int, endpoint: str) -> tuple[bool, str | None]:
    """What the switch does with the kubelet flag `--name=value`, in a flags file or a unit file it
    edits alike: (kept, its value after the switch). Dockershim-only flags go; `--container-runtime`
    becomes `remote` before 1.27 and goes from 1.27; `--container-runtime-endpoint` names `endpoint`."""
    if is_dockershim_flag(name, minor):
        return False, None
    if name == "container-runtime":
        return (False, None) if minor >= CONFIG_ENDPOINT_SINCE else (True, "remote")
    if name == "container-runtime-endpoint":
        return True, endpoint
    return True, value


class EnvFileError(ValueError):
    """The file is not an EnvironmentFile shimshift can edit safely; the message says where."""


@dataclass(frozen=True)
class Assignment:
    name: str
    value: str
    start: int  # offset of the first character of the line
    end: int  # offset just after the line's newline (or end of text)


def parse_env_file(text: str) -> tuple[Assignment, ...]:
    """Every assignment in file order; a later assignment of the same name wins (as in systemd)."""
    out: list[Assignment] = []
    i, n = 0, len(text)
    line_no = 1
    while i < n:
        start = i
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] == "\n":
            i += 1
            line_no += 1
            continue
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            i += 1
            line_no += 1
            continue
        if text.startswith("export ", i):
            i += len("export ")
        m = _NAME.match(text, i)
        if not m:
            raise EnvFileError(f"line {line_no}: expected NAME=value, got {text[i : i + 30]!r}")
        name = m.group(0)
        i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise EnvFileError(f"line {line_no}: expected '=' after {name}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        value, i, lines = _value(text, i, line_no, name)
        out.append(Assignment(name, value, start, i))
        line_no += lines
    return tuple(out)


def _value(text: str, i: int, line_no: int, name: str) -> tuple[str, int, int]:
    """Read one value from offset i; return (value, offset after the line, lines consumed)."""
    n = len(text)
    buf: list[str] = []
    lines = 1
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote is None:
            if c == "\n":
                i += 1
                break
            if c in "\"'" and (not buf or buf[-1] in " \t"):
                quote = c
                i += 1
                continue
            if c == "\\" and i + 1 < n:
                if text[i + 1] == "\n":
                    buf.append(" ")
                    i += 2
                    lines += 1
                    continue
                buf.append(text[i + 1])
                i += 2
                continue
            buf.append(c)
            i += 1
        else:
            if c == quote:
                quote = None
                i += 1
                continue
            if c == "\\" and quote == '"' and i + 1 < n:
                nxt = text[i + 1]
                if nxt == "\n":
                    lines += 1
                    i += 2
                    continue
                if nxt in '"\\$`':
                    buf.append(nxt)
                    i += 2
                    continue
            if c == "\n":
                lines += 1
            buf.append(c)
            i += 1
    if quote is not None:
        raise EnvFileError(f"line {line_no}: unterminated {quote} quote in the value of {name}")
    return "".join(buf).rstrip(" \t"), i, lines


def env_value(text: str, name: str) -> str | None:
    value = None
    for a in parse_env_file(text):
        if a.name == name:
            value = a.value
    return value


def split_flags(value: str) -> tuple[tuple[str, str | None], ...]:
    """`--a=1 --b --c=x y` -> (("a","1"), ("b", None), ("c","x y")...): whitespace-split like systemd.

    A token that does not start with `-` is the value of the preceding bare flag (`--root-dir /x`).
    """
    flags: list[tuple[str, str | None]] = []
    for token in value.split():
        if token.startswith("-"):
            name, eq, val = token.lstrip("-").partition("=")
            flags.append((name, val if eq else None))
        elif flags and flags[-1][1] is None:
            flags[-1] = (flags[-1][0], token)
        else:
            flags.append(("", token))  # a positional argument: kept verbatim
    return tuple(flags)


def join_flags(flags: Iterable[tuple[str, str | None]]) -> str:
    parts = []
    for name, val in flags:
        if not name:
            parts.append(val or "")
        elif val is None:
            parts.append(f"--{name}")
        else:
            parts.append(f"--{name}={val}")
    return " ".join(parts)


def quote_value(value: str) -> str:
    """A double-quoted EnvironmentFile value that parses back to `value`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return f'"{escaped}"'


def set_env_value(text: str, name: str, value: str) -> str:
    """`text` with the last assignment of `name` replaced (or appended when absent); nothing else moves."""
    if "\n" in value or "\x00" in value:
        raise EnvFileError(f"the value of {name} must be one line")
    line = f"{name}={quote_value(value)}\n"
    last: Assignment | None = None
    for a in parse_env_file(text):
        if a.name == name:
            last = a
    if last is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + line
    return text[: last.start] + line + text[last.end :]


def flag_names(flags: Sequence[tuple[str, str | None]]) -> tuple[str, ...]:
    return tuple(name for name, _ in flags if name)


#: A flag on a systemd unit's Environment= or ExecStart= line: `--name=value`, `--name value`, `--name`.
_UNIT_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)(?:[= ]([^\s\"'\\$-][^\s\"'\\]*))?")


def unit_flags(text: str) -> list[tuple[str, str]]:
    """The (name, value) flags a systemd unit or drop-in sets literally on its Environment= and
    ExecStart= lines (the kubelet's, cri-dockerd's), comments left out."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#", ";")) or "=" not in stripped:
            continue
        out += [(m.group(1), m.group(2) or "") for m in _UNIT_FLAG.finditer(stripped.partition("=")[2])]
    return out


#: The kubelet's log rotation settings: KubeletConfiguration key -> flag.
LOG_ROTATION_KEYS = {
    "containerLogMaxSize": "container-log-max-size",
    "containerLogMaxFiles": "container-log-max-files",
}


def explicit_log_rotation(kubelet: KubeletFacts) -> dict[str, str]:
    """The log rotation settings the node's kubelet already sets itself (KubeletConfiguration key ->
    where), in its config file, flags files or systemd units: those stay as they are."""
    out: dict[str, str] = {}
    flags = dict(kubelet.flags)
    for key, flag in LOG_ROTATION_KEYS.items():
        if flag in flags:
            out[key] = f"--{flag}={flags[flag]} (the kubelet's flags)"
        elif key in kubelet.config:
            out[key] = f"{key}: {kubelet.config[key]} ({kubelet.config_file or 'KubeletConfiguration'})"
        else:
            for path, text in sorted(kubelet.units.items()):
                units = dict(unit_flags(text))
                if flag in units:
                    out[key] = f"--{flag}={units[flag]} ({path})"
                    break
    return out
