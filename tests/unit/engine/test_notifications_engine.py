"""The engine hands over each notification once, at the decision point of its Event, and a notifier
that fails (or raises) never changes the rollout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shimshift.engine import Engine
from shimshift.model.status import NodePhase, Phase
from shimshift.planning.notifications import Notification
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

NOTIFY = {"urlSecretRef": {"name": "hooks"}}


class Recorder:
    def __init__(self, *, give_up: bool = False, raises: bool = False) -> None:
        self.sent: list[Notification] = []
        self.give_up = give_up
        self.raises = raises

    def send(self, notification: Notification, failed: Callable[[str], None]) -> None:
        if self.raises:
            raise RuntimeError("the notifier is broken")
        self.sent.append(notification)
        if self.give_up:
            failed(f"notification {notification.event} to json://hooks.example.com failed after 3 attempt(s)")

    def events(self) -> list[tuple[str, str]]:
        return [(str(n.event), n.node) for n in self.sent]


def engine(cluster: FakeCluster, nodes: FakeNodes, clock: Clock, notifier: Any) -> Engine:
    return Engine(
        cluster,
        lambda migration: nodes,
        config=EngineConfig(drain_pass_wait=5.0),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
        notifier=notifier,
    )


def settle(make: Callable[[], Engine], cluster: FakeCluster, clock: Clock, *, restart: bool = False) -> Phase:
    """Reconcile until settled; with `restart`, a new engine (an operator restart) for every pass."""
    current = make()
    for _ in range(200):
        if restart:
            current = make()
        result = current.reconcile(cluster.get("m"))
        if result.in_flight == 0 and result.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED):
            return result.phase
        clock.advance(max(result.delay, 1.0))
    raise AssertionError(f"rollout did not settle: {cluster.status('m')}")


def test_a_rollout_sends_started_and_finished_once_each_with_the_counts(clock: Clock) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(rollout={"maxUnavailable": 1}, notifications=NOTIFY))
    recorder = Recorder()

    assert settle(lambda: engine(cluster, nodes, clock, recorder), cluster, clock) == Phase.SUCCEEDED

    assert recorder.events() == [("Started", ""), ("Finished", "")]
    started, finished = recorder.sent
    assert started.body.startswith("NodeMigration m started: 3 node(s)")
    assert "3 succeeded, 0 failed, 0 rolled back, 0 skipped of 3 node(s)" in finished.body
    assert finished.url_secret.name == "hooks" and finished.url_secret.key == "urls"


def test_a_failed_node_and_the_pause_it_causes_are_sent_once_and_a_restart_resends_nothing(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(3), clock)
    nodes = FakeNodes(cluster)
    nodes.fail["w1"] = "configure"
    cluster.create(manifest(rollout={"maxUnavailable": 1, "maxFailures": 0}, notifications=NOTIFY))
    recorder = Recorder()

    def make() -> Engine:
        return engine(cluster, nodes, clock, recorder)

    assert settle(make, cluster, clock, restart=True) == Phase.PAUSED
    for _ in range(3):  # passes of restarted operators over the paused rollout send nothing more
        make().reconcile(cluster.get("m"))

    assert recorder.events() == [("Started", ""), ("NodeFailed", "w1"), ("Paused", "")]
    failed = recorder.sent[1]
    assert "node w1 was rolled back to Docker" in failed.body and "containerd did not start" in failed.body
    assert recorder.sent[2].body.startswith(
        "NodeMigration m paused: 1 node(s) failed (w1), more than spec.rollout.maxFailures=0"
    )

    cluster.set_spec("m", rollout={"maxUnavailable": 1, "maxFailures": 1})
    assert settle(make, cluster, clock, restart=True) == Phase.FAILED
    assert recorder.events()[3:] == [("Finished", "")]  # resumed, not started again
    assert "2 succeeded, 0 failed, 1 rolled back" in recorder.sent[3].body


def test_only_the_chosen_events_are_sent(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(notifications={**NOTIFY, "events": ["Finished"]}))
    recorder = Recorder()
    settle(lambda: engine(cluster, nodes, clock, recorder), cluster, clock)
    assert recorder.events() == [("Finished", "")]


def test_without_spec_notifications_nothing_is_sent(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest())
    recorder = Recorder()
    settle(lambda: engine(cluster, nodes, clock, recorder), cluster, clock)
    assert recorder.sent == []


def test_a_notification_given_up_is_a_warning_event_and_the_rollout_still_succeeds(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(notifications=NOTIFY))
    phase = settle(lambda: engine(cluster, nodes, clock, Recorder(give_up=True)), cluster, clock)
    assert phase == Phase.SUCCEEDED
    warnings = [e for e in cluster.events if e[3] == "NotificationFailed"]
    assert [(w[1], w[2]) for w in warnings] == [(None, True), (None, True)]  # Started, Finished
    assert all("json://hooks.example.com failed" in w[4] for w in warnings)


def test_a_notifier_that_raises_does_not_stop_the_rollout(clock: Clock) -> None:
    cluster = FakeCluster(workers(2), clock)
    nodes = FakeNodes(cluster)
    cluster.create(manifest(notifications=NOTIFY))
    phase = settle(lambda: engine(cluster, nodes, clock, Recorder(raises=True)), cluster, clock)
    assert phase == Phase.SUCCEEDED
    assert all(cluster.status().node(n).phase == NodePhase.SUCCEEDED for n in ("w1", "w2"))  # type: ignore[union-attr]
