"""Which nodes a NodeMigration touches, and why every other candidate is left alone.

A node is a candidate when it matches `spec.nodeSelector` and/or is named in `spec.nodeNames` (both
given: either is enough, as the CRD documents). A candidate is skipped, with the reason recorded, when
it already runs containerd, carries the completion label, runs a runtime that is not Docker, carries an
admin's hold (`shimshift.io/hold`, a label or an annotation), is a control-plane node and the
rollout excludes them, or runs the cluster's only API server (`planning.apiserver`) and
`spec.rollout.allowApiDowntime` is not set. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shimshift.model import keys
from shimshift.model.spec import ControlPlanePolicy, NodeMigrationSpec
from shimshift.model.text import visible
from shimshift.planning.apiserver import OPT_IN, ApiServers, evidence, sole_api_nodes
from shimshift.planning.cluster import Node


class NodeSkipReason(StrEnum):
    ALREADY_CONTAINERD = "AlreadyContainerd"
    MIGRATED_LABEL = "MigratedLabel"
    NOT_DOCKER = "NotDocker"
    HELD = "Held"
    CONTROL_PLANE_EXCLUDED = "ControlPlaneExcluded"
    SOLE_API_SERVER = "SoleApiServer"
    NOT_FOUND = "NotFound"


_MIGRATED = f"{keys.RUNTIME_LABEL}={keys.RUNTIME_LABEL_VALUE}"
SKIP_MESSAGES = {
    NodeSkipReason.ALREADY_CONTAINERD: "already runs containerd",
    NodeSkipReason.MIGRATED_LABEL: (
        f"labelled {keys.RUNTIME_LABEL}={keys.RUNTIME_LABEL_VALUE} (migrated before)"
    ),
    NodeSkipReason.NOT_DOCKER: "runs neither Docker nor containerd; shimshift only migrates Docker nodes",
    NodeSkipReason.HELD: keys.HOLD_REASON,
    NodeSkipReason.CONTROL_PLANE_EXCLUDED: "control-plane node and spec.rollout.controlPlane is Exclude",
    NodeSkipReason.SOLE_API_SERVER: (
        f"{keys.SOLE_API_SERVER_REASON}: migrating it takes the API down while its kubelet switches; {OPT_IN}"
    ),
    NodeSkipReason.NOT_FOUND: "named in spec.nodeNames but no such node exists",
}


@dataclass(frozen=True)
class Skipped:
    node: str
    reason: NodeSkipReason
    detail: str = ""

    @property
    def message(self) -> str:
        base = SKIP_MESSAGES[self.reason]
        if self.reason == NodeSkipReason.HELD:
            return f"{base}: {self.detail}" if self.detail else base
        return f"{base} ({self.detail})" if self.detail else base


@dataclass(frozen=True)
class Selection:
    selected: tuple[Node, ...]  # in name order
    skipped: tuple[Skipped, ...]


def _is_candidate(spec: NodeMigrationSpec, node: Node) -> bool:
    by_name = node.name in spec.node_names
    by_selector = spec.node_selector is not None and spec.node_selector.matches(node.labels)
    return by_name or by_selector


#: The longest hold reason kept (an annotation's value can be 256 KiB; a status message cannot).
HOLD_REASON_MAX = 200


def hold_of(node: Node) -> str | None:
    """The reason of an admin's hold on `node` ("" when the hold says none), or None when it has none.
    The annotation's value is preferred: an annotation can say more than a label value."""
    values = [m[keys.HOLD_KEY] for m in (node.annotations, node.labels) if keys.HOLD_KEY in m]
    if not values:
        return None
    reason = next((v for v in values if v.strip()), "")
    text = visible(" ".join(reason.split()))  # one line, any control character as a visible escape
    return text if len(text) <= HOLD_REASON_MAX else text[: HOLD_REASON_MAX - 3] + "..."


def _skip_reason(spec: NodeMigrationSpec, node: Node, api: ApiServers | None) -> Skipped | None:
    if node.labels.get(keys.RUNTIME_LABEL) == keys.RUNTIME_LABEL_VALUE:
        return Skipped(node.name, NodeSkipReason.MIGRATED_LABEL)
    if node.runtime == "containerd":
        return Skipped(node.name, NodeSkipReason.ALREADY_CONTAINERD, node.runtime_version)
    if node.runtime not in ("docker", ""):
        return Skipped(node.name, NodeSkipReason.NOT_DOCKER, node.runtime_version)
    held = hold_of(node)
    if held is not None:
        return Skipped(node.name, NodeSkipReason.HELD, held)
    if node.control_plane and spec.rollout.control_plane == ControlPlanePolicy.EXCLUDE:
        return Skipped(node.name, NodeSkipReason.CONTROL_PLANE_EXCLUDED)
    if api is not None and not spec.rollout.allow_api_downtime and node.name in sole_api_nodes(api):
        return Skipped(node.name, NodeSkipReason.SOLE_API_SERVER, evidence(api, node.name))
    return None


def select_nodes(spec: NodeMigrationSpec, nodes: Iterable[Node], api: ApiServers | None = None) -> Selection:
    """The nodes to migrate and the skipped candidates, each with its reason. `api`: where the API
    servers run (None: not known, as offline; no node is then skipped as the only API server)."""
    selected: list[Node] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for node in sorted(nodes, key=lambda n: n.name):
        seen.add(node.name)
        if not _is_candidate(spec, node):
            continue
        reason = _skip_reason(spec, node, api)
        if reason is None:
            selected.append(node)
        else:
            skipped.append(reason)
    skipped.extend(Skipped(name, NodeSkipReason.NOT_FOUND) for name in sorted(set(spec.node_names) - seen))
    return Selection(tuple(selected), tuple(skipped))
