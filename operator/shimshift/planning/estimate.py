"""How long a rollout takes, estimated from the plan with stated assumptions (never a promise).

A node's time is the sum of its steps: fixed costs for the probe, lock, cordon, backup, configure,
switch, verify and finish; the drain is the longest termination grace of its evicted pods plus time for
replacements to be scheduled (longer when a PDB lets only one go at a time); the images move at an
assumed rate. A wave lasts as long as its slowest node, plus `pauseBetweenNodes`. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shimshift.planning.drain import NodeDrain, PodAction
from shimshift.planning.waves import Wave
from shimshift.steps.images.fit import ImageSummary

#: Seconds, for steps whose time does not depend on the node's workload.
FIXED_STEPS: Mapping[str, int] = {
    "facts": 10,
    "lock+cordon": 5,
    "backup": 5,
    "configure (write config, restart containerd, CRI check)": 20,
    "switch (stop kubelet and Docker, edit, start kubelet)": 30,
    "verify (node Ready on containerd, DaemonSet pods back)": 60,
    "finish (uncordon, label, unlock)": 5,
}
RESCHEDULE_SECONDS = 30  # an evicted pod's replacement scheduled and Ready elsewhere
TRANSFER_BYTES_PER_SECOND = 100 * 1024**2  # docker save | ctr import on local disk

ASSUMPTIONS = (
    f"fixed steps take {sum(FIXED_STEPS.values())}s per node ("
    + ", ".join(f"{k} {v}s" for k, v in FIXED_STEPS.items())
    + ")",
    "a drain takes the longest termination grace of the evicted pods (or spec.drain.gracePeriodSeconds) "
    f"plus {RESCHEDULE_SECONDS}s, once more for each extra pod a PDB lets go only one at a time",
    f"images move at {TRANSFER_BYTES_PER_SECOND // 1024**2} MiB/s (unpacked size)",
    "a PDB that blocks now or always is not waited for here: such a node waits up to spec.drain.timeout",
    "a node that does not come back Ready on containerd waits up to spec.verify.timeout, then rolls back",
    "a wave lasts as long as its slowest node, plus spec.rollout.pauseBetweenNodes",
)


@dataclass(frozen=True)
class NodeEstimate:
    seconds: int
    drain_seconds: int
    images_seconds: int


def estimate_node(drain: NodeDrain, images: ImageSummary | None, allowed: Mapping[str, int]) -> NodeEstimate:
    """`allowed` is each PDB's disruptionsAllowed now (by key)."""
    evicts = any(p.action == PodAction.EVICT for p in drain.pods)
    rounds = 1 + max(_extra_rounds(drain, allowed), default=0)
    drain_s = (drain.max_grace_seconds + RESCHEDULE_SECONDS) * rounds if evicts else 0
    images_s = images.bytes // TRANSFER_BYTES_PER_SECOND if images is not None else 0
    return NodeEstimate(sum(FIXED_STEPS.values()) + drain_s + images_s, drain_s, images_s)


def _extra_rounds(drain: NodeDrain, allowed: Mapping[str, int]) -> list[int]:
    """Extra eviction rounds forced by PDBs that allow fewer disruptions than their pods on the node."""
    counts: dict[str, int] = {}
    for p in drain.pods:
        if p.uses_budget and len(p.pdbs) == 1:
            counts[p.pdbs[0]] = counts.get(p.pdbs[0], 0) + 1
    return [math.ceil(n / allowed[k]) - 1 for k, n in counts.items() if allowed.get(k, 0) > 0]


def estimate_waves(
    waves: Sequence[Wave], per_node: Mapping[str, NodeEstimate], pause_seconds: float
) -> tuple[tuple[int, ...], int]:
    """Seconds per wave and for the whole rollout."""
    lengths = tuple(max((per_node[n].seconds for n in w.nodes if n in per_node), default=0) for w in waves)
    pauses = int(pause_seconds) * max(0, len(waves) - 1)
    return lengths, sum(lengths) + pauses
