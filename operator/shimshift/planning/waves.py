"""The order of a rollout: waves of at most `maxUnavailable` workers, then control-plane nodes one by one.

`maxUnavailable` as a percentage is of the selected worker nodes, rounded down, at least 1 (the CRD's
description). `maxUnavailablePerZone` caps each zone's share of a wave the same way (a percentage of
that zone's selected workers; the zone is the value of `zoneLabel`, "" for nodes without it); a wave
passes over the nodes of a full zone and takes the next ones of other zones, as the rollout does
(`fill_wave`, shared with `planning.rollout`). Nodes keep name order inside the plan so two runs on the
same cluster agree.

The node the acting operator runs on (`operator_node`: the node of the replica that plans or rolls
out, which the operator knows from its pod's spec.nodeName) is taken out of its wave and migrated
last, as a wave of its own after every other selected node: its drain evicts the operator, and by
then nothing else is left to strand. It still counts in the wave size and zone limits, so the other
waves are the ones a plan without it would have. A node that runs only a standby replica is not
special: a standby does nothing, and losing it strands nothing.

A node that runs the cluster's only API server (`api_nodes`, `planning.apiserver`; selected only with
`spec.rollout.allowApiDowntime`) goes after that, each as a wave of its own: the API is unavailable
during its switch, and no other node may need it then. Pure.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice

from shimshift.model.spec import Rollout
from shimshift.planning.cluster import Node


@dataclass(frozen=True)
class Wave:
    index: int  # 1-based, as a person counts
    nodes: tuple[str, ...]
    control_plane: bool
    #: the node the acting operator runs on, migrated last (a wave of its own)
    runs_operator: bool = False
    #: the node runs the cluster's only API server: the API is down during its switch (last of all)
    api_downtime: bool = False


def wave_size(rollout: Rollout, workers: int) -> int:
    """How many workers one wave holds for `workers` selected worker nodes."""
    return max(1, rollout.max_unavailable.resolve(workers))


def zone_of(rollout: Rollout, node: Node) -> str:
    """The node's zone: its `zoneLabel` value, "" without the label."""
    return node.labels.get(rollout.zone_label, "")


def zone_limits(rollout: Rollout, zones: Iterable[str]) -> dict[str, int] | None:
    """Each zone's limit for the zones of the selected workers (one entry per worker); None: no limit."""
    if rollout.max_unavailable_per_zone is None:
        return None
    limit = rollout.max_unavailable_per_zone
    return {zone: max(1, limit.resolve(count)) for zone, count in Counter(zones).items()}


@dataclass(frozen=True)
class Fill:
    nodes: tuple[str, ...]
    #: zone -> (nodes in this wave, its limit): zones whose next node was passed over while the wave had
    #: room, so that node waits only for its zone
    full_zones: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def fill_wave(
    candidates: Sequence[str], size: int, zones: Mapping[str, str], limits: Mapping[str, int] | None
) -> Fill:
    """At most `size` of `candidates` in their order, at most `limits[zone]` per zone (`zones`: node ->
    zone); the nodes of a full zone are passed over, never the wave held for them."""
    if limits is None:
        return Fill(tuple(candidates[:size]))
    taken: list[str] = []
    count: Counter[str] = Counter()
    full: dict[str, tuple[int, int]] = {}
    for name in candidates:
        if len(taken) >= size:
            break
        zone = zones.get(name, "")
        limit = limits.get(zone, 1)
        if count[zone] >= limit:
            full[zone] = (count[zone], limit)
            continue
        count[zone] += 1
        taken.append(name)
    return Fill(tuple(taken), full)


def plan_waves(
    rollout: Rollout,
    selected: Sequence[Node],
    operator_node: str = "",
    api_nodes: frozenset[str] = frozenset(),
) -> tuple[Wave, ...]:
    """Workers in waves of `wave_size` (and at most each zone's limit), then each selected
    control-plane node as a wave of its own, then `operator_node` (when selected) on its own, then each
    of `api_nodes` selected (nodes running the only API server) on its own."""
    final = [n for n in selected if n.name in api_nodes]
    selected = [n for n in selected if n.name not in api_nodes]
    last = next((n for n in selected if n.name == operator_node), None) if operator_node else None
    workers = sorted(n.name for n in selected if not n.control_plane)
    control = sorted(n.name for n in selected if n.control_plane and n is not last)
    size = wave_size(rollout, len(workers))
    waves: list[Wave] = []
    zone = {n.name: zone_of(rollout, n) for n in selected if not n.control_plane}
    limits = zone_limits(rollout, zone.values())
    if last is not None and not last.control_plane:
        workers.remove(last.name)  # counted in the size and the zone limits above, placed below
    if limits is None:
        for start in range(0, len(workers), size):
            waves.append(Wave(len(waves) + 1, tuple(workers[start : start + size]), control_plane=False))
    else:
        # each zone's queue in name order; a wave is the first `size` in name order of every zone's first
        # `limit` nodes, which is what `fill_wave` takes from all pending workers in name order
        queues: dict[str, deque[str]] = {}
        for name in workers:
            queues.setdefault(zone[name], deque()).append(name)
        while any(queues.values()):
            heads = sorted(n for z, q in queues.items() for n in islice(q, limits[z]))
            wave = heads[:size]
            for name in wave:
                queues[zone[name]].popleft()
            waves.append(Wave(len(waves) + 1, tuple(wave), control_plane=False))
    for name in control:
        waves.append(Wave(len(waves) + 1, (name,), control_plane=True))
    if last is not None:
        waves.append(Wave(len(waves) + 1, (last.name,), last.control_plane, runs_operator=True))
    for node in sorted(final, key=lambda n: n.name):
        waves.append(
            Wave(
                len(waves) + 1,
                (node.name,),
                node.control_plane,
                runs_operator=node.name == operator_node,
                api_downtime=True,
            )
        )
    return tuple(waves)
