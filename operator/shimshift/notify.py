"""Delivery of notifications through apprise: the only module that imports it.

The engine hands over a `planning.notifications.Notification` and goes on; one sender thread here
takes them in the order they were handed over, reads the target URLs from their Secret (one URL per
line; blank lines and `#` comments skipped), sends to each target with apprise's bounded socket
timeouts, retries a failed target a few times with backoff, and then gives up: the engine's `failed`
callback records a Warning Event NotificationFailed.
Nothing here raises into the engine, so a notification never blocks or fails a rollout.

A target URL carries its credentials (a Slack webhook's path is its token), so a URL is never logged
and never put in an Event: messages name the scheme and host only (`redact`). apprise's own logger,
which writes whole URLs at debug level, is silenced for the same reason.

Must not: import kubernetes or kopf (the Secret is read through the `read_secret` callable the
entry point wires), log or return a URL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import apprise

from shimshift.model.errors import ShimshiftError
from shimshift.model.spec import SecretKeyRef
from shimshift.planning.notifications import Notification

log = logging.getLogger(__name__)

THREAD_PREFIX = "shimshift-notify"

# apprise logs the URLs it posts to; those hold tokens. Its warnings are replaced by ours (redacted).
_apprise_log = logging.getLogger("apprise")
_apprise_log.addHandler(logging.NullHandler())
_apprise_log.propagate = False
_apprise_log.setLevel(logging.CRITICAL + 1)


class _FromSenders(logging.Filter):
    """Drops the HTTP libraries' records made on this module's threads: at debug level urllib3 logs
    each request line, whose path is a webhook's token. Their records on other threads (the
    Kubernetes client's) are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(THREAD_PREFIX)


for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_FromSenders())

ATTEMPTS = 3  # per target
BACKOFF = (1.0, 4.0)  # seconds before the 2nd and 3rd attempt
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


def redact(url: str) -> str:
    """`scheme://host` of `url`: what a message may say about a target (no user, password, port,
    path or query, which is where tokens live). Only a host that is a network name or address is
    shown: many apprise schemes put a token where the host goes (`slack://TokenA/...`,
    `tgram://bottoken/...`), and those show as `scheme://` alone."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return "an unparsable URL"
    scheme = parts.scheme or "unknown"
    if not ("." in host or ":" in host or host == "localhost"):
        host = ""
    return f"{scheme}://{host}"


def target_urls(text: str) -> tuple[str, ...]:
    """The URLs of a Secret value: one a line, blank lines and `#` comments skipped."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


class AppriseNotifier:
    """`shimshift.ports.Notifier` over apprise. `read_secret(ref)` returns the Secret value (raising a
    ShimshiftError when it cannot); `count(event, result)` feeds shimshift_notifications_total."""

    def __init__(
        self,
        read_secret: Callable[[SecretKeyRef], str],
        count: Callable[[str, str], None] = lambda event, result: None,
        *,
        backoff: tuple[float, ...] = BACKOFF,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.read_secret = read_secret
        self.count = count
        self.backoff = backoff
        self.attempts = attempts
        self._stop = threading.Event()
        # one sender: notifications arrive in the order the engine handed them over (a rollout's
        # Started before its NodeFailed, each before its Finished), a slow or dead target delaying the
        # ones behind it by at most its bounded attempts
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_PREFIX)

    def send(self, notification: Notification, failed: Callable[[str], None]) -> None:
        self._pool.submit(self._deliver, notification, failed)

    def close(self, wait: bool = True) -> None:
        """Stop retrying (pending backoffs end at once); with `wait`, let queued sends finish, without
        it drop them (at most once: a dropped notification is lost, never sent twice)."""
        self._stop.set()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _deliver(self, notification: Notification, failed: Callable[[str], None]) -> None:
        what = f"notification {notification.event} of NodeMigration {notification.migration}"
        try:
            ref = notification.url_secret
            try:
                urls = target_urls(self.read_secret(ref))
            except ShimshiftError as e:  # its message names the Secret and key, never a value
                self._give_up(notification, failed, f"{what} not sent: {e}")
                return
            if not urls:
                self._give_up(notification, failed, f"{what} not sent: Secret key {ref.key!r} lists no URL")
                return
            for url in urls:
                self._deliver_to(notification, url, what, failed)
        except Exception as e:  # a bug here must not kill the pool's thread silently, nor name a URL
            log.error(
                "%s: unexpected %s while sending (its text withheld: it may hold a URL)",
                what,
                type(e).__name__,
            )
            self.count(str(notification.event), "failed")

    def _deliver_to(
        self, notification: Notification, url: str, what: str, failed: Callable[[str], None]
    ) -> None:
        target = redact(url)
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            self._give_up(notification, failed, f"{what} to {target} not sent: not a URL apprise supports")
            return
        plugin.socket_connect_timeout = CONNECT_TIMEOUT
        plugin.socket_read_timeout = READ_TIMEOUT
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff[min(attempt - 1, len(self.backoff) - 1)] if self.backoff else 0.0
                if self._stop.wait(delay):
                    break
            if plugin.notify(body=notification.body, title=notification.title):
                log.info("%s sent to %s", what, target)
                self.count(str(notification.event), "sent")
                return
            log.warning("%s to %s: attempt %d of %d failed", what, target, attempt + 1, self.attempts)
        self._give_up(notification, failed, f"{what} to {target} failed after {self.attempts} attempt(s)")

    def _give_up(self, notification: Notification, failed: Callable[[str], None], message: str) -> None:
        log.warning("%s; giving up", message)
        self.count(str(notification.event), "failed")
        try:
            failed(message)
        except Exception:  # the Event is best effort, like every Event
            log.warning("could not record a NotificationFailed Event")
