"""pods/eviction with PodDisruptionBudget arithmetic, graceful deletion, and pods coming back elsewhere."""

from __future__ import annotations

import json
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi import KubeApi

from .conftest import http, node, pod, wait_until

pytestmark = pytest.mark.integration


def pdb(name: str, selector: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": dict(spec),
    }
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def replicaset(name: str, replicas: int, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


def evict(core: kubernetes.client.CoreV1Api, name: str) -> Any:
    return core.create_namespaced_pod_eviction(
        name, "default", {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    )


def evict_error(core: kubernetes.client.CoreV1Api, name: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as err:
        evict(core, name)
    return err.value.status, json.loads(err.value.body)


def test_eviction_without_a_budget_is_201_and_deletes_the_pod_gracefully(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), pod("p", "n1")])
    evict(core, "p")
    assert [r.status for r in kubeapi.requests.filter(subresource="eviction")] == [201]
    terminating = kubeapi.get("pods", "p", "default")
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    wait_until(
        lambda: kubeapi.get("pods", "p", "default") is None, timeout=5, what="pod gone after 30s x 0.05"
    )


def test_min_available_blocks_with_429_and_a_disruption_budget_cause(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            pod("a", labels={"app": "w"}),
            pod("b", labels={"app": "w"}),
            pdb("w-pdb", {"matchLabels": {"app": "w"}}, minAvailable=2),
        ]
    )
    code, body = evict_error(core, "a")
    assert (code, body["reason"]) == (429, "TooManyRequests")
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget w-pdb needs 2 healthy pods and has 2 currently",
        }
    ]
    assert kubeapi.must_get("pods", "a", "default")["metadata"].get("deletionTimestamp") is None


def test_min_available_allows_exactly_the_spare_healthy_pods(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(
        [node("n1")]
        + [pod(f"p{i}", labels={"app": "w"}) for i in range(3)]
        + [pdb("w-pdb", {"matchLabels": {"app": "w"}}, minAvailable=1)]
    )
    evict(core, "p0")
    evict(core, "p1")
    code, body = evict_error(core, "p2")
    assert code == 429
    assert "needs 1 healthy pods and has 1 currently" in body["details"]["causes"][0]["message"]


def test_unready_pods_do_not_count_as_healthy(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    kubeapi.seed(
        [
            node("n1"),
            pod("ok", labels={"app": "w"}),
            pod("sick", labels={"app": "w"}, ready=False),
            pod("ok2", labels={"app": "w"}),
            pdb("w-pdb", {"matchLabels": {"app": "w"}}, minAvailable=2),
        ]
    )
    assert evict_error(core, "ok")[0] == 429
    evict(core, "sick")  # unhealthy pod, budget satisfied: IfHealthyBudget lets it go


def test_percentages_and_max_unavailable_use_the_controllers_scale(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            node("n2"),
            replicaset("web", 4, "web"),
            pdb("web-pdb", {"matchLabels": {"app": "web"}}, maxUnavailable="25%"),
        ]
    )
    wait_until(
        lambda: (
            len(
                [
                    p
                    for p in kubeapi.list("pods", "default", "app=web")
                    if p["status"].get("phase") == "Running"
                ]
            )
            == 4
        ),
        what="4 running pods",
    )
    budget = wait_until(
        lambda: (
            (kubeapi.get("poddisruptionbudgets", "web-pdb", "default") or {})
            .get("status", {})
            .get("disruptionsAllowed")
            == 1
            and kubeapi.get("poddisruptionbudgets", "web-pdb", "default")
        )
    )
    assert budget["status"]["expectedPods"] == 4 and budget["status"]["desiredHealthy"] == 3
    first, second = sorted(p["metadata"]["name"] for p in kubeapi.list("pods", "default", "app=web"))[:2]
    evict(core, first)
    assert evict_error(core, second)[0] == 429


def test_a_pod_matched_by_two_budgets_is_a_500(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    kubeapi.seed(
        [
            node("n1"),
            pod("p", labels={"app": "w"}),
            pdb("one", {"matchLabels": {"app": "w"}}, minAvailable=0),
            pdb("two", {}, maxUnavailable=1),
        ]
    )
    code, body = evict_error(core, "p")
    assert code == 500
    assert "more than one PodDisruptionBudget" in body["message"]


def test_a_budget_without_selector_selects_nothing_and_an_empty_one_everything(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), pod("p"), pdb("none", None, minAvailable=5)])
    evict(core, "p")
    kubeapi.seed([pod("q"), pdb("all", {}, minAvailable=5)])
    assert evict_error(core, "q")[0] == 429


