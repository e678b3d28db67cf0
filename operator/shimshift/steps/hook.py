"""The hook steps: spec.rollout.hooks.pre (`prehook`, right after the node lock, before anything changes
for the node) and spec.rollout.hooks.post (`posthook`, after verify, before finish uncordons it). Each
runs only when its hook is configured (`shimshift.model.steporder.step_order`).

A hook is a Job (`shimshift.model.hooks.hook_job_manifest`) created unless it exists (its name is derived
from the NodeMigration, the node and the hook, so a restarted operator adopts the Job it made), watched
until it completes or fails, or until the hook's timeout passes (the Job's activeDeadlineSeconds, and
the operator's own clock from the step's start, `HOOK_TIMEOUT_GRACE` later). Its result is recorded in
the node's record (`NodeRecord.hooks`) first; only on the next pass over the step, once that record is
durable, is the Job deleted and the step done or failed, so a crash between the two never runs a hook
twice. A failed or timed-out pre-hook fails the node before anything changed (the rollback step then has
nothing to undo, only the lock to release); a failed post-hook rolls the node back like a failed
verify. Events HookStarted and HookSucceeded (this module's) and HookFailed (the engine's, for the
step's failure: `HookFailed.event_reason`) say so on the NodeMigration and the Node.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.durations import format_duration
from shimshift.model.hooks import (
    HOOK_TIMEOUT_GRACE,
    HookJob,
    HookKind,
    HookRecord,
    HookResult,
    HookSpec,
    hook_job_manifest,
    hook_job_name,
)
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import EventReason, NodeRecord
from shimshift.model.timestamps import iso
from shimshift.rendering.redact import redact_text
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, StepFailed

STEP_OF = {HookKind.PRE: StepId.PRE_HOOK, HookKind.POST: StepId.POST_HOOK}
_FIELD = {HookKind.PRE: "spec.rollout.hooks.pre", HookKind.POST: "spec.rollout.hooks.post"}


class HookFailed(StepFailed):
    """A node's hook Job failed or timed out: before any change (pre: the node fails, nothing to roll
    back) or after verify (post: the node rolls back)."""

    event_reason = EventReason.HOOK_FAILED


def _verdict(hook: HookSpec, job: HookJob, elapsed: float, kind: HookKind) -> tuple[HookResult, str] | None:
    """How the Job ended, in its own words (None: still running)."""
    if job.complete:
        return HookResult.SUCCEEDED, f"completed in {format_duration(elapsed)}"
    if job.failed:
        result = HookResult.TIMED_OUT if job.reason == "DeadlineExceeded" else HookResult.FAILED
        said = ": ".join(p for p in (job.reason, job.message) if p) or "failed"
        return result, said
    if job.deleting:
        return HookResult.FAILED, "deleted by someone else before it finished"
    if elapsed >= hook.timeout + HOOK_TIMEOUT_GRACE:
        return (
            HookResult.TIMED_OUT,
            f"not finished within {format_duration(hook.timeout)} ({_FIELD[kind]}.timeout)",
        )
    return None


def _run_hook(kind: HookKind, ctx: StepContext, migration: NodeMigration, record: NodeRecord) -> Outcome:
    step, name = STEP_OF[kind], record.name
    hook = migration.spec.rollout.hooks.get(kind)
    if hook is None:  # the spec lost the hook while the step was in flight
        return Outcome(True, record, f"no {kind}-hook ({_FIELD[kind]} is not set)")
    job_name = hook_job_name(migration.name, name, kind)
    ref = f"{hook.namespace}/{job_name}"
    what = f"{kind}-hook Job {ref}"
    recorded = record.hook(kind)
    if recorded is not None and recorded.result is not None:
        # its result is durable: the Job may go, and the step ends as the Job did
        ctx.cluster.delete_hook_job(hook.namespace, job_name)
        if recorded.result == HookResult.SUCCEEDED:
            return Outcome(True, record, f"{what} {recorded.message}")
        verb = "timed out" if recorded.result == HookResult.TIMED_OUT else "failed"
        after = "before any change to the node" if kind == HookKind.PRE else "after verify: rolling back"
        raise HookFailed(f"node {name}: the {what} {verb} ({after}): {recorded.message}")
    elapsed = ctx.elapsed(record, step)
    manifest = hook_job_manifest(hook, kind, migration=migration.name, migration_uid=migration.uid, node=name)
    wait = max(1.0, min(ctx.config.wait_slice, hook.timeout + HOOK_TIMEOUT_GRACE - elapsed))
    began = iso(ctx.clock())  # before the first watch: the Job's start as this record says it
    job, created = ctx.cluster.run_hook_job(manifest, wait=wait)
    now = iso(ctx.clock())
    if created:
        ctx.cluster.event(migration, name, False, EventReason.HOOK_STARTED, f"node {name}: {what} started")
    current = recorded or HookRecord(kind, ref, started_at=began)
    elapsed = ctx.elapsed(record, step)
    verdict = _verdict(hook, job, elapsed, kind)
    if verdict is None:
        running = f"{job.active} pod(s) active" if job.active else "no pod active yet"
        return Outcome(False, record.with_hook(current), f"waiting for the {what}: {running}")
    result, said = verdict
    if result != HookResult.SUCCEEDED:
        pod = ctx.cluster.hook_last_pod(job)
        said = f"{said}; {pod}" if pod else said
    said = " ".join(redact_text(said).split())[:900]
    ctx.observer.hook_finished(str(kind), elapsed, str(result))
    if result == HookResult.SUCCEEDED:
        ctx.cluster.event(migration, name, False, EventReason.HOOK_SUCCEEDED, f"node {name}: {what} {said}")
    # a failure's Warning Event (HookFailed) is the engine's, when the step fails on the next call
    done = replace(current, result=result, message=said, finished_at=now)
    return Outcome(False, record.with_hook(done), f"{what} {result}: {said}")


def _pre(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    return _run_hook(HookKind.PRE, ctx, migration, record)


def _post(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    return _run_hook(HookKind.POST, ctx, migration, record)


PRE_STEP = Step(StepId.PRE_HOOK, _pre)
POST_STEP = Step(StepId.POST_HOOK, _post)
