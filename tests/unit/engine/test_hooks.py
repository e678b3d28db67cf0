"""spec.rollout.hooks: per-node pre- and post-hooks as Jobs. The pre-hook runs before anything changes
for the node, a failed one fails the node unchanged and never cordoned; the post-hook runs after verify
and before the uncordon, a failed one rolls the node back; a restart adopts the Job it made, never
running a hook twice; the Job is deleted only once its result is in the node's record."""

from __future__ import annotations

from typing import Any

import pytest

from shimshift.model.errors import Problem
from shimshift.model.hooks import (
    HOOK_JOB_TTL,
    HookKind,
    HookResult,
    Hooks,
    hook_job_manifest,
    hook_job_name,
    last_pod_said,
    parse_job,
)
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.migration import parse_nodemigration
from shimshift.model.semantics import check_spec
from shimshift.model.spec import RollbackPolicy, Staging
from shimshift.model.status import NodePhase, NodeRecord, Phase, StepRecord, StepState
from shimshift.model.steporder import step_order
from shimshift.planning.hooks import hook_findings
from shimshift.steps.machine import next_step
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import CRD, Clock, Crash, FakeCluster, FakeNodes, manifest, workers

NODE_CHANGES = ("backup", "configure", "images", "switch")


def hook(namespace: str = "ops", **extra: Any) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "template": {
            "spec": {
                "containers": [
                    {"name": "hook", "image": "busybox:1.36", "args": ["check", "{node}", "--strict"]}
                ]
            }
        },
        **extra,
    }


def hooked(pre: bool = True, post: bool = True, **spec: Any) -> dict[str, Any]:
    hooks = {**({"pre": hook(timeout="5m")} if pre else {}), **({"post": hook()} if post else {})}
    return manifest(rollout={"hooks": hooks}, **spec)


# ---- the spec -------------------------------------------------------------------------------------


def test_the_hooks_parse_with_the_crds_defaults_and_place_their_steps_around_the_node_changes() -> None:
    m = parse_nodemigration(hooked(), CRD)
    hooks = m.spec.rollout.hooks
    assert hooks.configured == (HookKind.PRE, HookKind.POST)
    assert hooks.pre is not None and hooks.pre.timeout == 300.0 and hooks.pre.backoff_limit == 0
    assert hooks.post is not None and hooks.post.timeout == 600.0  # the default: 10m
    assert hooks.pre.images == ("busybox:1.36",)
    order = step_order(Staging.BEFORE_CORDON, hooks.steps)
    assert order[: order.index(StepId.BACKUP)] == (StepId.FACTS, StepId.LOCK, StepId.PRE_HOOK)
    assert order[order.index(StepId.VERIFY) :] == (StepId.VERIFY, StepId.POST_HOOK, StepId.FINISH)
    old = step_order(Staging.AFTER_CORDON, hooks.steps)
    assert old.index(StepId.PRE_HOOK) < old.index(StepId.CORDON)
    assert step_order(Staging.BEFORE_CORDON, Hooks().steps) == STEP_ORDER  # none: the order as it was


@pytest.mark.parametrize(
    ("broken", "path", "words"),
    [
        (
            {"template": {"spec": {"containers": []}}},
            "spec.rollout.hooks.pre.template.spec.containers",
            "at least one container",
        ),
        (
            {"template": {"spec": {}}},
            "spec.rollout.hooks.pre.template.spec.containers",
            "at least one container",
        ),
        (
            {"template": {"spec": {"containers": [{"name": "hook"}]}}},
            "spec.rollout.hooks.pre.template.spec.containers[0].image",
            "needs an image",
        ),
        ({"timeout": "0s"}, "spec.rollout.hooks.pre.timeout", "longer than 0s"),
        ({"timeout": "7h"}, "spec.rollout.hooks.pre.timeout", "at most 6h"),
        (
            {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "h", "image": "x"}]}}},
            "spec.rollout.hooks.pre.template.spec.restartPolicy",
            '"Never"',
        ),
    ],
)
def test_a_bad_hook_is_a_problem_naming_its_field(broken: dict[str, Any], path: str, words: str) -> None:
    spec = hooked(post=False)["spec"]
    spec["rollout"]["hooks"]["pre"].update(broken)
    problems = [p for p in check_spec(spec) if p.path.startswith("spec.rollout.hooks")]
    assert len(problems) == 1, problems
    assert problems[0].path == path and words in problems[0].message, problems[0]
    assert isinstance(problems[0], Problem)


def test_a_hook_without_a_namespace_or_template_is_refused_by_the_schema() -> None:
    body = hooked(post=False)
    del body["spec"]["rollout"]["hooks"]["pre"]["namespace"]
    with pytest.raises(Exception, match="namespace"):
        parse_nodemigration(body, CRD)


