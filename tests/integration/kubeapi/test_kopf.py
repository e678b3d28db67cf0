"""A real kopf operator against the emulator: handlers, retries with backoff, status, Events, peering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from testbed.kubeapi import KubeApi

from .conftest import wait_until

pytestmark = pytest.mark.integration

OPERATOR = Path(__file__).with_name("kopf_operator.py")


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"mode": "Plan", **spec},
    }


def invocations(kubeapi: KubeApi, name: str) -> list[str]:
    events = kubeapi.list("events", "default", field_selector=f"involvedObject.name={name},reason=Invoked")
    return sorted(e["message"] for e in events)


def run_scenario(kubeapi: KubeApi, runner: KopfRunner) -> None:
    kubeapi.seed(widget("plain", size=2))
    started = time.monotonic()
    kubeapi.seed(widget("retried", size=5))
    plain = wait_until(
        lambda: (
            (w := kubeapi.get("widgets", "plain", "default")) and w.get("status", {}).get("created") and w
        ),
        timeout=20,
        what="plain handled",
    )
    assert plain["status"]["created"] == {"size": 2, "retries": 0}
    assert plain["status"]["phase"] == "Ready"
    retried = wait_until(
        lambda: (
            (w := kubeapi.get("widgets", "retried", "default")) and w.get("status", {}).get("created") and w
        ),
        timeout=20,
        what="retried handled",
    )
    assert retried["status"]["created"] == {"size": 5, "retries": 2}
    assert time.monotonic() - started >= 2.0, "two TemporaryError(delay=1) must cost at least 2 s"

    kubeapi.patch("widgets", "plain", {"spec": {"mode": "Migrate"}}, "default")
    wait_until(lambda: len(invocations(kubeapi, "plain")) == 2, timeout=20, what="update handler")
    kubeapi.delete("widgets", "plain", "default")
    wait_until(
        lambda: kubeapi.get("widgets", "plain", "default") is None, timeout=20, what="finalizer released"
    )

    time.sleep(1.5)  # anything spurious would show up now
    assert invocations(kubeapi, "plain") == [
        "create handler, retry 0",
        "delete handler",
        "mode Plan -> Migrate",
    ]
    assert invocations(kubeapi, "retried") == [f"create handler, retry {i}" for i in range(3)]


def test_kopf_in_namespaced_mode_with_peering(
    kubeapi: KubeApi, widgets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEAPI_URL", kubeapi.url)
    kubeapi.seed(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": "test", "namespace": "default"},
        }
    )
    with KopfRunner(["run", "--namespace=default", "--peering=test", str(OPERATOR)], timeout=60) as runner:
        run_scenario(kubeapi, runner)
        peering = kubeapi.get("kopfpeerings", "test", "default")
        assert peering is not None and len(peering.get("status") or {}) == 1
        assert next(iter(peering["status"].values()))["priority"] == 10
    assert runner.exit_code == 0, runner.output
    raised: object = runner.exception  # kopf declares BaseException; it is None when nothing was raised
    assert raised is None
    goodbye = kubeapi.get("kopfpeerings", "test", "default")
    assert not (goodbye or {}).get("status"), "kopf removes itself from the peering on exit"


def test_kopf_in_cluster_wide_mode_with_cluster_peering(
    kubeapi: KubeApi, widgets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEAPI_URL", kubeapi.url)
    kubeapi.seed({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "test"}})
    with KopfRunner(["run", "--all-namespaces", "--peering=test", str(OPERATOR)], timeout=60) as runner:
        run_scenario(kubeapi, runner)
        assert (kubeapi.get("clusterkopfpeerings", "test") or {}).get("status")
        watches = kubeapi.requests.filter(verb="watch", resource="widgets")
        assert watches and all(w.namespace == "" for w in watches)
    assert runner.exit_code == 0, runner.output
    raised: object = runner.exception  # kopf declares BaseException; it is None when nothing was raised
    assert raised is None
