"""The verify step: on the node, containerd's CRI plugin is ok and the kubelet runs (playbook
`playbooks/verify.yaml`, script `verify.sh`, which names the CRI conditions that are false); through the
API, the Node reports Ready with a `containerd://` runtime and the DaemonSet pods it had (recorded by the
drain) are Running and Ready again. Each is waited for, bounded by the NodeMigration's
`spec.verify.timeout` from the step's recorded start (the node's check also by its own minute per run; once
it passed after the switch, the SSH node port does not run it again while the step waits on the API). A
node that is not back in time fails with its own reason (`node_reason`: its Ready condition's reason and
message, e.g. kubelet's "container runtime network not ready: NetworkReady=false
reason:NetworkPluginNotReady ..."). Once all that holds, a canary (`canary`): a pod pinned to the node,
tolerating its cordon, runs `echo <token>` under containerd; it must exit 0 with the token in its log
within `spec.verify.canary.timeout`, or the node is not uncordoned but rolled back, with what kubelet
said of the pod (ImagePullBackOff, CreateContainerError, its exit code, its Events) as the reason. The
canary pod is deleted once judged (and by the rollback and finish steps, whatever a crash left).
Changes nothing on the node: a failure here rolls the node back through the undo of the steps before it.
"""

from __future__ import annotations

from shimshift.model.canary import canary_token
from shimshift.model.durations import format_duration
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import EventReason, NodeRecord
from shimshift.model.timestamps import parse_iso
from shimshift.rendering.redact import redact_text
from shimshift.steps.base import (
    NodePort,
    NodeView,
    Outcome,
    Step,
    StepContext,
    StepFailed,
    playbook_halves,
    started_at,
)
from shimshift.steps.execute import TaskFailed
from shimshift.steps.nodeplan import NodeRunPlan
from shimshift.steps.verify.canary import CanaryResult, judge, settled

#: Events about a failed canary pod quoted in the failure's reason (the latest Warnings, `quoted_events`).
CANARY_EVENTS_QUOTED = 3


def quoted_events(events: tuple[str, ...]) -> list[str]:
    """The latest `CANARY_EVENTS_QUOTED` of the Warning Events (kubelet's failures: a failed pull's
    own error among them, which its Normal BackOff and Pulling Events that follow would push out), or
    of all Events when none is a Warning."""
    warnings = [e for e in events if e.startswith("Warning ")]
    return (warnings or list(events))[-CANARY_EVENTS_QUOTED:]


PLAYBOOK = "verify"
RUNTIME = "containerd"

#: Characters of what the node says of itself in a verify message. The whole message then stays within
#: a step record's 1000 and an Event's 1024 characters (both cut what is longer) for node names of
#: usual length, and the reason starts within the 300 the NodeMigration's failedNodes entry keeps
#: (`model.status.FAILED_MESSAGE_MAX`).
NODE_REASON_MAX = 400

#: verify.sh's exits for "not ready yet", waited for within spec.verify.timeout like the Node's Ready:
#: 1 the CRI (a false RuntimeReady/NetworkReady in `crictl info`, or ctr's CRI plugin not ok), 2 the
#: kubelet not running. Any other failure (crictl images, the connection) is not waited for.
NOT_READY_EXITS = (1, 2)


def _variables(plan: NodeRunPlan) -> dict[str, str]:
    plan.checked()
    return {"wait_seconds": str(plan.wait_seconds)}


_run_on_node, _ = playbook_halves(PLAYBOOK, _variables)


def node_reason(node: NodeView | None, runtime: str = RUNTIME) -> str:
    """Why `node` does not count as back on `runtime`, in its own words: its Ready condition's status,
    reason and message, and its containerRuntimeVersion when that is not `runtime`; "" when it is
    Ready on `runtime`. One line, passwords in URLs redacted, at most `NODE_REASON_MAX` characters."""
    if node is None:
        return "the Node object no longer exists"
    parts = []
    if node.ready_status != "True":
        why = ": ".join(p for p in (node.ready_reason, node.ready_message) if p.strip())
        if node.ready_status:
            parts.append(f"Ready={node.ready_status}" + (f" ({why})" if why else ""))
        else:
            parts.append("the node reports no Ready condition")
    if not node.runtime_version.startswith(f"{runtime}://"):
        parts.append(f"containerRuntimeVersion {node.runtime_version or '(none)'}, not {runtime}://")
    # redacted before it is cut: a cut could leave a password its pattern no longer matches
    text = " ".join(redact_text("; ".join(parts)).split())
    return _bounded(text)


def _bounded(text: str) -> str:
    return text if len(text) <= NODE_REASON_MAX else text[: NODE_REASON_MAX - 3] + "..."


def _not_ready_on_node(e: TaskFailed) -> str:
    """What verify.sh said when its check failed for a reason worth waiting out ("" for any other
    failure): e.g. "crictl info: the CRI runtime is not ready: NetworkReady=false reason:..."."""
    if e.playbook != PLAYBOOK or e.result.exit_status not in NOT_READY_EXITS:
        return ""
    return _bounded(" ".join(redact_text(e.result.stderr_tail()).split())) or f"exit {e.result.exit_status}"


