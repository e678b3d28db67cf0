"""The replica lease on a NodeMigration against the API emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube
from shimshift.kube.lease import LEASE_ANNOTATION, claim_migration, parse_lease
from tests.integration.kube.conftest import migration

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_lease_is_exclusive_until_it_expires(kubeapi: KubeApi, kube: Kube, crd: dict[str, Any]) -> None:
    kubeapi.seed(migration())

    assert claim_migration(kube, "m", "a", 30, NOW) is True
    assert claim_migration(kube, "m", "b", 30, NOW + dt.timedelta(seconds=29)) is False
    assert claim_migration(kube, "m", "a", 30, NOW + dt.timedelta(seconds=20)) is True  # renewed to 50 s
    assert claim_migration(kube, "m", "b", 30, NOW + dt.timedelta(seconds=40)) is False
    assert claim_migration(kube, "m", "b", 30, NOW + dt.timedelta(seconds=51)) is True

    obj = kubeapi.get("nodemigrations.shimshift.io", "m")
    assert obj is not None
    holder, expiry = parse_lease(obj["metadata"]["annotations"][LEASE_ANNOTATION])
    assert holder == "b" and expiry == NOW + dt.timedelta(seconds=81)
    assert obj["metadata"]["generation"] == 1  # a claim is metadata: the spec generation is untouched


def test_a_claim_racing_a_status_write_is_decided_again_on_fresh_data(
    kubeapi: KubeApi, kube: Kube, crd: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeapi.seed(migration())
    real = kube.request
    raced: list[bool] = []

    def racing(method: str, path: str, **kw: Any) -> dict[str, Any]:
        if method == "PATCH" and not raced:
            raced.append(True)
            kubeapi.patch("nodemigrations.shimshift.io", "m", {"metadata": {"labels": {"touched": "1"}}})
        return real(method, path, **kw)

    monkeypatch.setattr(kube, "request", racing)

    assert claim_migration(kube, "m", "a", 30, NOW) is True
