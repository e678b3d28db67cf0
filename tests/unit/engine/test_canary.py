"""The verify step's canary: a node is uncordoned only after a pod ran on it under containerd.

Driven through the engine with the fake ports (`FakeCluster.canary_behaviour` says how the node's
canary pod behaves); the pure verdict and the image choice are tested directly.
"""

from __future__ import annotations

import pytest

from shimshift.model.canary import CanaryPod, canary_manifest, canary_token
from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.migration import parse_nodemigration
from shimshift.model.status import EventReason, NodePhase, Phase
from shimshift.steps.images.canary import canary_image
from shimshift.steps.verify import quoted_events
from shimshift.steps.verify.canary import CanaryResult, judge, settled
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import CRD, Clock, FakeCluster, FakeNode, FakeNodes, manifest

BUSYBOX = "registry.example.com/tools/busybox:1.36"


def setup(clock: Clock, behaviour: str | None = None, **canary: object) -> tuple[FakeCluster, FakeNodes]:
    cluster = FakeCluster([FakeNode("w1")], clock)
    if behaviour:
        cluster.canary_behaviour["w1"] = behaviour
    cluster.create(manifest(verify={"canary": {"image": BUSYBOX, **canary}}))
    return cluster, FakeNodes(cluster)


def reasons(cluster: FakeCluster) -> list[str]:
    return [reason for (_, _, _, reason, _) in cluster.events]


def test_a_canary_that_echoes_its_token_lets_the_node_finish_and_is_deleted(clock: Clock) -> None:
    cluster, nodes = setup(clock)
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.SUCCEEDED
    assert cluster.canary_images == [("w1", BUSYBOX)]
    assert cluster.canaries == {} and cluster.canary_deletes["w1"] == 1
    assert not cluster.nodes["w1"].unschedulable


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        ("pull", "container waiting: ImagePullBackOff (Back-off pulling image"),
        ("exit", "phase Failed, container exited 1 (Error)"),
        ("silent", "exited 0 but its log does not hold the token it echoes: (empty)"),
        ("hang", "not finished within 30s (spec.verify.canary.timeout): phase Running"),
    ],
)
def test_a_canary_that_cannot_run_rolls_the_node_back_uncordoned_with_its_reason(
    clock: Clock, behaviour: str, said: str
) -> None:
    cluster, nodes = setup(clock, behaviour, timeout="30s")
    assert run_to_end(cluster, nodes, clock).phase == Phase.PAUSED
    w1 = cluster.status().node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert w1.last_error is not None and w1.last_error.step == "verify"
    assert "so the node is not uncordoned" in w1.last_error.message and said in w1.last_error.message
    assert cluster.nodes["w1"].runtime.startswith("docker://")
    assert not cluster.nodes["w1"].unschedulable  # rolled back, and as schedulable as before
    assert cluster.canaries == {}  # deleted on the failure (and again by the rollback, a no-op)
    assert EventReason.CANARY_FAILED in reasons(cluster)
    assert EventReason.NODE_ROLLED_BACK in reasons(cluster)
    paused = next(c for c in cluster.status().conditions if c.type == "Paused")
    assert paused.status == "True" and said in paused.message  # the reason, in the condition too
    if behaviour == "pull":
        assert "its Events: Warning Failed: Failed to pull image: not found" in w1.last_error.message


def test_a_disabled_canary_runs_no_pod(clock: Clock) -> None:
    cluster, nodes = setup(clock, "pull", enabled=False)
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.canary_images == []


def test_without_an_image_the_canary_is_skipped_with_a_warning_and_the_node_finishes(clock: Clock) -> None:
    cluster = FakeCluster([FakeNode("w1")], clock)
    cluster.create(manifest())
    nodes = FakeNodes(cluster)
    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
    assert cluster.canary_images == []
    skipped = [(w, m) for (_, _, w, r, m) in cluster.events if r == EventReason.CANARY_SKIPPED]
    assert len(skipped) == 1 and skipped[0][0] and "no canary ran before uncordoning" in skipped[0][1]


