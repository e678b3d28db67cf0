"""Which order a node's steps run in, from `spec.staging`, and which steps a stop may abort.

BeforeCordon (the default) stages everything that needs no drained node while the node still serves:
backup, containerd's config (Docker 20.10 runs on that same containerd, and its containers survive
containerd's restart because their shims hold them), and Docker's images into containerd's `k8s.io`
namespace. Only then is the node cordoned and drained; the re-check imports what the kubelet pulled
while it served, and the switch follows. The node is out of service for drain, re-check, switch and
verify only. AfterCordon is the old order (cordon and drain first), for a profile where staging is not
wanted. Pure: values only.

The staged order rests on containerd.service's `KillMode=process` (`model.killmode`): a node whose unit
would kill the whole control group at that restart (every container Docker runs there) is not staged
but runs in the AfterCordon order (`node_staging`), which its plan says and its record keeps.
"""

from __future__ import annotations

from collections.abc import Collection

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import STEP_ORDER, STEP_ORDER_AFTER_CORDON, StepId
from shimshift.model.killmode import containerd_kill_mode
from shimshift.model.spec import Staging

#: The hook steps (spec.rollout.hooks), each run only when its hook is configured: the pre-hook right
#: after the node lock, before anything changes for the node (its backup, configure or cordon); the
#: post-hook right after verify, before finish uncordons the node.
HOOK_STEPS = frozenset({StepId.PRE_HOOK, StepId.POST_HOOK})

#: Before the switch in the staged order, the node still runs on Docker: a stop (deletion of the
#: NodeMigration) rolls back (undoing the staged config and images); after it, finishing is cheaper.
_ABORTABLE_BEFORE_CORDON = frozenset({*STEP_ORDER[: STEP_ORDER.index(StepId.SWITCH)], StepId.PRE_HOOK})
#: In the old order, a stop before backup has nothing on the node to undo; after it the node is drained
#: and being changed, so it finishes.
_ABORTABLE_AFTER_CORDON = frozenset(
    {*STEP_ORDER_AFTER_CORDON[: STEP_ORDER_AFTER_CORDON.index(StepId.BACKUP)], StepId.PRE_HOOK}
)


def step_order(staging: Staging, hooks: Collection[StepId] = ()) -> tuple[StepId, ...]:
    """The forward steps in the order they run under `staging`, with the hook steps in `hooks`."""
    order = STEP_ORDER if staging == Staging.BEFORE_CORDON else STEP_ORDER_AFTER_CORDON
    if not hooks:
        return order
    out: list[StepId] = []
    for step in order:
        out.append(step)
        if step == StepId.LOCK and StepId.PRE_HOOK in hooks:
            out.append(StepId.PRE_HOOK)
        if step == StepId.VERIFY and StepId.POST_HOOK in hooks:
            out.append(StepId.POST_HOOK)
    return tuple(out)


def abortable_steps(staging: Staging) -> frozenset[StepId]:
    """The steps in which a stop rolls the node back instead of finishing it."""
    return _ABORTABLE_BEFORE_CORDON if staging == Staging.BEFORE_CORDON else _ABORTABLE_AFTER_CORDON


def staged_steps(staging: Staging) -> tuple[StepId, ...]:
    """The steps that change the node while it still serves (none in the old order)."""
    order = step_order(staging)
    return tuple(
        s
        for s in order[: order.index(StepId.CORDON)]
        if s in (StepId.BACKUP, StepId.CONFIGURE, StepId.IMAGES)
    )


def order_reason(staging: Staging) -> str:
    """What the plan report says about the order `staging` runs."""
    if staging == Staging.BEFORE_CORDON:
        return (
            "Backup, containerd's config and the images are staged while the node still serves (Docker's "
            "containers survive containerd's restart: their shims hold them); the node is cordoned only "
            "for drain, re-check (images pulled since staging), switch and verify. A failure while "
            "staging rolls back a node that was never cordoned."
        )
    return (
        "spec.staging AfterCordon: the node is cordoned and drained first and stays out of service while "
        "its containerd is configured and its images move."
    )


def node_staging(staging: Staging, facts: NodeFacts | None) -> tuple[Staging, str]:
    """The order `facts`' node runs in under spec.staging `staging`, and why it is not that ("" when it
    is): a BeforeCordon node whose containerd.service does not stop with KillMode=process (or has no
    unit file the probe found) runs AfterCordon, because restarting its containerd while it serves
    would kill the pods Docker runs there."""
    if staging != Staging.BEFORE_CORDON or facts is None:
        return staging, ""
    if not facts.service_units and not facts.containerd_dropins:
        # facts that hold no unit text at all did not come from the probe (which reads docker.service
        # on every Docker node): a hand-written facts file says nothing of the units
        return staging, ""
    mode = containerd_kill_mode(facts)
    if mode.keeps_containers:
        return staging, ""
    return Staging.AFTER_CORDON, (
        f"{mode.describe()}: restarting containerd while the node serves would kill every container "
        "Docker runs on it (their shims are in containerd's control group), so this node runs in the "
        "AfterCordon order (cordoned and drained before its containerd is configured and its images "
        "move), not spec.staging BeforeCordon"
    )


def record_staging(recorded: str, staging: Staging) -> Staging:
    """The order a node runs in: AfterCordon once its facts step recorded it (`NodeRecord.staging`;
    a later spec.staging never stages that node), else spec.staging (a change of it mid-way applies)."""
    return Staging.AFTER_CORDON if recorded == Staging.AFTER_CORDON.value else staging
