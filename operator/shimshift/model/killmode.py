"""Whether restarting containerd keeps Docker's running containers: containerd.service's effective
`KillMode=`. Pure.

Docker 20.10 runs its containers on the node's containerd; each container's runc shim is a child of
containerd, in containerd.service's control group. `systemctl restart containerd` stops the unit by
its KillMode: `process` (as containerd's own unit and docker-ce's containerd.io ship it) kills only
containerd itself, so the shims and their containers live on and the new containerd reconnects to
them; `control-group` (systemd's default when the unit sets none) and `mixed` kill every process in
the control group, that is every container Docker runs on the node: every pod of a node that still
serves. The staged order (`spec.staging: BeforeCordon`) restarts containerd before the cordon, so it is
safe only on a node whose containerd.service says `process` (`model.steporder.node_staging`).

The effective value is systemd's: the unit file (the first of /etc, /run, /usr/local/lib, /lib,
/usr/lib), then its drop-ins in file-name order (a name in an earlier directory hiding the same name in
a later one), the last assignment winning, an empty `KillMode=` resetting it to the default
(`model.unitlimits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shimshift.model.facts import NodeFacts
from shimshift.model.unitlimits import effective_settings, unit_order

CONTAINERD_UNIT = "containerd.service"
#: The one KillMode under which a restart of containerd leaves Docker's containers running.
SAFE = "process"
#: What systemd uses when a unit sets no KillMode (or resets it with an empty assignment).
DEFAULT = "control-group"


@dataclass(frozen=True)
class KillMode:
    """The KillMode a unit stops with. `value` is None when the node has no unit file for it (nothing
    can be said); `source` is the file that set it last ("" when it is systemd's default)."""

    value: str | None
    source: str = ""
    unit_file: str = ""  # the unit's own file ("" when there is none)

    @property
    def keeps_containers(self) -> bool:
        """A restart of the unit kills only its main process (the shims and their containers stay)."""
        return self.value == SAFE

    def describe(self) -> str:
        """`KillMode=control-group (set in /etc/...)`, as a plan or a record says it."""
        if self.value is None:
            return f"no {CONTAINERD_UNIT} unit file found, so its KillMode is unknown"
        where = f"set in {self.source}" if self.source else f"systemd's default: {self.unit_file} sets none"
        return f"{CONTAINERD_UNIT} has KillMode={self.value} ({where})"


def kill_mode(units: Mapping[str, str], unit: str = CONTAINERD_UNIT) -> KillMode:
    """`unit`'s effective KillMode from the unit texts by path (`units`: its file and drop-ins)."""
    order = unit_order(units, unit)
    main = order[0] if order and not order[0].endswith(".conf") else ""
    if not main:
        return KillMode(None)
    setting = effective_settings(units, unit, ("KillMode",)).get("KillMode")
    if setting is None:
        return KillMode(DEFAULT, "", main)
    return KillMode(setting.value, setting.file, main)


def containerd_kill_mode(facts: NodeFacts) -> KillMode:
    """The KillMode of the node's containerd.service, from the unit files and drop-ins its probe read."""
    return kill_mode({**facts.service_units, **facts.containerd_dropins})
