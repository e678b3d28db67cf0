"""Pods, eviction and drain passes against the emulator's PodDisruptionBudget arithmetic."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.api import Kube
from shimshift.kube.drain import drain_pass
from shimshift.kube.pods import EvictionResult, evict_pod, list_pods_on_node
from shimshift.kube.watching import wait_until
from shimshift.model.spec import Drain
from tests.integration.kube.conftest import daemonset, node, pdb, pod

pytestmark = pytest.mark.integration


def test_pods_are_listed_per_node_by_field_selector(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(
        [node("n1"), node("n2"), pod("a", "n1"), pod("b", "n2"), pod("c", "n1", labels={"app": "x"})]
    )

    assert sorted(p.name for p in list_pods_on_node(kube, "n1")) == ["a", "c"]
    assert [p.name for p in list_pods_on_node(kube, "n1", "app=x")] == ["c"]


def test_an_eviction_refused_by_a_budget_names_the_budget(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(
        [
            node("n1"),
            pod("web-0", "n1", labels={"app": "web"}),
            pdb("web-pdb", {"app": "web"}, minAvailable=1),
        ]
    )
    (target,) = list_pods_on_node(kube, "n1")

    outcome = evict_pod(kube, target)

    assert outcome.result == EvictionResult.BLOCKED
    assert outcome.pdbs == ("default/web-pdb",)
    assert "default/web-0" in outcome.describe() and "default/web-pdb" in outcome.describe()
    assert kubeapi.get("pods", "web-0", "default") is not None


def test_an_allowed_eviction_removes_the_pod(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed([node("n1"), pod("a", "n1")])
    (target,) = list_pods_on_node(kube, "n1")

    assert evict_pod(kube, target, grace_period_seconds=0).result == EvictionResult.EVICTED
    assert wait_until(
        kube, "/api/v1/namespaces/default/pods", lambda objs: "default/a" not in objs, timeout=10
    )


def test_a_drain_pass_skips_daemonset_and_mirror_pods_and_evicts_the_rest(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            daemonset("agent"),
            pod("app", "n1"),
            pod("agent", "n1", owner=("DaemonSet", "agent")),
            pod("static", "n1", owner=("Node", "n1"), annotations={"kubernetes.io/config.mirror": "x"}),
        ]
    )

    progress = drain_pass(kube, "n1", Drain(grace_period_seconds=0), wait=10)

    assert progress.done, progress.describe()
    assert progress.evicted == ("default/app",)
    left = sorted(p.name for p in list_pods_on_node(kube, "n1"))
    assert left == ["agent", "static"]


def test_a_pod_whose_daemonset_is_gone_stops_the_drain_unless_forced_and_is_then_evicted(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed([node("n1"), pod("orphan", "n1", owner=("DaemonSet", "gone"))])

    refused = drain_pass(kube, "n1", Drain(grace_period_seconds=0), wait=1)

    assert not refused.done
    assert "default/orphan" in refused.describe() and "DaemonSet that no longer exists" in refused.describe()
    assert "spec.drain.force: true" in refused.describe()
    assert kubeapi.get("pods", "orphan", "default") is not None
    assert not [r for r in kubeapi.requests if r.subresource == "eviction"]

    forced = drain_pass(kube, "n1", Drain(grace_period_seconds=0, force=True), wait=10)

    assert forced.done, forced.describe()
    assert forced.evicted == ("default/orphan",)
    assert kubeapi.get("pods", "orphan", "default") is None


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"owner": None}, "spec.drain.force"),
        ({"empty_dir": True}, "spec.drain.deleteEmptyDirData"),
    ],
)
def test_a_drain_refuses_pods_kubectl_would_refuse_and_says_which_field_allows_it(
    kubeapi: KubeApi, kube: Kube, extra: dict[str, object], why: str
) -> None:
    kubeapi.seed([node("n1"), pod("p", "n1", **extra)])  # type: ignore[arg-type]

    progress = drain_pass(kube, "n1", Drain(), wait=1)

    assert not progress.done
    assert "default/p" in progress.describe() and why in progress.describe()
    assert kubeapi.get("pods", "p", "default") is not None


def test_a_drain_pass_blocked_by_a_budget_returns_within_its_wait_naming_budget_and_pod(
    kubeapi: KubeApi, kube: Kube
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            pod("web-0", "n1", labels={"app": "web"}),
            pdb("web-pdb", {"app": "web"}, maxUnavailable=0),
        ]
    )

    progress = drain_pass(kube, "n1", Drain(), wait=1)

    assert progress.remaining == ("default/web-0",)
    assert [b.pdbs for b in progress.blocked] == [("default/web-pdb",)]
    assert "PodDisruptionBudget default/web-pdb" in progress.describe()


def test_waiting_wakes_on_a_watch_event_and_gives_up_at_its_bound(kubeapi: KubeApi, kube: Kube) -> None:
    kubeapi.seed(node("n1"))

    def labelled(objects: Mapping[str, dict[str, Any]]) -> bool:
        meta = objects.get("n1", {}).get("metadata") or {}
        return "ready-now" in (meta.get("labels") or {})

    assert wait_until(kube, "/api/v1/nodes", labelled, timeout=1) is False
    timer = threading.Timer(
        0.3, lambda: kubeapi.patch("nodes", "n1", {"metadata": {"labels": {"ready-now": "1"}}})
    )
    timer.start()
    try:
        assert wait_until(kube, "/api/v1/nodes", labelled, timeout=10) is True
    finally:
        timer.cancel()
    watches = [r for r in kubeapi.requests if r.verb == "watch" and r.resource == "nodes"]
    lists = [r for r in kubeapi.requests if r.verb == "list" and r.resource == "nodes"]
    assert watches and len(lists) <= 3  # woken by the watch, not by polling
