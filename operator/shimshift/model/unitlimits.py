"""The open-file and locked-memory limits a node's containers ran with under Docker, and the ones
containerd would start with. Pure.

Docker 20.10 puts no rlimits in its containers' OCI specs unless daemon.json `default-ulimits` (or
`docker run --ulimit`) sets some, and neither does containerd's CRI plugin (both seen on the
testbed's real daemons): a container inherits them from its runc shim, which containerd starts. So
what the pods had is the limits of the *running* containerd (the probe reads /proc/<pid>/limits): on a
docker-ce node its containerd.service's, on a node where dockerd started containerd itself
(no `--containerd`), dockerd's. After the migration containerd is restarted by systemd with
containerd.service's effective `LimitNOFILE=` / `LimitMEMLOCK=` (the unit, then its drop-ins in file
name order, the last assignment winning). Where the two differ, a drop-in keeps what the pods had.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from shimshift.model.facts import Setting
from shimshift.model.proxy import logical_lines

#: The systemd directives carried, and their line in /proc/<pid>/limits.
LIMITS = {"LimitNOFILE": "Max open files", "LimitMEMLOCK": "Max locked memory"}
INFINITY = "infinity"
_SIZE = re.compile(r"^(\d+)\s*([KMGTPE]?)(i?B)?$", re.IGNORECASE)
#: Where systemd reads unit files and their drop-ins, first wins (/usr/local/lib: containerd's release
#: tarballs install their containerd.service there)
_UNIT_FILES = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)


@dataclass(frozen=True)
class Limit:
    """A soft and a hard limit; None is unlimited (systemd's `infinity`, /proc's `unlimited`)."""

    soft: int | None
    hard: int | None

    def systemd(self) -> str:
        """The value as a `Limit*=` line takes it."""

        def one(v: int | None) -> str:
            return INFINITY if v is None else str(v)

        return one(self.soft) if self.soft == self.hard else f"{one(self.soft)}:{one(self.hard)}"


def _number(text: str) -> int | bool | None:
    """One side of a limit: an int, None for infinity, False when it is not one."""
    text = text.strip()
    if text.lower() in (INFINITY, "unlimited"):
        return None
    m = _SIZE.match(text)
    if not m:
        return False
    power = " KMGTPE".index(m.group(2).upper() or " ")
    size: int = int(m.group(1)) * 1024**power
    return size


def parse_limit(value: str) -> Limit | None:
    """`LimitNOFILE=` text (`infinity`, `1048576`, `1024:524288`, `64K`) as a Limit; None if unreadable."""
    soft_text, colon, hard_text = value.partition(":")
    soft = _number(soft_text)
    hard = _number(hard_text) if colon else soft
    if soft is False or hard is False or isinstance(soft, bool) or isinstance(hard, bool):
        return None
    return Limit(soft, hard)


def unit_order(paths: Iterable[str], unit: str) -> list[str]:
    """`unit`'s file (the first of /etc, /run, /usr/local/lib, /lib, /usr/lib) and then its drop-ins by
    file name (a name in an earlier directory hiding the same name in a later one), as systemd reads
    them."""
    paths = list(paths)
    main = next((f"{d}/{unit}" for d in _UNIT_FILES if f"{d}/{unit}" in paths), None)
    dropins: dict[str, str] = {}
    for d in reversed(_UNIT_FILES):  # earlier directories win: written last
        prefix = f"{d}/{unit}.d/"
        for p in paths:
            if p.startswith(prefix) and p.endswith(".conf") and "/" not in p[len(prefix) :]:
                dropins[p[len(prefix) :]] = p
    return ([main] if main else []) + [dropins[name] for name in sorted(dropins)]


def effective_settings(
    units: Mapping[str, str], unit: str, directives: Collection[str], section: str = "Service"
) -> dict[str, Setting]:
    """The `directives` of `[section]` that `unit` runs with, read as systemd reads them (the unit
    file, then its drop-ins, `unit_order`): per directive its value and the file that set it last. An
    empty assignment resets it to systemd's default (absent here)."""
    out: dict[str, Setting] = {}
    for path in unit_order(units, unit):
        current = ""
        for line in logical_lines(units[path]):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                current = stripped[1:-1].strip()
                continue
            key, eq, value = stripped.partition("=")
            if current != section or not eq or key.strip() not in directives:
                continue
            if value.strip():
                out[key.strip()] = Setting(value.strip(), path, key.strip())
            else:
                out.pop(key.strip(), None)
    return out


def effective_limits(units: Mapping[str, str], unit: str) -> dict[str, Setting]:
    """The `Limit*=` of LIMITS that `unit` starts with: value and the file that set it last. An empty
    assignment resets to systemd's default (absent here)."""
    return effective_settings(units, unit, LIMITS)


def proc_limits(text: str) -> dict[str, str]:
    """/proc/<pid>/limits as `Limit*=` values (`Max open files  1048576  1048576  files`).

    A line `nr_open N` in `text` is the kernel's `fs.nr_open`: open files at exactly that are written
    `infinity`, since that is what systemd gives a unit with `LimitNOFILE=infinity` (the kernel refuses
    more; systemd sets the closest it can). Without it a containerd.service with `infinity` would look
    changed on every node whose containerd it started."""
    nr_open = next(
        (
            int(w[1])
            for line in text.splitlines()
            if len(w := line.split()) == 2 and w[0] == "nr_open" and w[1].isdigit()
        ),
        None,
    )
    out: dict[str, str] = {}
    for line in text.splitlines():
        for directive, label in LIMITS.items():
            if line.startswith(label):
                fields = line[len(label) :].split()
                if len(fields) >= 2:
                    limit = parse_limit(f"{fields[0]}:{fields[1]}")
                    if limit is not None and directive == "LimitNOFILE" and nr_open is not None:
                        limit = Limit(
                            None if limit.soft == nr_open else limit.soft,
                            None if limit.hard == nr_open else limit.hard,
                        )
                    if limit is not None:
                        out[directive] = limit.systemd()
    return out
