"""Notifications as values: which rollout events are due, and their text from templates.

The engine calls these at the same decision points where it records the matching Event (the first
node started, a node failed, the phase turned Paused, Succeeded or Failed) and hands the result to
its `Notifier` port, which delivers it off the reconcile's path (`shimshift.notify`). Each point is
reached once per transition because the transition is written (status or the node's own record)
before the notification is handed over; that is what keeps a restarted operator from sending it again.

Templates are `string.Template` text (`$migration`, `${node}`...): an unknown `$name` is left as it is
(safe substitution), so a typo shows in the message instead of failing the rollout.

Must not: import apprise, or anything that does I/O; see or carry a target URL (those stay in their
Secret and in `shimshift.notify`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from string import Template

from shimshift.model.spec import NotificationEvent, NotificationSettings, SecretKeyRef
from shimshift.model.status import NodePhase, NodeRecord, Phase

#: The text of each event unless spec.notifications.templates overrides it.
DEFAULT_TEMPLATES: dict[NotificationEvent, str] = {
    NotificationEvent.STARTED: "NodeMigration $migration started: $total node(s) selected for containerd.",
    NotificationEvent.NODE_FAILED: "NodeMigration $migration: node $node $outcome: $reason",
    NotificationEvent.PAUSED: "NodeMigration $migration paused: $reason",
    NotificationEvent.FINISHED: (
        "NodeMigration $migration finished ($phase): $succeeded succeeded, $failed failed, "
        "$rolledBack rolled back, $skipped skipped of $total node(s)."
    ),
}

#: The names a template may use (documented in docs/notifications.md).
TEMPLATE_FIELDS = (
    "migration",
    "event",
    "node",
    "reason",
    "outcome",
    "phase",
    "total",
    "succeeded",
    "failed",
    "rolledBack",
    "skipped",
    "pending",
    "inProgress",
)

#: A notification's body is cut here: chat targets reject long messages, and a reason can be a stderr tail.
BODY_MAX = 2000


@dataclass(frozen=True)
class Notification:
    """One message to send: what it is about, its text, and the Secret naming where it goes."""

    event: NotificationEvent
    migration: str
    title: str
    body: str
    url_secret: SecretKeyRef
    node: str = ""


def counts(nodes: Iterable[NodeRecord]) -> dict[str, int]:
    """Template fields counting `nodes` by phase (a rolling-back node counts as in progress)."""
    tally = dict.fromkeys(("succeeded", "failed", "rolledBack", "skipped", "pending", "inProgress"), 0)
    field_of = {
        NodePhase.SUCCEEDED: "succeeded",
        NodePhase.FAILED: "failed",
        NodePhase.ROLLED_BACK: "rolledBack",
        NodePhase.SKIPPED: "skipped",
        NodePhase.PENDING: "pending",
        NodePhase.IN_PROGRESS: "inProgress",
        NodePhase.ROLLING_BACK: "inProgress",
    }
    total = 0
    for record in nodes:
        tally[field_of[record.phase]] += 1
        total += 1
    return {**tally, "total": total}


def render_notification(
    config: NotificationSettings | None,
    event: NotificationEvent,
    migration: str,
    *,
    node: str = "",
    reason: str = "",
    outcome: str = "",
    phase: Phase | None = None,
    nodes: Iterable[NodeRecord] = (),
) -> Notification | None:
    """The notification of `event`, or None when the spec asks for none (no spec.notifications, or
    `event` not in its events)."""
    if config is None or event not in config.events:
        return None
    fields: dict[str, object] = {
        "migration": migration,
        "event": str(event),
        "node": node,
        "reason": reason or "no reason recorded",
        "outcome": outcome,
        "phase": str(phase) if phase else "",
        **counts(nodes),
    }
    text = config.template(event) or DEFAULT_TEMPLATES[event]
    body = Template(text).safe_substitute(fields).strip()
    if len(body) > BODY_MAX:
        body = body[: BODY_MAX - 1] + "…"
    title = f"shimshift: {migration} {event}" + (f" ({node})" if node else "")
    return Notification(event, migration, title, body, config.url_secret, node)


def finished_event(before: Phase | None, after: Phase | None) -> NotificationEvent | None:
    """The notification a phase change from `before` to `after` is due (None: that change has none)."""
    if before == after:
        return None
    if after == Phase.PAUSED:
        return NotificationEvent.PAUSED
    if after in (Phase.SUCCEEDED, Phase.FAILED):
        return NotificationEvent.FINISHED
    return None


def starts_rollout(before: Iterable[NodeRecord], starting: Iterable[str]) -> bool:
    """Whether starting `starting` starts the rollout: no node of `before` had started yet."""
    return any(True for _ in starting) and all(
        r.phase in (NodePhase.PENDING, NodePhase.SKIPPED) for r in before
    )
