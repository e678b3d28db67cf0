"""Test affordances: seeding from YAML, the request log, fault injection, time factor, standalone mode."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi import KubeApi
from testbed.kubeapi.faults import RequestRecord
from testbed.kubeapi.standalone import standalone_server

from .conftest import node, pod, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def test_seeding_from_yaml_text_creates_namespaces_and_keeps_status(kubeapi: KubeApi) -> None:
    created = kubeapi.seed("""
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p, namespace: team-a}
  spec: {nodeName: n1, containers: [{name: c, image: busybox}]}
  status: {phase: Running}
""")
    assert [o["metadata"]["name"] for o in created] == ["n1", "p"]
    assert kubeapi.get("namespaces", "team-a") is not None
    assert kubeapi.must_get("pods", "p", "team-a")["status"]["phase"] == "Running"


def test_seeding_a_custom_resource_keeps_its_status(kubeapi: KubeApi, widgets: dict[str, Any]) -> None:
    kubeapi.seed(
        {
            "apiVersion": "example.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"mode": "Plan"},
            "status": {"phase": "Seeded"},
        }
    )
    assert kubeapi.must_get("widgets.example.io", "w", "default")["status"] == {"phase": "Seeded"}


def test_the_request_log_records_verbs_resources_selectors_and_statuses(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(node("n1"))
    core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    with pytest.raises(ApiException):
        core.read_node("ghost")
    lists = kubeapi.requests.filter(verb="list", resource="pods")
    assert [r.field_selector for r in lists] == ["spec.nodeName=n1"]
    patch = kubeapi.requests.filter(method="PATCH", resource="nodes", name="n1")[0]
    assert patch.body == {"spec": {"unschedulable": True}} and patch.status == 200
    assert kubeapi.requests.filter(verb="get", name="ghost")[0].status == 404


def test_a_fault_answers_the_next_n_matching_requests_then_stops(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1"), pod("p2", "n1"), pod("other", "n1")])
    rule = kubeapi.faults.add(429, times=2, method="POST", resource="pods", subresource="eviction", name="p2")
    body = {"metadata": {"name": "p2"}}
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod_eviction("p2", "default", body)
        assert err.value.status == 429
        assert json.loads(err.value.body)["reason"] == "TooManyRequests"
    core.create_namespaced_pod_eviction("other", "default", {"metadata": {"name": "other"}})
    core.create_namespaced_pod_eviction("p2", "default", body)
    assert rule.hits == 2


def test_a_random_fault_fails_about_its_rate_of_matching_requests_reproducibly_and_spares_watches(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed(node("n1"))

    def run(seed: int) -> list[int]:
        rule = kubeapi.faults.add_random(0.10, (429, 500, 409), seed=seed, resources=("nodes",))
        answers = []
        for i in range(400):
            try:
                if i % 2:
                    core.read_node("n1")
                else:
                    core.patch_node("n1", {"metadata": {"labels": {"i": str(i)}}})
                answers.append(200)
            except ApiException as e:
                answers.append(e.status)
        core.list_namespace()  # another resource: never considered
        assert rule.considered == 400 and rule.hits == sum(a != 200 for a in answers)
        kubeapi.faults.clear()
        return answers

    first = run(seed=4)
    failed = [(i, a) for i, a in enumerate(first) if a != 200]
    assert 0.07 <= len(failed) / len(first) <= 0.13, len(failed)
    assert {a for _, a in failed} == {429, 500, 409}
    assert all(i % 2 == 0 for i, a in failed if a == 409), "a read was answered with a conflict"
    assert run(seed=4) == first
    assert run(seed=6) != first

    kubeapi.faults.add_random(1.0, (500,), seed=1)
    with pytest.raises(ApiException):
        core.list_node()
    # _preload_content=False answers the raw urllib3 response, not the V1NodeList the client declares
    events = cast(
        urllib3.BaseHTTPResponse, core.list_node(watch=True, timeout_seconds=1, _preload_content=False)
    )
    assert events.status == 200
    events.release_conn()
    kubeapi.faults.clear()


def test_a_trigger_runs_once_after_the_first_committed_matching_write_and_before_the_answer(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1")])
    kubeapi.faults.add(409, times=1, method="PATCH", resource="nodes")  # a failed write does not fire it
    seen: list[tuple[int, bool]] = []

    def action(rec: RequestRecord) -> None:
        # runs on the server's loop: the change is already stored, the client has no answer yet
        stored = kubeapi.emulator.store.get(("", "nodes"), "", "n1")
        seen.append((rec.seq, bool(stored and stored.obj["spec"].get("unschedulable"))))

    trigger = kubeapi.faults.add_trigger(
        lambda rec: rec.verb == "patch" and rec.resource == "nodes" and rec.name == "n1", action
    )
    patch = {"spec": {"unschedulable": True}}
    with pytest.raises(ApiException):
        core.patch_node("n1", patch)
    assert seen == []
    core.patch_node("n1", patch)
    core.patch_node("n1", {"spec": {"unschedulable": False}})

    assert len(seen) == 1 and seen[0][1] is True
    assert trigger.fired is not None and trigger.fired.seq == seen[0][0]


def test_a_before_trigger_runs_instead_of_the_request_which_changes_nothing(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.seed([node("n1")])
    fired: list[int] = []
    kubeapi.faults.add_trigger(
        lambda rec: rec.verb == "patch", lambda rec: fired.append(rec.seq), before=True
    )

    with pytest.raises(ApiException) as err:
        core.patch_node("n1", {"spec": {"unschedulable": True}})

    assert err.value.status == 503 and len(fired) == 1
    assert not (kubeapi.get("nodes", "n1") or {})["spec"].get("unschedulable")
    core.patch_node("n1", {"spec": {"unschedulable": True}})  # once only
    assert (kubeapi.get("nodes", "n1") or {})["spec"]["unschedulable"] is True


def test_latency_can_be_added_without_failing_requests(
    kubeapi: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    kubeapi.faults.add_latency(0.3, verb="list", resource="nodes", times=1)
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started < 0.3


def test_cutting_watches_ends_open_streams(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    ended = threading.Event()

    def consume() -> None:
        list(
            kubernetes.watch.Watch().stream(
                core.list_node, resource_version=str(kubeapi.resource_version), timeout_seconds=30
            )
        )
        ended.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    wait_until(lambda: kubeapi.requests.filter(verb="watch", resource="nodes"), timeout=5, what="watch open")
    wait_until(lambda: kubeapi.cut_watches("nodes") == 1, timeout=5, what="one watch registered")
    assert ended.wait(timeout=5)


def test_the_time_factor_scales_grace_periods(kubeapi: KubeApi, core: kubernetes.client.CoreV1Api) -> None:
    kubeapi.time_factor = 0.01
    kubeapi.seed([node("n1"), pod("p", "n1")])
    started = time.monotonic()
    core.delete_namespaced_pod("p", "default", grace_period_seconds=100)
    wait_until(
        lambda: kubeapi.get("pods", "p", "default") is None, timeout=5, what="pod gone after 100s x 0.01"
    )
    assert time.monotonic() - started >= 0.9


def test_reset_returns_to_an_empty_cluster_with_default_namespaces(kubeapi: KubeApi) -> None:
    kubeapi.seed(node("n1"))
    kubeapi.reset()
    assert kubeapi.list("nodes") == []
    assert {n["metadata"]["name"] for n in kubeapi.list("namespaces")} >= {"default", "kube-system"}
    assert kubeapi.get("customresourcedefinitions", "kopfpeerings.kopf.dev") is not None


def test_the_standalone_server_writes_a_kubeconfig_and_serves_its_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(node("seeded")))
    kubeconfig = tmp_path / "kubeconfig"
    with standalone_server(kubeconfig, "--seed", str(seed)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        with client:
            names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_node().items]
        assert names == ["seeded"]
        process = server.process
    assert process.returncode == 0


def test_the_small_cluster_seed_comes_up_with_every_workload_running(kubeapi: KubeApi) -> None:
    kubeapi.seed(REPO / "testbed" / "kubeapi" / "seeds" / "small-cluster.yaml")

    def running() -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in kubeapi.list("pods"):
            if p["status"].get("phase") == "Running":
                app = p["metadata"]["labels"]["app"]
                counts[app] = counts.get(app, 0) + 1
        return counts

    wait_until(lambda: running() == {"node-exporter": 4, "web": 3, "db": 2}, what="all workloads running")
    web_nodes = {p["spec"]["nodeName"] for p in kubeapi.list("pods", "default", "app=web")}
    assert "cp-1" not in web_nodes, "the control-plane taint keeps ordinary pods away"
    budget = wait_until(
        lambda: (
            kubeapi.must_get("poddisruptionbudgets", "web", "default")["status"].get("currentHealthy") == 3
            and kubeapi.get("poddisruptionbudgets", "web", "default")
        )
    )
    assert budget["status"]["disruptionsAllowed"] == 1
