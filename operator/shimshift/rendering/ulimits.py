"""Docker's `default-ulimits` as the rlimits of containerd's CRI runtimes: a base OCI spec file that
each runtime's `base_runtime_spec` names. Pure.

Docker put `default-ulimits` into every container's OCI spec (`process.rlimits`); containerd's CRI
plugin has no such setting, only a base spec per runtime (`base_runtime_spec`), a whole OCI spec its
containers start from. containerd's documentation builds that file from `ctr oci spec`, its own
default spec, which the probe reads from the node (so the base matches that containerd's version);
its `process.rlimits` (containerd's default holds RLIMIT_NOFILE 1024, which the CRI plugin does not
apply without a base spec) become exactly Docker's default-ulimits, so a limit Docker did not set
stays inherited as before. An entry that is not a ulimit Docker knows, or a node whose default spec
was not read, is a carry-over row that says so (a warning of the plan).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.model.facts import NodeFacts
from shimshift.rendering.values import NodeLayout, NotCarried, RenderedFile, TranslatedHost

SOURCE = "daemon.json default-ulimits"
#: The ulimit names Docker's --ulimit knows (go-units ulimit.go) and their rlimit.
RLIMITS = {
    name: f"RLIMIT_{name.upper()}"
    for name in (
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    )
}
_MAX = 2**64 - 1


@dataclass(frozen=True)
class UlimitsRender:
    file: RenderedFile | None = None
    base_spec: str | None = None  # the path each runtime's base_runtime_spec names
    translated: tuple[TranslatedHost, ...] = ()
    not_carried: tuple[NotCarried, ...] = ()


def _limit(name: str, entry: Any) -> tuple[dict[str, Any] | None, str]:
    """One default-ulimits entry as an OCI rlimit, or None and why not."""
    if name not in RLIMITS:
        return None, f"nothing: {name} is not a ulimit Docker knows"
    if not isinstance(entry, Mapping):
        return None, "nothing: not an object with Soft and Hard"
    soft, hard = entry.get("Soft"), entry.get("Hard")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (soft, hard)):
        return None, "nothing: Soft and Hard must be numbers"
    assert isinstance(soft, int) and isinstance(hard, int)
    # Docker's -1 is unlimited; containerd's spec takes the kernel's RLIM_INFINITY as a uint64
    soft_u, hard_u = (_MAX if v == -1 else v for v in (soft, hard))
    if not (0 <= soft_u <= hard_u <= _MAX):
        return None, "nothing: Soft must be between 0 and Hard (Docker refuses it too)"
    return {"type": RLIMITS[name], "hard": hard_u, "soft": soft_u}, ""


def containerd_ulimits(facts: NodeFacts, layout: NodeLayout) -> UlimitsRender:
    raw = (facts.daemon_json or {}).get("default-ulimits")
    if raw in (None, {}):
        return UlimitsRender()
    if not isinstance(raw, Mapping):
        return UlimitsRender(not_carried=(NotCarried(SOURCE, json.dumps(raw), "nothing: not an object"),))
    rlimits: list[dict[str, Any]] = []
    translated: list[TranslatedHost] = []
    lost: list[NotCarried] = []
    for name in sorted(raw, key=str):
        rlimit, why = _limit(str(name), raw[name])
        value = json.dumps(raw[name], sort_keys=True)
        if rlimit is None:
            lost.append(NotCarried(SOURCE, f"{name}: {value}", why))
            continue
        rlimits.append(rlimit)
        translated.append(
            TranslatedHost(
                str(name),
                SOURCE,
                f"{rlimit['type']} soft {rlimit['soft']} hard {rlimit['hard']} in {layout.base_spec} "
                "(base_runtime_spec of every CRI runtime)",
            )
        )
    try:
        spec = json.loads(facts.containerd_default_spec or "")
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or not isinstance(spec.get("process"), dict):
        why = (
            "nothing: the node's containerd default spec (ctr oci spec) was not read, which the base "
            "spec is built from; probe the node again, or set base_runtime_spec in "
            "spec.containerd.extraConfig"
        )
        return UlimitsRender(
            not_carried=tuple(NotCarried(SOURCE, t.host, why) for t in translated) + tuple(lost)
        )
    if not rlimits:
        return UlimitsRender(not_carried=tuple(lost))
    spec["process"]["rlimits"] = rlimits
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    rendered = RenderedFile(layout.base_spec, text.encode(), 0o644)
    return UlimitsRender(rendered, layout.base_spec, tuple(translated), tuple(lost))
