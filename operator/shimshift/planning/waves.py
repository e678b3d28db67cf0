"""The order of a rollout: waves of at most `maxUnavailable` workers, then control-plane nodes one by one.

`maxUnavailable` as a percentage is of the selected worker nodes, rounded down, at least 1 (the CRD's
description). Nodes keep name order inside the plan so two runs on the same cluster agree. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shimshift.model.spec import Rollout
from shimshift.planning.cluster import Node


@dataclass(frozen=True)
class Wave:
    index: int  # 1-based, as a person counts
    nodes: tuple[str, ...]
    control_plane: bool


def wave_size(rollout: Rollout, workers: int) -> int:
    """How many workers one wave holds for `workers` selected worker nodes."""
    return max(1, rollout.max_unavailable.resolve(workers))


def plan_waves(rollout: Rollout, selected: Sequence[Node]) -> tuple[Wave, ...]:
    """Workers in waves of `wave_size`, then each selected control-plane node as a wave of its own."""
    workers = sorted(n.name for n in selected if not n.control_plane)
    control = sorted(n.name for n in selected if n.control_plane)
    size = wave_size(rollout, len(workers))
    waves: list[Wave] = []
    for start in range(0, len(workers), size):
        waves.append(Wave(len(waves) + 1, tuple(workers[start : start + size]), control_plane=False))
    for name in control:
        waves.append(Wave(len(waves) + 1, (name,), control_plane=True))
    return tuple(waves)