def test_the_job_is_named_for_the_migration_node_and_hook_and_stays_a_valid_name_when_long() -> None:
    assert hook_job_name("workers", "w1", HookKind.PRE) == "workers-w1-pre"
    long_node = "node-" + "x" * 80 + ".example.com"
    name = hook_job_name("workers", long_node, HookKind.POST)
    assert (
        len(name) <= 63
        and name.endswith("-post")
        and name == hook_job_name("workers", long_node, HookKind.POST)
    )
    assert name != hook_job_name("workers", long_node + "2", HookKind.POST)


def test_the_job_carries_the_node_in_its_env_and_args_is_bounded_and_owned_by_the_migration() -> None:
    m = parse_nodemigration(hooked(), CRD)
    assert m.spec.rollout.hooks.pre is not None
    job = hook_job_manifest(
        m.spec.rollout.hooks.pre, HookKind.PRE, migration="m", migration_uid="uid-m", node="w1"
    )
    assert job["metadata"]["name"] == "m-w1-pre" and job["metadata"]["namespace"] == "ops"
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "shimshift.io/v1alpha1", "kind": "NodeMigration", "name": "m", "uid": "uid-m"}
    ]
    assert job["metadata"]["labels"]["shimshift.io/hook"] == "pre"
    assert job["metadata"]["labels"]["shimshift.io/node"] == "w1"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 300 and spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == HOOK_JOB_TTL
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["check", "w1", "--strict"]
    assert {"name": "SHIMSHIFT_NODE", "value": "w1"} in container["env"]
    assert {"name": "SHIMSHIFT_MIGRATION", "value": "m"} in container["env"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # the spec's own template is not changed by rendering it
    assert m.spec.rollout.hooks.pre.template["spec"]["containers"][0]["args"][1] == "{node}"


def test_a_failed_job_and_its_last_pod_read_in_their_own_words() -> None:
    job = parse_job(
        {
            "metadata": {"name": "m-w1-pre", "namespace": "ops", "uid": "u"},
            "status": {
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"}
                ]
            },
        }
    )
    assert job.failed and job.finished and job.reason == "BackoffLimitExceeded"
    said = last_pod_said(
        [
            {"metadata": {"name": "old", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {}},
            {
                "metadata": {"name": "new", "creationTimestamp": "2026-01-01T00:01:00Z"},
                "status": {
                    "phase": "Failed",
                    "containerStatuses": [
                        {
                            "name": "hook",
                            "state": {
                                "terminated": {"exitCode": 3, "reason": "Error", "message": "db busy\n"}
                            },
                        }
                    ],
                },
            },
        ]
    )
    assert said == "pod new: container hook exited 3 (Error: db busy)"


def test_the_plan_names_each_nodes_hook_jobs() -> None:
    m = parse_nodemigration(hooked(), CRD)
    found = hook_findings(m.spec, "m", "w1")
    assert [f.subject for f in found] == ["ops/m-w1-pre", "ops/m-w1-post"]
    assert "before anything changes for w1" in found[0].message and "busybox:1.36" in found[0].message
    assert "rolls back to Docker" in found[1].message


def test_a_failed_post_hook_rolls_back_like_a_failed_verify_and_a_failed_pre_hook_has_nothing_to_undo() -> (
    None
):
    steps = (StepRecord(StepId.FACTS, StepState.DONE), StepRecord(StepId.LOCK, StepState.DONE))
    pre = NodeRecord("w1", NodePhase.IN_PROGRESS, StepId.PRE_HOOK, StepState.FAILED, steps=steps)
    assert next_step(pre, RollbackPolicy.MANUAL, hooks={StepId.PRE_HOOK}).step == StepId.ROLLBACK
    post = NodeRecord("w1", NodePhase.IN_PROGRESS, StepId.POST_HOOK, StepState.FAILED)
    assert next_step(post, RollbackPolicy.AUTOMATIC, hooks={StepId.POST_HOOK}).step == StepId.ROLLBACK
    assert next_step(post, RollbackPolicy.MANUAL, hooks={StepId.POST_HOOK}).step is None  # as verify


# ---- the engine -----------------------------------------------------------------------------------


def test_passing_hooks_run_once_each_in_order_and_are_recorded_and_deleted(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    seen_at_pre: list[set[str]] = []
    run = cluster.run_hook_job

    def noting(manifest: dict[str, Any], *, wait: float) -> Any:
        kind = manifest["metadata"]["labels"]["shimshift.io/hook"]
        seen_at_pre.append(
            {
                kind,
                *nodes.state.get("w1", set()),
                *(["cordoned"] if cluster.nodes["w1"].unschedulable else []),
            }
        )
        return run(manifest, wait=wait)

    cluster.run_hook_job = noting  # type: ignore[method-assign]
    cluster.create(hooked())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.SUCCEEDED
    assert [s.id for s in w1.steps] == list(
        step_order(Staging.BEFORE_CORDON, {StepId.PRE_HOOK, StepId.POST_HOOK})
    )
    assert cluster.jobs_created == ["ops/m-w1-pre", "ops/m-w1-post"]
    assert not cluster.jobs and cluster.jobs_deleted == {"ops/m-w1-pre": 1, "ops/m-w1-post": 1}
    pre = next(s for s in seen_at_pre if "pre" in s)
    assert not {"backup", "configure", "images", "cordoned"} & pre  # nothing changed yet
    post = next(s for s in seen_at_pre if "post" in s)
    assert {"switch", "verify", "cordoned"} <= post  # verified, not yet uncordoned
    assert [(h.hook, h.result) for h in w1.hooks] == [
        (HookKind.PRE, HookResult.SUCCEEDED),
        (HookKind.POST, HookResult.SUCCEEDED),
    ]
    assert all(h.job.startswith("ops/m-w1-") and h.started_at and h.finished_at for h in w1.hooks)
    reasons = [e[3] for e in cluster.events]
    assert reasons.count("HookStarted") == 2 and reasons.count("HookSucceeded") == 2


def test_a_failed_pre_hook_fails_the_node_unchanged_never_cordoned_and_the_rollout_pauses(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.hook_behaviour["w1-pre"] = "fail"
    cluster.create(hooked(post=False))

    result = run_to_end(cluster, nodes, clock)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.FAILED and w1.last_error is not None
    assert w1.last_error.step == "prehook"
    message = w1.last_error.message
    assert "pre-hook Job ops/m-w1-pre failed (before any change to the node)" in message
    assert "BackoffLimitExceeded" in message and "container hook exited 3 (Error: precheck failed)" in message
    assert not {f"w1:{op}" for op in NODE_CHANGES} & {k for k, v in nodes.changes.items() if v}
    assert nodes.changes["w1:undo"] == 0
    assert cluster.changes["w1:cordon"] == 0 and not cluster.nodes["w1"].unschedulable
    assert cluster.nodes["w1"].annotations.get("shimshift.io/locked-by") is None  # the lock released
    assert result.phase == Phase.PAUSED  # maxFailures 0: the rollout stops after one failed node
    assert cluster.status().node("w2") is None or cluster.status().node("w2").phase == NodePhase.PENDING  # type: ignore[union-attr]
    assert "ops/m-w1-pre" not in cluster.jobs
    failed = [e for e in cluster.events if e[3] == "HookFailed"]
    assert failed and failed[0][2] is True  # a Warning


def test_a_failed_post_hook_rolls_the_node_back_to_docker(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.hook_behaviour["w1-post"] = "fail"
    cluster.create(hooked())

    run_to_end(cluster, nodes, clock)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK and w1.last_error is not None
    assert w1.last_error.step == "posthook" and "after verify: rolling back" in w1.last_error.message
    assert nodes.changes["w1:undo"] == 1 and not cluster.nodes["w1"].unschedulable
    assert "finish" not in {s.id for s in w1.steps}


def test_a_hook_that_never_finishes_times_out_on_the_operators_clock(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.hook_behaviour["w1-pre"] = "hang"
    cluster.create(hooked(post=False))

    run_to_end(cluster, nodes, clock, passes=400)

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.FAILED and w1.last_error is not None
    assert "timed out" in w1.last_error.message and "spec.rollout.hooks.pre.timeout" in w1.last_error.message
    assert w1.hooks[0].result == HookResult.TIMED_OUT
    assert cluster.changes["w1:cordon"] == 0


def _writes_in_a_clean_run() -> int:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    cluster.create(hooked())
    before = cluster.writes
    run_to_end(cluster, FakeNodes(cluster), clock)
    return cluster.writes - before


@pytest.mark.parametrize("crash_at", range(1, _writes_in_a_clean_run() + 1))
def test_a_crash_at_any_write_adopts_the_job_and_never_runs_a_hook_twice(crash_at: int) -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.create(hooked())
    cluster.crash_on_write = cluster.writes + crash_at
    engine = make_engine(cluster, nodes, clock)
    try:
        for _ in range(100):
            result = engine.reconcile(cluster.get("m"))
            if result.phase == Phase.SUCCEEDED and result.in_flight == 0:
                break
            clock.advance(1)
    except Crash:
        pass
    else:
        raise AssertionError(f"no crash at write {crash_at}")
    cluster.crash_on_write = None
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.jobs_created == ["ops/m-w1-pre", "ops/m-w1-post"]
    assert not cluster.jobs
    w1 = cluster.status().node("w1")
    assert w1 is not None and [h.result for h in w1.hooks] == [HookResult.SUCCEEDED, HookResult.SUCCEEDED]
