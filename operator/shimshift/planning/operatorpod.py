"""Where the operator's replacement pod can run once the drain of its own node evicts it. Pure.

The node that runs the operator goes last (`planning.waves`); its drain evicts the operator's pod, and
the Deployment's replacement must be scheduled on another node to finish the rollout (with one
replica; with a peer Running elsewhere, the peer finishes it). A replacement that no other node can
take would stay Pending, and the operator's node cordoned and drained with nobody to finish it: so the
rollout does not start that node while that is so (`stranded`, `planning.rollout.decide`), and the
plan says so (`OPERATOR_REPLACEMENT_UNSCHEDULABLE`) with what to change. The scheduler's rules
read here are the ones that can rule a node out for good: the pod's `nodeSelector`, its required node
affinity (`requiredDuringSchedulingIgnoredDuringExecution`), the nodes' NoSchedule and NoExecute
taints against its tolerations, and nodes cordoned by someone else or not Ready. Resources, ports and
pod (anti-)affinity are not: they change as pods come and go.

The operator's pods are the ones with the chart's label `app.kubernetes.io/name: shimshift`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shimshift.model.spec import LabelRequirement, LabelSelector
from shimshift.planning.cluster import Node, Pod, PodPhase, Taint, Toleration
from shimshift.planning.findings import Finding, Level

OPERATOR_REPLACEMENT_UNSCHEDULABLE = "OperatorReplacementUnschedulable"
#: the chart's label on the operator's pods (charts/shimshift/templates/_helpers.tpl, selectorLabels)
OPERATOR_NAME_LABEL = "app.kubernetes.io/name"
OPERATOR_NAME = "shimshift"
#: the taint effects that keep a pod off a node (PreferNoSchedule only discourages it)
_KEEP_OFF = frozenset({"NoSchedule", "NoExecute"})


def tolerates(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    """Whether a pod with `tolerations` tolerates `taint` (the scheduler's rule: an empty key with
    Exists tolerates everything; an empty effect matches every effect)."""
    for t in tolerations:
        if t.effect and t.effect != taint.effect:
            continue
        if t.operator == "Exists":
            if not t.key or t.key == taint.key:
                return True
        elif t.key == taint.key and t.value == taint.value:
            return True
    return False


def _matches(requirement: LabelRequirement, node: Node) -> bool:
    """A node affinity requirement: a label selector's operators, and Gt/Lt on an integer label."""
    if requirement.key == "metadata.name":  # from matchFields
        return (node.name in requirement.values) == (requirement.operator == "In")
    if requirement.operator in ("In", "NotIn", "Exists", "DoesNotExist"):
        return LabelSelector(match_expressions=(requirement,)).matches(node.labels)
    value = node.labels.get(requirement.key)
    if requirement.operator in ("Gt", "Lt") and value is not None and requirement.values:
        try:
            have, want = int(value), int(requirement.values[0])
        except ValueError:
            return False
        return have > want if requirement.operator == "Gt" else have < want
    return False


def why_not(pod: Pod, node: Node) -> str:
    """Why `pod` cannot be scheduled on `node` ("" when it can, as far as these rules go)."""
    if node.unschedulable:
        return "cordoned"
    if not node.ready:
        return "not Ready"
    for key, value in pod.node_selector.items():
        if node.labels.get(key) != value:
            return f"nodeSelector {key}={value}"
    if pod.affinity_terms and not any(all(_matches(r, node) for r in term) for term in pod.affinity_terms):
        return "required node affinity"
    for taint in node.taints:
        if taint.effect in _KEEP_OFF and not tolerates(pod.tolerations, taint):
            return f"taint {taint.key}{'=' + taint.value if taint.value else ''}:{taint.effect}"
    return ""


def operator_pods(pods: Iterable[Pod]) -> list[Pod]:
    return [
        p
        for p in pods
        if p.labels.get(OPERATOR_NAME_LABEL) == OPERATOR_NAME
        and not p.deleting
        and p.phase in (PodPhase.RUNNING, PodPhase.PENDING)
    ]


@dataclass(frozen=True)
class Placement:
    """Where the operator's pod on `own` could go instead: the nodes that could run it, the peers
    Ready elsewhere, and why each other node cannot."""

    pod: Pod
    candidates: tuple[str, ...]
    peers: tuple[str, ...]
    refused: Mapping[str, str]


def placement(pods: Sequence[Pod], nodes: Sequence[Node], own: str) -> Placement | None:
    """Where the replacement of the operator's pod on node `own` could run (None: no operator pod
    there, as when the plan is made offline)."""
    ours = operator_pods(pods)
    mine = next((p for p in ours if p.node == own), None)
    if mine is None:
        return None
    peers = tuple(sorted(f"{p.namespace}/{p.name}" for p in ours if p.node != own and p.node and p.ready))
    candidates: list[str] = []
    refused: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.name):
        if node.name == own:
            continue
        why = why_not(mine, node)
        if why:
            refused[node.name] = why
        else:
            candidates.append(node.name)
    return Placement(mine, tuple(candidates), peers, refused)


#: what to do when the operator's node cannot be started (the finding's advice, the rollout's message)
STRANDED_ADVICE = (
    "widen the chart's nodeSelector or tolerations (helm upgrade), or run two replicas "
    "(replicaCount: 2) on different nodes, or leave this node out of the NodeMigration and migrate it "
    "with an operator running elsewhere"
)


def stranded(pods: Sequence[Pod], nodes: Sequence[Node], own: str) -> tuple[str, str] | None:
    """(the operator's pod, why no other node can run it) when the drain of `own` would leave its
    replacement nowhere to go and no peer is Ready elsewhere; None when it would not, or when the
    operator's pod is not known."""
    where = placement(pods, nodes, own)
    if where is None or where.candidates or where.peers:
        return None
    reasons = sorted(where.refused.items())
    shown = "; ".join(f"{n}: {why}" for n, why in reasons[:5])
    more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
    return f"{where.pod.namespace}/{where.pod.name}", f"{shown or 'there is no other node'}{more}"


def stranded_message(own: str, found: tuple[str, str]) -> str:
    """The rollout's message while it does not start the operator's node `own` (`stranded`)."""
    pod, why = found
    return (
        f"{own} runs the operator and is not started: the drain would evict its pod {pod}, and no other "
        f"node could run the replacement ({why}), so {own} would stay cordoned; {STRANDED_ADVICE}"
    )


def operator_pod_findings(pods: Sequence[Pod], nodes: Sequence[Node], own: str) -> list[Finding]:
    """The warning for the operator's node when nothing could take over after its drain."""
    found = stranded(pods, nodes, own)
    if found is None:
        return []
    pod, why = found
    return [
        Finding(
            OPERATOR_REPLACEMENT_UNSCHEDULABLE,
            Level.WARNING,
            f"the drain of this node would evict the operator's pod {pod}, and no other node could run its "
            f"replacement ({why}): the rollout does not start this node while that is so (it stays "
            "uncordoned and on Docker, the rollout Progressing with reason OperatorCannotMove); it starts "
            "it once a node can take the pod or a peer replica runs elsewhere",
            STRANDED_ADVICE,
            own,
            pod,
        )
    ]
