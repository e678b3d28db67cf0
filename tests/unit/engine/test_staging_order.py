"""spec.staging: the node's changes that need no drain run before the cordon (BeforeCordon, the
default) or after the drain (AfterCordon, the old order); a failure while staging rolls back a node
that was never cordoned; a stop while staging undoes what was staged."""

from __future__ import annotations

import pytest

from shimshift.model.cordoned import cordoned_parts
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import STEP_ORDER, STEP_ORDER_AFTER_CORDON, StepId
from shimshift.model.spec import NodeMigrationSpec, RollbackPolicy, Staging
from shimshift.model.status import ImageCounts, NodePhase, NodeRecord, Phase, StepRecord, StepState
from shimshift.model.steporder import abortable_steps, staged_steps, step_order
from shimshift.steps.base import ImagesProgress
from shimshift.steps.machine import next_step
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest, workers


def test_the_default_order_stages_backup_config_and_images_before_the_cordon(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cordons_seen: list[set[str]] = []
    cordon = cluster.cordon

    def cordon_noting_what_was_staged(node: str, owner: str) -> bool:
        cordons_seen.append(set(nodes.state.get(node, set())))
        return cordon(node, owner)

    cluster.cordon = cordon_noting_what_was_staged  # type: ignore[method-assign]
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    w1 = cluster.status().node("w1")
    assert w1 is not None and [s.id for s in w1.steps] == list(STEP_ORDER)
    assert cordons_seen and {"backup", "configure", "images"} <= cordons_seen[0]
    assert "switch" not in cordons_seen[0] and "recheck" not in cordons_seen[0]
    assert nodes.changes["w1:recheck"] == 1 and nodes.changes["w1:images"] == 1
    assert w1.images.transferred == 4  # the re-check's totals: the staged images and the new one
    recheck = next(s for s in w1.steps if s.id == StepId.RECHECK)
    assert recheck.message == "1 image(s) appeared since staging, moved"
    assert not cluster.nodes["w1"].unschedulable


def test_after_cordon_runs_the_old_order_without_a_recheck(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(staging="AfterCordon"))

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    w1 = cluster.status().node("w1")
    assert w1 is not None and [s.id for s in w1.steps] == list(STEP_ORDER_AFTER_CORDON)
    assert nodes.changes["w1:recheck"] == 0


@pytest.mark.parametrize("failing", ["backup", "configure", "images"])
def test_a_failure_while_staging_rolls_back_a_node_that_was_never_cordoned(
    clock: Clock, failing: str
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = failing
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK, w1
    assert cluster.changes["w1:cordon"] == 0  # never out of service
    assert StepId.CORDON not in {s.id for s in w1.steps}
    assert w1.cordoned_seconds is None and w1.was_unschedulable is None
    assert nodes.changes["w1:undo"] == 1 and nodes.changes["w1:switch"] == 0
    assert cluster.nodes["w1"].runtime.startswith("docker://") and not cluster.nodes["w1"].unschedulable


def test_a_pdb_blocking_the_drain_after_staging_rolls_the_staged_changes_back_and_uncordons(
    clock: Clock,
) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "60s"}))

    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED

    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert w1.last_error is not None and "timed out" in w1.last_error.message
    assert nodes.changes["w1:configure"] == 1 and nodes.changes["w1:undo"] == 1
    assert nodes.changes["w1:switch"] == 0
    assert not cluster.nodes["w1"].unschedulable


def test_deleting_the_migration_during_a_staged_drain_undoes_the_staging_and_uncordons(clock: Clock) -> None:
    blocked = FakeNode("w1", pods=["shop/web-0"], blocked_pods={"shop/web-0": "shop/web-pdb"})
    cluster = FakeCluster([blocked], clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(drain={"timeout": "1h"}))
    engine = make_engine(cluster, nodes, clock)
    engine.reconcile(cluster.get("m"))
    assert cordoned(cluster, "w1")

    result = engine.reconcile(cluster.get("m"), stopping=True)

    assert result.in_flight == 0
    assert not cordoned(cluster, "w1")
    assert nodes.changes["w1:configure"] == 1 and nodes.changes["w1:undo"] == 1
    assert cluster.nodes["w1"].runtime.startswith("docker://")


