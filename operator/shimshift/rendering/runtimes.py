"""Docker's runtimes (`model.runtimes`) as the CRI runtimes of the rendered config.toml. Pure.

The templates get each carried runtime's name, runtime_type and options (SystemdCgroup added to a
runc-shim runtime from the node's cgroup driver, as runc's own), and `default_runtime_name` when
Docker's default runtime is carried. The plan's carry-over rows say what went where; a refused
runtime is a finding of its key (`planning.settings`), not a row here.

The binaries are the node's own, which its Docker already ran as root for every container of that
runtime, so carrying `BinaryName` trusts nothing new (an extraConfig setting it needs RuntimeBinary in
spec.containerd.allowUnsafe: `model.unsafe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shimshift.model.facts import NodeFacts
from shimshift.model.runtimes import RUNC_V2, docker_runtimes
from shimshift.rendering.values import TranslatedHost


@dataclass(frozen=True)
class RuntimeRender:
    default: str = "runc"
    #: template values: dicts of name, runtime_type, options (a list of (key, str | bool) pairs)
    runtimes: tuple[dict[str, Any], ...] = ()
    translated: tuple[TranslatedHost, ...] = ()
    notes: tuple[str, ...] = ()


def containerd_runtimes(facts: NodeFacts, systemd_cgroup: bool) -> RuntimeRender:
    found = docker_runtimes(facts.daemon_json)
    if found.malformed:
        return RuntimeRender()
    values: list[dict[str, Any]] = []
    translated: list[TranslatedHost] = []
    for runtime in found.carried:
        options = list(runtime.options)
        if runtime.runtime_type == RUNC_V2:
            options.append(("SystemdCgroup", systemd_cgroup))
        values.append({"name": runtime.name, "runtime_type": runtime.runtime_type, "options": options})
        shown = ", ".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in options)
        translated.append(
            TranslatedHost(
                runtime.name,
                "daemon.json runtimes",
                f"containerd.runtimes.{runtime.name}: runtime_type {runtime.runtime_type}"
                + (f", {shown}" if shown else "")
                + f" (Docker: {runtime.source})",
            )
        )
    default = found.default if found.default in found.carried_names() else "runc"
    notes = list(found.notes)
    if default != "runc":
        translated.append(
            TranslatedHost(
                default,
                "daemon.json default-runtime",
                f"default_runtime_name = {default}: pods without a RuntimeClass run with it",
            )
        )
        notes.append(
            f"Docker's default runtime {default} is containerd's default_runtime_name; runc stays "
            "configured for a RuntimeClass with handler runc"
        )
    return RuntimeRender(default, tuple(values), tuple(translated), tuple(notes))
