"""Notifications from the operator process (`shimshift run`, simulated node steps) to a loopback
webhook through apprise's json:// scheme: each event once, across a SIGKILL, and a dead target that
costs the rollout nothing but a Warning Event that names no token."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.kubeapi import KubeApi
from testbed.ports import free_port

from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import Operator, eventually, migration, node, secret, status_of
from tests.integration.notify.webhook import Webhook

pytestmark = pytest.mark.e2e

TOKEN = "XoXb-s3cr3t-t0ken"
NOTIFY = {"urlSecretRef": {"name": "hooks"}}


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_a_rollout_notifies_started_node_failed_and_finished_once_each_across_a_sigkill(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    with Webhook() as hook:
        cluster.seed(
            [node("w1"), node("w2"), node("w3"), secret("hooks", "urls", hook.url(f"/hook/{TOKEN}"))]
        )
        # w2's containerd never comes up (rolled back); the operator SIGKILLs itself inside w3's switch,
        # which waits until Started and NodeFailed have arrived: a notification is sent off the
        # reconcile's path, at most once, so one still queued at a SIGKILL is lost by design
        # (docs/notifications.md), and the crash must not race the sends this test counts
        release = sim_dir / "release-w3-switch"
        operator = operator_factory(
            SHIMSHIFT_SIM_BREAK="w2",
            SHIMSHIFT_SIM_CRASH="w3:switch",
            SHIMSHIFT_SIM_HOLD=f"w3:switch:{release}",
        )
        operator.start()
        cluster.seed(migration(rollout={"maxUnavailable": 1, "maxFailures": 1}, notifications=NOTIFY))

        eventually(lambda: len(hook.received()) >= 2, 60, "the Started and NodeFailed notifications")
        release.touch()
        eventually((sim_dir / "crashed-w3-switch").exists, 90, "the operator to die inside w3's switch")
        assert operator.proc is not None
        operator.proc.wait(timeout=10)
        assert operator.proc.returncode == -signal.SIGKILL
        operator.start()
        eventually(lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.FAILED), 90, "the end")
        eventually(lambda: len(hook.received()) >= 3, 30, "the Finished notification")

        # one more SIGKILL and restart after the end: the new process reconciles (its node gauges
        # say so) and sends nothing
        operator.kill()
        metrics = free_port()
        operator.extra_args = ["--metrics-port", str(metrics)]
        operator.start()
        eventually(
            lambda: 'shimshift_nodes{migration="m",phase="RolledBack"} 1.0' in scrape(metrics),
            60,
            "the restarted operator to reconcile the finished rollout",
        )
        posts = hook.received()

    status = status_of(cluster)
    assert status.phase == Phase.FAILED, operator.logs()[-3000:]  # finished, with one node rolled back
    assert [status.node(n).phase for n in ("w1", "w2", "w3")] == [  # type: ignore[union-attr]
        NodePhase.SUCCEEDED,
        NodePhase.ROLLED_BACK,
        NodePhase.SUCCEEDED,
    ]
    assert [body["title"] for _, body in posts] == [
        "shimshift: m Started",
        "shimshift: m NodeFailed (w2)",
        "shimshift: m Finished",
    ], posts
    assert {path for path, _ in posts} == {f"/hook/{TOKEN}"}
    failed, finished = posts[1][1]["message"], posts[2][1]["message"]
    assert failed.startswith("NodeMigration m: node w2 was rolled back to Docker: ")
    assert finished == (
        "NodeMigration m finished (Failed): 2 succeeded, 0 failed, 1 rolled back, 0 skipped of 3 node(s)."
    )
    assert TOKEN not in operator.logs()


def test_a_dead_target_yields_notification_failed_and_the_rollout_still_succeeds(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    port = free_port()  # reserved; nothing listens on it
    url = f"json://127.0.0.1:{port}/hook/{TOKEN}?token={TOKEN}"
    cluster.seed([node("w1"), secret("hooks", "urls", f"# the team channel\n{url}\n")])
    operator = operator_factory()
    operator.start()
    cluster.seed(migration(notifications={**NOTIFY, "events": ["Started", "Finished"]}))

    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the rollout to succeed")

    def given_up() -> list[str]:
        events = cluster.list("events", namespace="default")
        return [
            e["message"] for e in events if e["reason"] == "NotificationFailed" and e["type"] == "Warning"
        ]

    messages = eventually(lambda: len(given_up()) == 2 and given_up(), 60, "both notifications given up")
    assert sorted(messages) == [
        "notification Finished of NodeMigration m to json://127.0.0.1 failed after 3 attempt(s)",
        "notification Started of NodeMigration m to json://127.0.0.1 failed after 3 attempt(s)",
    ]
    everything = json.dumps(
        [cluster.list("events", namespace="default"), cluster.get("nodemigrations.shimshift.io", "m")]
    )
    assert TOKEN not in everything and str(port) not in " ".join(messages)
    assert TOKEN not in operator.logs()
    assert "json://127.0.0.1 failed after 3 attempt(s)" in operator.logs()
