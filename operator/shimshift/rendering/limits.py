"""The open-file and locked-memory limits the containers ran with under Docker, kept for containerd: a
systemd drop-in of containerd.service (`containerd.service.d/limits.conf`) when the limits
containerd.service would start containerd with differ from the running containerd's. Pure.

Why the running containerd's and not dockerd's own (`model.unitlimits`): a container inherits its
limits from its shim, which containerd starts, so dockerd's `LimitNOFILE=` reached the containers
only when dockerd had started containerd itself (its parent, which the probe reads); on a docker-ce
node they ran with containerd.service's, which stay. A directive containerd.service does not set is
carried only from a containerd dockerd started (else both get systemd's default). A difference with
dockerd's is said in a note. The drop-in's first line marks it as shimshift's (`model.proxy.OWN_MARK`),
so a later probe tells it from an admin's.
"""

from __future__ import annotations

from dataclasses import dataclass

from shimshift.model.facts import NodeFacts
from shimshift.model.proxy import OWN_MARK, is_own_dropin
from shimshift.model.unitlimits import LIMITS, effective_limits, parse_limit
from shimshift.rendering.values import NodeLayout, RenderedFile, TranslatedHost

SOURCE = "containerd's running limits"


@dataclass(frozen=True)
class LimitsRender:
    file: RenderedFile | None = None
    translated: tuple[TranslatedHost, ...] = ()
    notes: tuple[str, ...] = ()


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and parse_limit(a) == parse_limit(b)


def containerd_limits(facts: NodeFacts, layout: NodeLayout) -> LimitsRender:
    running = facts.containerd_limits
    if not running:  # not probed (older facts, or no running containerd): nothing to keep
        return LimitsRender()
    own = {p: t for p, t in facts.containerd_dropins.items() if not is_own_dropin(t)}
    unit = effective_limits({**facts.service_units, **own}, "containerd.service")
    docker = effective_limits(facts.service_units, "docker.service")
    by_dockerd = facts.containerd_parent == "dockerd"
    carry: dict[str, str] = {}
    notes: list[str] = []
    for directive in LIMITS:
        had = running.get(directive)
        if had is None:
            continue
        setting = unit.get(directive)
        # a unit without the directive starts containerd with systemd's default, as it started the
        # running one, unless dockerd started that one itself
        if (setting is not None or by_dockerd) and not _same(had, setting.value if setting else None):
            carry[directive] = had
        from_docker = docker.get(directive)
        if from_docker is not None and not _same(had, from_docker.value):
            notes.append(
                f"dockerd's {directive}={from_docker.value} ({from_docker.file}) did not reach its "
                f"containers: they ran with containerd's {had}, which starts their shims"
            )
    if not carry:
        return LimitsRender(notes=tuple(notes))
    lines = [
        f"{OWN_MARK}: the limits the node's containers ran with under Docker (the running containerd's),",
        "# which containerd.service alone would not give them. The undo of shimshift's configure step",
        "# removes this file.",
        "[Service]",
        *(f"{d}={v}" for d, v in carry.items()),
    ]
    rendered = RenderedFile(layout.limits_dropin, ("\n".join(lines) + "\n").encode(), 0o644)
    translated = []
    for directive, value in carry.items():
        setting = unit.get(directive)
        instead = f"{setting.value} ({setting.file})" if setting else "systemd's default"
        translated.append(
            TranslatedHost(f"{directive}={value}", SOURCE, f"in {layout.limits_dropin}, instead of {instead}")
        )
    notes.append(
        f"the containers' limits ({', '.join(f'{d}={v}' for d, v in carry.items())}) go to "
        f"{layout.limits_dropin}; systemd reloads its units before containerd restarts"
    )
    return LimitsRender(rendered, tuple(translated), tuple(notes))
