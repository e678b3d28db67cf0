"""Notifications as values: which events are sent, their text, and what a message may say of a URL."""

from __future__ import annotations

import pytest

from shimshift.model.spec import NodeMigrationSpec, NotificationEvent, NotificationSettings, SecretKeyRef
from shimshift.model.status import NodePhase, NodeRecord, Phase
from shimshift.notify import redact, target_urls
from shimshift.planning.notifications import (
    BODY_MAX,
    finished_event,
    render_notification,
    starts_rollout,
)

REF = SecretKeyRef("hooks", "urls")
ALL = NotificationSettings(REF)


def records(**phases: NodePhase) -> tuple[NodeRecord, ...]:
    return tuple(NodeRecord(name=name, phase=phase) for name, phase in phases.items())


def test_the_spec_defaults_to_every_event_and_the_urls_key() -> None:
    spec = NodeMigrationSpec.from_raw(
        {"mode": "Migrate", "notifications": {"urlSecretRef": {"name": "hooks"}}}
    )
    assert spec.notifications == NotificationSettings(SecretKeyRef("hooks", "urls"))
    assert spec.notifications.events == set(NotificationEvent)
    assert NodeMigrationSpec.from_raw({"mode": "Migrate"}).notifications is None


def test_the_spec_keeps_the_chosen_events_and_templates() -> None:
    spec = NodeMigrationSpec.from_raw(
        {
            "mode": "Migrate",
            "notifications": {
                "urlSecretRef": {"name": "hooks", "key": "slack"},
                "events": ["NodeFailed", "Finished"],
                "templates": {"Finished": "done: $succeeded"},
            },
        }
    )
    config = spec.notifications
    assert config is not None
    assert config.url_secret == SecretKeyRef("hooks", "slack")
    assert config.events == {NotificationEvent.NODE_FAILED, NotificationEvent.FINISHED}
    assert config.template(NotificationEvent.FINISHED) == "done: $succeeded"
    assert config.template(NotificationEvent.STARTED) is None


def test_no_notification_is_due_without_the_spec_or_for_an_event_not_chosen() -> None:
    only_failed = NotificationSettings(REF, events=frozenset({NotificationEvent.NODE_FAILED}))
    assert render_notification(None, NotificationEvent.STARTED, "m") is None
    assert render_notification(only_failed, NotificationEvent.STARTED, "m") is None
    assert render_notification(only_failed, NotificationEvent.NODE_FAILED, "m", node="w1") is not None


def test_the_finished_message_counts_the_nodes_by_outcome() -> None:
    nodes = records(
        w1=NodePhase.SUCCEEDED, w2=NodePhase.SUCCEEDED, w3=NodePhase.ROLLED_BACK, w4=NodePhase.SKIPPED
    )
    sent = render_notification(ALL, NotificationEvent.FINISHED, "fleet", phase=Phase.FAILED, nodes=nodes)
    assert sent is not None
    assert sent.body == (
        "NodeMigration fleet finished (Failed): 2 succeeded, 0 failed, 1 rolled back, 1 skipped of 4 node(s)."
    )
    assert sent.title == "shimshift: fleet Finished"
    assert sent.url_secret == REF


def test_the_node_failed_message_names_the_node_and_its_reason() -> None:
    sent = render_notification(
        ALL,
        NotificationEvent.NODE_FAILED,
        "fleet",
        node="w3",
        reason="step configure: containerd did not start",
        outcome="was rolled back to Docker",
    )
    assert sent is not None and sent.node == "w3"
    assert sent.body == (
        "NodeMigration fleet: node w3 was rolled back to Docker: step configure: containerd did not start"
    )
    assert sent.title == "shimshift: fleet NodeFailed (w3)"


def test_the_paused_message_gives_the_reason() -> None:
    sent = render_notification(
        ALL, NotificationEvent.PAUSED, "fleet", reason="1 node(s) failed (maxFailures 0)"
    )
    assert sent is not None
    assert sent.body == "NodeMigration fleet paused: 1 node(s) failed (maxFailures 0)"


def test_a_template_override_replaces_the_text_and_leaves_an_unknown_name_as_written() -> None:
    config = NotificationSettings(
        REF, templates=((NotificationEvent.STARTED, ":rocket: $migration on $total, $oops"),)
    )
    sent = render_notification(
        config, NotificationEvent.STARTED, "fleet", nodes=records(w1=NodePhase.PENDING)
    )
    assert sent is not None and sent.body == ":rocket: fleet on 1, $oops"


def test_a_long_reason_is_cut_to_the_message_limit() -> None:
    sent = render_notification(ALL, NotificationEvent.NODE_FAILED, "m", node="w1", reason="x" * 10_000)
    assert sent is not None and len(sent.body) == BODY_MAX and sent.body.endswith("…")


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (Phase.PROGRESSING, Phase.PAUSED, NotificationEvent.PAUSED),
        (Phase.PROGRESSING, Phase.SUCCEEDED, NotificationEvent.FINISHED),
        (Phase.PAUSED, Phase.FAILED, NotificationEvent.FINISHED),
        (None, Phase.PROGRESSING, None),
        (Phase.PAUSED, Phase.PAUSED, None),
        (Phase.SUCCEEDED, Phase.SUCCEEDED, None),
        (Phase.PAUSED, Phase.PROGRESSING, None),
    ],
)
def test_only_a_change_into_paused_or_an_end_phase_is_due_a_notification(
    before: Phase | None, after: Phase, event: NotificationEvent | None
) -> None:
    assert finished_event(before, after) == event


def test_the_rollout_starts_with_its_first_node_only() -> None:
    assert starts_rollout((), ["w1"])
    assert starts_rollout(records(w1=NodePhase.PENDING, w2=NodePhase.SKIPPED), ["w1"])
    assert not starts_rollout(records(w1=NodePhase.SUCCEEDED, w2=NodePhase.PENDING), ["w2"])
    assert not starts_rollout(records(w1=NodePhase.PENDING), [])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://"),
        ("tgram://123456789:AAHbotT0ken/-100123", "tgram://"),
        ("json://127.0.0.1:8080/hook/tok3n", "json://127.0.0.1"),
        ("json://[::1]:8080/tok3n", "json://::1"),
        ("json://user:s3cret@hooks.example.com:8443/path/tok3n?k=v", "json://hooks.example.com"),
        ("https://outlook.office.com/webhook/abc/IncomingWebhook/def/ghi", "https://outlook.office.com"),
        ("msteams://", "msteams://"),
        ("http://[::1", "an unparsable URL"),
    ],
)
def test_a_message_names_a_target_by_scheme_and_host_only(url: str, shown: str) -> None:
    assert redact(url) == shown
    for secret in (
        "s3cret",
        "tok3n",
        "8443",
        "T1JJ3T3L2",
        "TIiajkdnlazkcOXrIdevi7FQ",
        "AAHbotT0ken",
        "Incoming",
    ):
        assert secret not in redact(url)


def test_the_secret_lists_one_url_a_line_without_blanks_or_comments() -> None:
    text = "json://a/x\n\n  # team chat\n msteams://b/y  \n"
    assert target_urls(text) == ("json://a/x", "msteams://b/y")
