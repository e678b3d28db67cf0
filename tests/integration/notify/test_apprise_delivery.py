"""shimshift.notify through real apprise to a loopback webhook: delivery, retries with backoff, giving
up with a message (and logs) that name the scheme and host only."""

from __future__ import annotations

import logging
import threading

import pytest
from testbed.ports import free_port
from testbed.waiting import wait_until

from shimshift.model.errors import KubeError
from shimshift.model.spec import NotificationEvent, SecretKeyRef
from shimshift.notify import AppriseNotifier
from shimshift.planning.notifications import Notification
from tests.integration.notify.webhook import Webhook

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-t0ken"
REF = SecretKeyRef("hooks", "urls")


def note(event: NotificationEvent = NotificationEvent.STARTED) -> Notification:
    return Notification(event, "m", "shimshift: m Started", "NodeMigration m started", REF)


class Outcome:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.counts: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def failed(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def count(self, event: str, result: str) -> None:
        with self.lock:
            self.counts.append((event, result))


def notifier(urls: str, outcome: Outcome) -> AppriseNotifier:
    return AppriseNotifier(lambda ref: urls, outcome.count, backoff=(0.05, 0.1))


def test_a_notification_is_posted_once_to_every_url_of_the_secret() -> None:
    outcome = Outcome()
    with Webhook() as first, Webhook() as second:
        sender = notifier(f"{first.url()}\n# a comment\n\n{second.url('/other/' + TOKEN)}\n", outcome)
        sender.send(note(), outcome.failed)
        wait_until(lambda: len(outcome.counts) == 2, 30, what="both targets sent")
        sender.close()
        assert [(path, body["title"], body["message"]) for path, body in first.received()] == [
            (f"/hook/{TOKEN}", "shimshift: m Started", "NodeMigration m started")
        ]
        assert [path for path, _ in second.received()] == [f"/other/{TOKEN}"]
    assert outcome.counts == [("Started", "sent"), ("Started", "sent")]
    assert outcome.failures == []


def test_notifications_arrive_in_the_order_they_were_handed_over_even_behind_a_slow_send() -> None:
    outcome = Outcome()
    events = (NotificationEvent.STARTED, NotificationEvent.NODE_FAILED, NotificationEvent.FINISHED)
    with Webhook(first_delay=1.0) as hook:
        sender = notifier(hook.url(), outcome)
        for event in events:
            sender.send(
                Notification(event, "m", f"shimshift: m {event}", f"NodeMigration m {event}", REF),
                outcome.failed,
            )
        wait_until(lambda: len(outcome.counts) == 3, 30, what="the three notifications sent")
        sender.close()
        titles = [body["title"] for _, body in hook.received()]
    # a NodeFailed before its rollout's Started, or a Finished before a NodeFailed, misleads a reader
    assert titles == [f"shimshift: m {event}" for event in events]
    assert outcome.failures == []


def test_a_target_that_answers_errors_is_retried_then_given_up_without_naming_its_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = Outcome()
    with Webhook(status=500) as hook:
        sender = notifier(hook.url(), outcome)
        sender.send(note(NotificationEvent.FINISHED), outcome.failed)
        wait_until(lambda: outcome.failures, 30, what="the notification given up")
        sender.close()
        assert len(hook.received()) == 3  # bounded: three attempts, then no more
    assert outcome.failures == [
        "notification Finished of NodeMigration m to json://127.0.0.1 failed after 3 attempt(s)"
    ]
    assert outcome.counts == [("Finished", "failed")]
    assert TOKEN not in caplog.text and "/hook" not in caplog.text
    assert "json://127.0.0.1" in caplog.text  # the failure is logged, redacted


def test_a_dead_target_is_given_up_with_scheme_and_host_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = Outcome()
    port = free_port()  # reserved, nothing listens on it
    sender = notifier(f"json://127.0.0.1:{port}/hook/{TOKEN}?token={TOKEN}", outcome)
    sender.send(note(), outcome.failed)
    wait_until(lambda: outcome.failures, 60, what="the notification given up")
    sender.close()
    assert outcome.failures == [
        "notification Started of NodeMigration m to json://127.0.0.1 failed after 3 attempt(s)"
    ]
    assert TOKEN not in caplog.text and str(port) not in " ".join(outcome.failures)


def test_an_unreadable_secret_or_an_unknown_scheme_is_given_up_at_once() -> None:
    outcome = Outcome()

    def missing(ref: SecretKeyRef) -> str:
        raise KubeError(f"Secret ns/{ref.name} does not exist; create it with the key {ref.key!r}")

    sender = AppriseNotifier(missing, outcome.count)
    sender.send(note(), outcome.failed)
    unknown = notifier(f"nosuchscheme://example.com/{TOKEN}", outcome)
    unknown.send(note(), outcome.failed)
    wait_until(lambda: len(outcome.failures) == 2, 30, what="both given up")
    sender.close()
    unknown.close()
    assert sorted(outcome.failures) == [
        "notification Started of NodeMigration m not sent: Secret ns/hooks does not exist; "
        "create it with the key 'urls'",
        "notification Started of NodeMigration m to nosuchscheme://example.com not sent: "
        "not a URL apprise supports",
    ]
