"""Which operator replica may act on a NodeMigration: a lease in an annotation on the object.

kopf peering pauses all but the highest-priority replica, but a pass already running in a worker
thread (an image transfer, a drain) cannot be interrupted when its replica is paused. So a replica
also claims the NodeMigration before each pass and renews the claim while the pass runs; another
replica acts only once the claim has expired, i.e. after the previous actor has stopped renewing.
Claims are written with the object's resourceVersion as a precondition: of two claimants, one wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from shimshift.kube.api import MERGE_PATCH, Conflict, Kube
from shimshift.kube.migrations import migration_path
from shimshift.model import keys

LEASE_ANNOTATION: Final = keys.LEASE_ANNOTATION


def _format(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_lease(value: str) -> tuple[str, dt.datetime | None]:
    holder, _, expiry = value.partition(" ")
    try:
        return holder, dt.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return holder, None


def claim_migration(kube: Kube, name: str, identity: str, ttl: float, now: dt.datetime) -> bool:
    """Take or renew the lease of NodeMigration `name` for `identity`; False while another holds it.

    A write that loses a race to an unrelated change (a status patch) is decided again on fresh data.
    """
    for _ in range(4):
        outcome = _claim_once(kube, name, identity, ttl, now)
        if outcome is not None:
            return outcome
    return False


def _claim_once(kube: Kube, name: str, identity: str, ttl: float, now: dt.datetime) -> bool | None:
    obj = kube.request("GET", migration_path(name))
    meta = obj.get("metadata") or {}
    holder, expiry = parse_lease(str((meta.get("annotations") or {}).get(LEASE_ANNOTATION, "")))
    if holder and holder != identity and expiry is not None and expiry > now:
        return False
    value = f"{identity} {_format(now + dt.timedelta(seconds=ttl))}"
    try:
        kube.request(
            "PATCH",
            migration_path(name),
            body={
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "annotations": {LEASE_ANNOTATION: value},
                }
            },
            content_type=MERGE_PATCH,
        )
    except Conflict:
        return None  # the object changed meanwhile: decide again on fresh data
    return True