def test_the_cordoned_time_holds_only_drain_recheck_switch_verify_in_the_staged_order(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    images, switch = nodes.images, nodes.switch

    def slow_images(node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        clock.advance(300)  # gigabytes of images stream into containerd
        return images(node, facts, progress)

    def slow_switch(node: str, facts: NodeFacts) -> None:
        clock.advance(20)
        switch(node, facts)

    nodes.images, nodes.switch = slow_images, slow_switch  # type: ignore[method-assign]
    cluster.create(manifest())
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    w1 = cluster.status().node("w1")
    assert w1 is not None
    parts = cordoned_parts(w1)
    assert parts.get(StepId.SWITCH) == 20 and StepId.IMAGES not in parts, parts
    assert not {StepId.BACKUP, StepId.CONFIGURE, StepId.IMAGES} & set(parts), parts
    assert w1.cordoned_seconds is not None and w1.cordoned_seconds < 300, w1.cordoned_seconds


def cordoned(cluster: FakeCluster, name: str) -> bool:
    """Read afresh (mypy would carry an assert's narrowing of the attribute across a reconcile)."""
    return cluster.nodes[name].unschedulable


def _done(*steps: StepId) -> NodeRecord:
    record = NodeRecord("w1", phase=NodePhase.IN_PROGRESS)
    for step in steps:
        record = record.with_step(StepRecord(step, StepState.DONE, "2026-01-01T00:00:00Z"))
    return record


@pytest.mark.parametrize("staging", list(Staging))
def test_each_order_runs_every_step_once_in_its_order(staging: Staging) -> None:
    record, seen = _done(), []
    while True:
        nxt = next_step(record, RollbackPolicy.AUTOMATIC, staging=staging)
        if nxt.step is None:
            break
        seen.append(nxt.step)
        record = record.with_step(StepRecord(nxt.step, StepState.DONE, "2026-01-01T00:00:00Z"))
    assert tuple(seen) == step_order(staging)


def test_a_staging_change_mid_way_still_runs_every_step_that_was_not_done() -> None:
    # cordoned and drained under AfterCordon, then the spec switched to BeforeCordon: nothing skipped
    record = _done(StepId.FACTS, StepId.LOCK, StepId.CORDON, StepId.DRAIN)
    seen = []
    while (nxt := next_step(record, RollbackPolicy.AUTOMATIC, staging=Staging.BEFORE_CORDON)).step:
        seen.append(nxt.step)
        record = record.with_step(StepRecord(nxt.step, StepState.DONE, "2026-01-01T00:00:00Z"))
    staged_then_the_rest = [StepId.BACKUP, StepId.CONFIGURE, StepId.IMAGES, StepId.RECHECK]
    staged_then_the_rest += [StepId.SWITCH, StepId.VERIFY, StepId.FINISH]
    assert seen == staged_then_the_rest


def test_a_stop_aborts_everything_before_the_switch_when_staged_and_before_backup_otherwise() -> None:
    assert StepId.IMAGES in abortable_steps(Staging.BEFORE_CORDON)
    assert StepId.SWITCH not in abortable_steps(Staging.BEFORE_CORDON)
    assert StepId.BACKUP not in abortable_steps(Staging.AFTER_CORDON)
    assert abortable_steps(Staging.AFTER_CORDON) == {
        StepId.FACTS,
        StepId.LOCK,
        StepId.PRE_HOOK,  # runs only with spec.rollout.hooks.pre, before anything changes for the node
        StepId.CORDON,
        StepId.DRAIN,
    }
    assert staged_steps(Staging.BEFORE_CORDON) == (StepId.BACKUP, StepId.CONFIGURE, StepId.IMAGES)
    assert staged_steps(Staging.AFTER_CORDON) == ()


def test_staging_defaults_to_before_cordon_and_reads_after_cordon() -> None:
    base = {"mode": "Migrate", "nodeNames": ["w1"]}
    assert NodeMigrationSpec.from_raw(base).staging == Staging.BEFORE_CORDON
    assert NodeMigrationSpec.from_raw({**base, "staging": "AfterCordon"}).staging == Staging.AFTER_CORDON