def test_evicting_a_missing_pod_is_404(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        evict(core, "ghost")
    assert err.value.status == 404


def test_deleting_a_pod_with_grace_marks_it_terminating_then_removes_it(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.time_factor = 0.1
    kubeapi.seed([node("n1"), pod("p", "n1")])
    core.delete_namespaced_pod("p", "default", grace_period_seconds=5)
    assert core.read_namespaced_pod("p", "default").metadata.deletion_grace_period_seconds == 5
    wait_until(lambda: kubeapi.get("pods", "p", "default") is None, timeout=5, what="pod removed after 0.5s")
    zero = kubeapi.seed(pod("q", "n1"))[0]
    core.delete_namespaced_pod("q", "default", grace_period_seconds=0)
    assert kubeapi.get("pods", "q", "default") is None and zero["metadata"]["uid"]


def test_replicaset_pods_evicted_from_a_cordoned_node_come_back_ready_on_another_node(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(
        [
            node("n1"),
            node("n2"),
            replicaset("web", 2, "web"),
            pdb("web-pdb", {"matchLabels": {"app": "web"}}, minAvailable=2),
        ]
    )
    pods = wait_until(
        lambda: (
            (found := kubeapi.list("pods", "default", "app=web"))
            and len(found) == 2
            and all(p["status"]["phase"] == "Running" for p in found)
            and found
        ),
        what="2 running",
    )
    for p in pods:
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert {p["spec"]["nodeName"] for p in pods} == {"n1", "n2"}
    victim = next(p for p in pods if p["spec"]["nodeName"] == "n1")["metadata"]["name"]
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    assert evict_error(core, victim)[0] == 429
    kubeapi.patch("poddisruptionbudgets", "web-pdb", {"spec": {"minAvailable": 1}}, "default")
    evict(core, victim)

    def running_on_n2() -> list[str]:
        return [
            p["metadata"]["name"]
            for p in kubeapi.list("pods", "default", "app=web", "spec.nodeName=n2")
            if p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")
        ]

    replacement = wait_until(lambda: len(running_on_n2()) == 2 and running_on_n2(), what="replacement on n2")
    assert victim not in replacement


def test_statefulset_pods_come_back_with_the_same_name(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    sts = replicaset("db", 1, "db")
    sts["kind"] = "StatefulSet"
    kubeapi.seed([node("n1"), node("n2"), sts])
    first = wait_until(lambda: kubeapi.get("pods", "db-0", "default"), what="db-0")
    core.patch_node(first["spec"]["nodeName"], {"spec": {"unschedulable": True}})
    evict(core, "db-0")
    back = wait_until(
        lambda: (
            (p := kubeapi.get("pods", "db-0", "default"))
            and p["metadata"]["uid"] != first["metadata"]["uid"]
            and p
        ),
        timeout=10,
        what="db-0 recreated",
    )
    assert back["spec"]["nodeName"] != first["spec"]["nodeName"]


def test_daemonset_pods_run_on_every_node_and_carry_owner_references(kubeapi: KubeApi) -> None:
    ds = replicaset("agent", 0, "agent")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    kubeapi.seed([node("n1"), node("n2", unschedulable=True), ds])
    pods = wait_until(
        lambda: len(found := kubeapi.list("pods", "default", "app=agent")) == 2 and found, what="2 ds pods"
    )
    assert {p["spec"]["nodeName"] for p in pods} == {"n1", "n2"}
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"DaemonSet"}


def test_deployments_run_through_a_replicaset(kubeapi: KubeApi, apps: kubernetes.client.AppsV1Api) -> None:
    dep = replicaset("api", 2, "api")
    dep["kind"] = "Deployment"
    kubeapi.seed([node("n1"), dep])
    wait_until(
        lambda: (apps.read_namespaced_deployment("api", "default").status.ready_replicas or 0) == 2,
        what="deployment ready",
    )
    rs = apps.list_namespaced_replica_set("default").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"


def test_a_dry_run_eviction_answers_but_deletes_nothing(kubeapi: KubeApi) -> None:
    kubeapi.seed([node("n1"), pod("p", "n1")])
    code, _ = http(
        kubeapi,
        "POST",
        "/api/v1/namespaces/default/pods/p/eviction?dryRun=All",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}},
    )
    assert code == 201
    assert kubeapi.must_get("pods", "p", "default")["metadata"].get("deletionTimestamp") is None


def test_pods_on_a_node_with_an_external_kubelet_are_left_for_it_to_start(kubeapi: KubeApi) -> None:
    external = node("real")
    external["metadata"]["annotations"] = {"testbed.shimshift.io/external-kubelet": "true"}
    kubeapi.seed(
        [
            external,
            node("sim"),
            pod("theirs", "real", phase="Pending", ready=False),
            pod("ours", "sim", phase="Pending", ready=False),
        ]
    )
    wait_until(
        lambda: kubeapi.must_get("pods", "ours", "default")["status"]["phase"] == "Running",
        what="ours running",
    )
    time.sleep(0.3)  # ten start-up delays at the test time factor
    assert kubeapi.must_get("pods", "theirs", "default")["status"]["phase"] == "Pending"