def test_the_node_s_smallest_migrated_busybox_or_alpine_image_is_chosen() -> None:
    spec = parse_nodemigration(manifest(images={"exclude": ["*alpine:3.18*"]}), CRD).spec
    facts = NodeFacts(
        node="w1",
        images=(
            DockerImage("sha256:" + "a" * 64, ("alpine:3.18",), size=3_000_000),
            DockerImage("sha256:" + "b" * 64, ("busybox:1.36",), size=4_000_000),
            DockerImage("sha256:" + "c" * 64, ("alpine:3.19",), size=3_500_000),
            DockerImage("sha256:" + "d" * 64, ("registry.k8s.io/pause:3.9",), size=700_000),
            DockerImage("sha256:" + "e" * 64, ("nginx:1.25",), size=1_000),
        ),
    )
    chosen = canary_image(spec, facts)
    assert chosen is not None and chosen.ref == "docker.io/library/alpine:3.19"  # 3.18 is excluded
    assert canary_image(spec, NodeFacts(node="w1", images=facts.images[3:])) is None  # no echo in pause
    assert canary_image(spec, None) is None
    named = parse_nodemigration(manifest(verify={"canary": {"image": BUSYBOX}}), CRD).spec
    by_name = canary_image(named, None)
    assert by_name is not None and by_name.ref == BUSYBOX and by_name == canary_image(named, facts)


def test_an_image_that_is_not_migrated_is_not_chosen() -> None:
    spec = parse_nodemigration(manifest(images={"migrate": False}), CRD).spec
    image = DockerImage("sha256:" + "b" * 64, ("busybox:1.36",), size=4_000_000)
    assert canary_image(spec, NodeFacts(node="w1", images=(image,))) is None
    there = NodeFacts(node="w1", images=(image,), containerd_images=(image.id,))
    assert canary_image(spec, there) is not None  # already in containerd k8s.io


def pod(**kw: object) -> CanaryPod:
    return CanaryPod("shimshift-canary-x", "tok-1", "2026-01-01T00:00:00Z", **kw)  # type: ignore[arg-type]


def test_the_verdict_passes_only_a_pod_that_succeeded_with_the_token_in_its_log() -> None:
    assert judge(pod(phase="Succeeded"), log="tok-1\n", elapsed=3, timeout=60).result is CanaryResult.PASSED
    assert judge(pod(phase="Succeeded"), log="tok-2\n", elapsed=3, timeout=60).result is CanaryResult.FAILED
    assert judge(pod(phase="Running"), log=None, elapsed=3, timeout=60).result is None
    unreadable = judge(pod(phase="Succeeded", exit_code=0), log=None, elapsed=3, timeout=60)
    assert unreadable.result is CanaryResult.PASSED and "its token was not checked" in unreadable.reason
    assert judge(pod(phase="Succeeded"), log="", elapsed=3, timeout=60).result is CanaryResult.FAILED
    assert judge(pod(phase="Running"), log=None, elapsed=60, timeout=60).result is CanaryResult.TIMEOUT
    assert judge(pod(waiting_reason="ErrImagePull"), log=None, elapsed=3, timeout=60).result is None
    for stuck in ("ImagePullBackOff", "CreateContainerError", "ErrImageNeverPull", "RunContainerError"):
        verdict = judge(pod(waiting_reason=stuck, waiting_message="m"), log=None, elapsed=1, timeout=60)
        assert verdict.result is CanaryResult.FAILED and f"container waiting: {stuck} (m)" in verdict.reason
        assert settled(pod(waiting_reason=stuck))
    assert not settled(pod(phase="Running")) and settled(pod(phase="Failed"))


def test_the_canary_pod_is_pinned_tolerates_the_cordon_and_echoes_a_token_per_attempt() -> None:
    body = canary_manifest("w1", "shimshift-system", BUSYBOX, "tok", "m")
    spec = body["spec"]
    assert spec["nodeName"] == "w1" and spec["restartPolicy"] == "Never"
    assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["containers"][0]["command"] == ["echo", "tok"]
    assert body["metadata"]["labels"]["shimshift.io/canary"] == "true"
    assert canary_token("uid", "w1", "t1") != canary_token("uid", "w1", "t2")


def test_a_failed_pulls_own_error_is_quoted_before_the_normal_events_that_follow_it() -> None:
    """kubelet's order for an image no registry serves: the pull's error, then its BackOff and retries."""
    events = (
        'Normal Pulling: Pulling image "registry.invalid/b:1"',
        'Warning Failed: Failed to pull image "registry.invalid/b:1": dial tcp: lookup registry.invalid: no such host',
        "Warning Failed: Error: ErrImagePull",
        'Normal BackOff: Back-off pulling image "registry.invalid/b:1"',
        "Warning Failed: Error: ImagePullBackOff",
    )
    assert quoted_events(events) == [events[1], events[2], events[4]]
    assert quoted_events(events[:1]) == [events[0]]  # no Warning: the latest Events, whatever they are