def _with_reason(message: str, reason: str) -> str:
    return f"{message}: {reason}" if reason else message


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, config = record.name, ctx.config
    limit = migration.spec.verify.timeout
    within = f"within {format_duration(limit)} (spec.verify.timeout) after the switch"
    try:
        port.verify(name, ctx.facts_of(migration, port, name))
    except TaskFailed as e:
        said = _not_ready_on_node(e)
        if not said:
            raise
        if ctx.elapsed(record, StepId.VERIFY) >= limit:
            raise StepFailed(
                f"node {name}: containerd or the kubelet not ready on the node {within}: {said}"
            ) from e
        return Outcome(False, record, f"waiting for containerd and the kubelet on the node: {said}")
    elapsed = ctx.elapsed(record, StepId.VERIFY)
    wait = max(1.0, min(config.wait_slice, limit - elapsed))
    out_of_time = elapsed + wait >= limit
    if not ctx.cluster.wait_node(name, runtime=RUNTIME, timeout=wait):
        reason = node_reason(ctx.cluster.read_node(name))
        if out_of_time:
            raise StepFailed(
                _with_reason(f"node {name} did not report Ready with a {RUNTIME}:// runtime {within}", reason)
            )
        return Outcome(
            False, record, _with_reason(f"waiting for the kubelet to report Ready on {RUNTIME}", reason)
        )
    # the DaemonSet pods on the node (CNI, proxy, log shippers...) must run again on containerd
    # kubelet's words for a waiting container may quote an image reference: redacted
    missing = [
        redact_text(m)
        for m in ctx.cluster.wait_daemonset_pods(
            name, expected=record.daemonsets, timeout=wait, runtime=RUNTIME
        )
    ]
    if not missing:
        return _canary(
            ctx, migration, port, record, "Ready on containerd, its DaemonSet pods Running and Ready"
        )
    if out_of_time:
        reason = node_reason(ctx.cluster.read_node(name))
        raise StepFailed(
            _with_reason(
                f"node {name}: DaemonSet pods not Running and Ready on {RUNTIME} {within}: "
                + "; ".join(missing),
                reason,
            )
        )
    return Outcome(False, record, f"waiting for DaemonSet pods to be Running and Ready: {'; '.join(missing)}")


class CanaryFailed(StepFailed):
    """The canary pod did not run on the switched node: the node rolls back, not uncordoned."""

    event_reason = EventReason.CANARY_FAILED


def _canary(
    ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord, back: str
) -> Outcome:
    """The canary, once the node is back (`back` says how): passed, still running, or CanaryFailed."""
    name, canary = record.name, migration.spec.verify.canary
    if not canary.enabled:
        return Outcome(True, record, f"{back}; no canary (spec.verify.canary.enabled: false)")
    image = ctx.canary_image(migration, ctx.facts_of(migration, port, name))
    if image is None:
        why = (
            f"node {name}: no canary ran before uncordoning: no image for it (none named in "
            "spec.verify.canary.image, and no busybox or alpine image among the node's migrated images)"
        )
        # once per NodeMigration (per operator process), on it: a fleet without an image would otherwise
        # post one Warning per node; the node's own record says it too
        if ctx.first_time(migration, "canary-skipped"):
            fleet = (
                "no canary ran before uncordoning: no image for it (none named in spec.verify.canary.image, "
                f"and no busybox or alpine image among the migrated images of node {name}, the first such "
                "node; the others' records say so too)"
            )
            ctx.cluster.event(migration, None, True, EventReason.CANARY_SKIPPED, fleet)
        ctx.observer.canary_finished(0.0, CanaryResult.SKIPPED)
        return Outcome(True, record, f"{back}; {why}")
    token = canary_token(migration.uid or migration.name, name, started_at(record, StepId.VERIFY))
    pod = ctx.cluster.run_canary(
        name,
        image=image.ref,
        token=token,
        migration=migration.name,
        wait=max(1.0, min(ctx.config.wait_slice, canary.timeout)),
        settled=settled,
    )
    created = parse_iso(pod.created_at)
    # a pod whose creation time cannot be read is timed from the verify step's start: never unbounded
    since = (ctx.clock() - created).total_seconds() if created else ctx.elapsed(record, StepId.VERIFY)
    elapsed = max(0.0, since)
    log = ctx.cluster.read_canary_log(name) if pod.phase == "Succeeded" else None
    verdict = judge(pod, log=log, elapsed=elapsed, timeout=canary.timeout)
    what = f"canary pod {pod.name} (image {image.ref}, {image.source})"
    if verdict.result is None:
        return Outcome(False, record, f"{back}; waiting for the {what}: {verdict.reason}")
    events = () if verdict.result is CanaryResult.PASSED else ctx.cluster.read_canary_events(name)
    ctx.cluster.delete_canary(name)  # before the step's Done: a crash before it runs the step again
    ctx.observer.canary_finished(elapsed, verdict.result)
    if verdict.result is CanaryResult.PASSED:
        return Outcome(True, record, f"{back}; {what} {verdict.reason}")
    said = "; ".join(quoted_events(events))
    raise CanaryFailed(
        f"node {name}: the {what} did not run on containerd, so the node is not uncordoned: "
        + verdict.reason
        + (f"; its Events: {_bounded(' '.join(redact_text(said).split()))}" if said else "")
    )


STEP = Step(StepId.VERIFY, _run, node_run=_run_on_node, scripts=("verify",))
