"""The operator process (`shimshift run`) against the real API server (behind the fault proxy, the
operator as the chart's ServiceAccount: `tests.e2e.realapi`), with simulated node steps.

What an SRE fears is asserted from the cluster itself: cordons left behind, PDBs violated (replayed
from a watch recorded from the test's start), pods deleted instead of evicted, work done twice.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import Kubectl, find_kubectl
from testbed.ports import free_port

from shimshift.kube.api import USER_AGENT
from shimshift.model import keys
from shimshift.model.canary import canary_name
from shimshift.model.status import Condition, NodePhase, Phase
from tests.e2e.conftest import (
    Operator,
    eventually,
    migration,
    node,
    operator_namespace,
    status_of,
    web,
    web_pods,
)
from tests.e2e.history import min_healthy_after_ready, operator_requests
from tests.e2e.simnodes import NOT_READY_MESSAGE, read_state

pytestmark = [pytest.mark.e2e, pytest.mark.realapi]

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
PEERING = "shimshift"  # the chart's ClusterKopfPeering (values.yaml peering.name)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
            return str(response.read().decode())
    except OSError:
        return ""


def table(cluster: KubeApi, path: str) -> dict[str, Any]:
    if hasattr(cluster, "table"):  # the real server: TLS and the admin's certificate
        real: dict[str, Any] = cluster.table(path)
        return real
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        cluster.url + path, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http only
        data: dict[str, Any] = json.loads(response.read())
        return data


class Watcher(threading.Thread):
    """Samples the cluster while the operator works: cordons at once, printer columns seen."""

    def __init__(self, cluster: KubeApi) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.max_cordoned = 0
        self.max_scale_down_disabled = 0  # nodes carrying the autoscaler annotation shimshift set
        self.rows: list[list[Any]] = []

    def run(self) -> None:
        while not self.stop.wait(0.05):
            nodes = self.cluster.list("nodes")
            ours = sum(
                1 for n in nodes if keys.CORDONED_BY_ANNOTATION in (n["metadata"].get("annotations") or {})
            )
            self.max_cordoned = max(self.max_cordoned, ours)
            kept_off = sum(
                1
                for n in nodes
                if (n["metadata"].get("annotations") or {}).get(keys.SCALE_DOWN_DISABLED_ANNOTATION) == "true"
                and keys.SCALE_DOWN_DISABLED_BY_ANNOTATION in (n["metadata"].get("annotations") or {})
            )
            self.max_scale_down_disabled = max(self.max_scale_down_disabled, kept_off)
            try:
                rows = table(self.cluster, "/apis/shimshift.io/v1alpha1/nodemigrations").get("rows") or []
            except OSError:
                continue
            self.rows.extend(r["cells"] for r in rows)


def test_migrate_mode_moves_four_nodes_two_at_a_time_without_violating_the_pdb(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path, tmp_path: Path
) -> None:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl")
    kubectl = Kubectl(binary, cluster.kubeconfig, tmp_path / "kubectl-cache")
    cluster.seed([node(f"w{i}") for i in range(1, 5)])
    cluster.seed(web(replicas=4, min_available=3))
    eventually(lambda: sum(_ready(p) for p in web_pods(cluster)) == 4, 10, "web pods ready")
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.05")
    operator.start()
    watcher = Watcher(cluster)
    watcher.start()
    before = len(cluster.requests)
    # the canary runs on each node before its uncordon (the kubelet stand-in runs `echo` and serves its log)
    cluster.seed(migration(rollout={"maxUnavailable": 2}, verify={"canary": {"image": "busybox:1.36"}}))
    waiter = kubectl.popen("wait", "--for=condition=Complete", "nm/m", "--timeout=90s")

    try:
        eventually(
            lambda: status_of(cluster).phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED), 90, "the end"
        )
        out, err = waiter.communicate(timeout=30)
    finally:
        watcher.stop.set()
        watcher.join(timeout=5)
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    status = status_of(cluster)
    assert status.phase == Phase.SUCCEEDED, operator.logs()[-3000:]
    assert waiter.returncode == 0, err
    assert "condition met" in out, out

    for n in cluster.list("nodes"):
        meta, spec = n["metadata"], n["spec"]
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert _ready(n)
        assert not spec.get("unschedulable"), meta["name"]
        assert meta["labels"][keys.RUNTIME_LABEL] == keys.RUNTIME_LABEL_VALUE
        assert keys.LOCK_ANNOTATION not in (meta.get("annotations") or {})
        assert keys.SCALE_DOWN_DISABLED_ANNOTATION not in (meta.get("annotations") or {})
        assert keys.SCALE_DOWN_DISABLED_BY_ANNOTATION not in (meta.get("annotations") or {})
    assert 0 < watcher.max_cordoned <= 2
    assert 0 < watcher.max_scale_down_disabled <= 2  # the cluster autoscaler kept off the nodes in flight
    eventually(lambda: sum(_ready(p) for p in web_pods(cluster)) == 4, 10, "web pods ready again")
    assert min_healthy_after_ready(cluster, 4) >= 3
    during = list(cluster.requests)[before:]
    # the drain evicts, never deletes (only the canary pods, the operator's own, are deleted once judged)
    deleted = [r for r in during if r.method == "DELETE" and r.resource == "pods"]
    assert {r.name for r in deleted} == {canary_name(f"w{i}") for i in range(1, 5)}, deleted
    assert [r for r in during if r.resource == "pods" and r.subresource == "eviction" and r.status == 201]
    progress = {(row[2], row[3]) for row in watcher.rows}  # (Phase, Done) printer columns
    assert ("Progressing", "0/4") in progress or ("Progressing", "2/4") in progress, progress
    assert any(row[4] for row in watcher.rows), "the Current column never named a node"
    for i in range(1, 5):
        changes = read_state(sim_dir, f"w{i}")["changes"]
        assert all(changes.get(op) == 1 for op in NODE_CHANGES), changes
    for record in status.nodes:
        verify = next(s for s in record.steps if s.id == "verify")
        assert "ran and echoed its token" in verify.message, (record.name, verify.message)
    calls = operator_requests(during)
    assert calls and all(r.user_agent for r in during if r.resource)
    own = [r for r in calls if r.user_agent.startswith(USER_AGENT)]
    canary = [
        r
        for r in own
        if r.name.startswith("shimshift-canary-")  # its log, its deletion
        or keys.CANARY_LABEL in r.query.get("labelSelector", "")  # its LIST and watch
        or "shimshift-canary-" in r.field_selector  # its Events
        or (
            r.method == "POST"
            and str((r.body or {}).get("metadata", {}).get("name", "")).startswith("shimshift-canary-")
        )
    ]
    print(
        f"API calls per migrated node (4 nodes, canary included): {len(calls) / 4:.0f} with kopf's, "
        f"{len(own) / 4:.0f} the operator's own client, {len(canary) / 4:.0f} of them the canary's"
    )


def test_an_admin_cordoned_node_stays_cordoned_after_migration(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    cluster.seed([node("w1", unschedulable=True), node("w2")])
    operator = operator_factory()
    metrics_port, health_port = free_port(), free_port()
    operator.extra_args = [
        "--metrics-port",
        str(metrics_port),
        "--liveness",
        f"http://127.0.0.1:{health_port}/healthz",
    ]
    operator.start()
    cluster.seed(migration(rollout={"maxUnavailable": 2}))

    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 60, "success")
    eventually(lambda: _get(f"http://127.0.0.1:{health_port}/healthz"), 10, "the health endpoint")
    scraped = _get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert 'shimshift_nodes{migration="m",phase="Succeeded"} 2.0' in scraped
    assert 'shimshift_step_duration_seconds_count{outcome="ok",step="switch"} 2.0' in scraped
    assert re.search(
        r'shimshift_api_requests_total\{method="PATCH",resource="nodemigrations/status"\} [1-9]', scraped
    )

    w1, w2 = cluster.get("nodes", "w1"), cluster.get("nodes", "w2")
    assert w1 is not None and w2 is not None
    assert w1["spec"]["unschedulable"] is True
    assert not w2["spec"].get("unschedulable")
    record = status_of(cluster).node("w1")
    assert record is not None and record.was_unschedulable is True


def test_a_pdb_that_never_allows_eviction_times_out_uncordons_and_names_pdb_and_pod(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    cluster.seed([node("w1")])
    cluster.seed(web(replicas=1, min_available=1))
    eventually(lambda: sum(_ready(p) for p in web_pods(cluster)) == 1, 10, "web pod ready")
    (pod,) = web_pods(cluster)
    pod_name = f"default/{pod['metadata']['name']}"
    operator_factory().start()
    cluster.seed(migration(drain={"timeout": "4s"}))

    eventually(lambda: status_of(cluster).phase == Phase.PAUSED, 60, "the rollout to pause")

    record = status_of(cluster).node("w1")
    # staged first (backup, configure, images before the cordon): the drain's timeout rolls those back
    assert record is not None and record.phase == NodePhase.ROLLED_BACK
    assert record.last_error is not None
    assert "default/web-pdb" in record.last_error.message and pod_name in record.last_error.message
    w1 = cluster.get("nodes", "w1")
    assert w1 is not None and not w1["spec"].get("unschedulable")
    events = cluster.list("events", namespace=operator_namespace(cluster))
    for kind in ("NodeMigration", "Node"):
        about = [
            e for e in events if e["involvedObject"]["kind"] == kind and e["reason"] == "EvictionBlocked"
        ]
        assert about and "default/web-pdb" in about[0]["message"] and pod_name in about[0]["message"], kind
    assert cluster.get("pods", pod["metadata"]["name"], "default") is not None


def test_a_node_whose_containerd_breaks_rolls_back_and_the_rollout_pauses(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1"), node("w2")])
    operator_factory(SHIMSHIFT_SIM_BREAK="w1").start()
    cluster.seed(migration())

    eventually(lambda: status_of(cluster).phase == Phase.PAUSED, 60, "the rollout to pause")

    status = status_of(cluster)
    w1 = status.node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK
    assert status.node("w2") is None  # never started: no NodeMigrationNode
    stored = (cluster.get("nodemigrations.shimshift.io", "m") or {})["status"]
    assert stored["summary"]["pending"] == 1 and stored["failedNodes"][0]["name"] == "w1"
    node_w1 = cluster.get("nodes", "w1")
    assert node_w1 is not None
    assert node_w1["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert not node_w1["spec"].get("unschedulable") and _ready(node_w1)
    assert read_state(sim_dir, "w1")["changes"].get("undo") == 1
    paused = next(c for c in status.conditions if c.type == "Paused")
    assert paused.status == "True" and paused.reason == "MaxFailures" and "w1" in paused.message


def test_a_node_not_ready_on_containerd_rolls_back_at_its_verify_timeout_naming_the_kubelets_reason(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    cluster.seed([node("w1")])
    operator_factory(SHIMSHIFT_SIM_NOT_READY="w1").start()
    cluster.seed(migration(verify={"timeout": "30s"}))

    eventually(lambda: status_of(cluster).phase == Phase.PAUSED, 120, "the rollout to pause")

    w1 = status_of(cluster).node("w1")
    assert w1 is not None and w1.phase == NodePhase.ROLLED_BACK and w1.last_error is not None
    assert w1.last_error.message == (
        "node w1 did not report Ready with a containerd:// runtime within 30s (spec.verify.timeout) "
        f"after the switch: Ready=False (KubeletNotReady: {NOT_READY_MESSAGE})"
    )
    events = cluster.list("events", namespace=operator_namespace(cluster))
    for kind in ("NodeMigration", "Node"):
        about = [e for e in events if e["involvedObject"]["kind"] == kind and e["reason"] == "StepFailed"]
        assert about and NOT_READY_MESSAGE in about[0]["message"], (kind, events)
    node_w1 = cluster.get("nodes", "w1")
    assert node_w1 is not None and _ready(node_w1) and not node_w1["spec"].get("unschedulable")


def test_deleting_a_migration_mid_flight_releases_the_node_before_the_object_goes(
    cluster: KubeApi, operator_factory: Callable[..., Operator]
) -> None:
    cluster.seed([node("w1")])
    cluster.seed(web(replicas=1, min_available=1))  # the drain waits on this budget forever
    operator_factory().start()
    cluster.seed(migration(drain={"timeout": "10m"}))
    eventually(lambda: (cluster.get("nodes", "w1") or {}).get("spec", {}).get("unschedulable"), 30, "cordon")
    obj = cluster.get("nodemigrations.shimshift.io", "m")
    assert obj is not None and keys.FINALIZER in obj["metadata"]["finalizers"]
    in_flight = (cluster.get("nodes", "w1") or {}).get("metadata", {}).get("annotations") or {}
    assert in_flight.get(keys.SCALE_DOWN_DISABLED_ANNOTATION) == "true"
    blocked = eventually(
        lambda: next(
            (c for c in status_of(cluster).conditions if c.type == "DrainBlocked" and c.status == "True"),
            None,
        ),
        30,
        "the DrainBlocked condition",
    )
    assert blocked.message == "the drain of node w1 waits on PodDisruptionBudget default/web-pdb"

    cluster.delete("nodemigrations.shimshift.io", "m")

    eventually(lambda: cluster.get("nodemigrations.shimshift.io", "m") is None, 30, "the object to go")
    w1 = cluster.get("nodes", "w1")
    assert w1 is not None and not w1["spec"].get("unschedulable")
    assert keys.LOCK_ANNOTATION not in (w1["metadata"].get("annotations") or {})
    assert keys.SCALE_DOWN_DISABLED_ANNOTATION not in (w1["metadata"].get("annotations") or {})
    assert keys.SCALE_DOWN_DISABLED_BY_ANNOTATION not in (w1["metadata"].get("annotations") or {})


def test_plan_mode_writes_the_report_to_a_configmap_and_changes_nothing(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1"), node("w2")])
    cluster.seed(web(replicas=2, min_available=1))
    operator_factory().start()
    before = len(cluster.requests)
    cluster.seed(migration(mode="Plan"))

    eventually(lambda: status_of(cluster).phase == Phase.PLANNED, 60, "the plan")

    status = status_of(cluster)
    namespace = operator_namespace(cluster)
    assert status.report_config_map == f"{namespace}/m-plan"
    cm = cluster.get("configmaps", "m-plan", namespace)
    assert cm is not None and cm["metadata"]["labels"][keys.REPORT_LABEL] == "m"
    report = json.loads(cm["data"]["report.json"])
    assert sorted(n["name"] for n in report["nodes"]) == ["w1", "w2"]
    writes = [r for r in list(cluster.requests)[before:] if r.method in ("PATCH", "PUT", "POST", "DELETE")]
    # the chart runs the operator in kopf peering: its heartbeat in the chart's peering object is the
    # operator's liveness, not a change the plan makes
    writes = [r for r in writes if (r.resource, r.name) != ("clusterkopfpeerings", PEERING)]
    touched = {(r.resource, r.subresource) for r in writes}
    assert touched <= {
        ("nodemigrations", ""),
        ("nodemigrations", "status"),
        ("configmaps", ""),
        ("events", ""),
    }
    assert not any(read_state(sim_dir, n)["changes"] for n in ("w1", "w2"))


def test_a_migration_the_operator_refuses_gets_a_condition_naming_the_field_and_nothing_happens(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1")])
    operator_factory().start()
    body = migration()
    del body["spec"]["ssh"]  # the schema allows it; the operator's checks do not in Migrate mode
    cluster.seed(body)

    eventually(lambda: status_of(cluster).phase == Phase.FAILED, 60, "the refusal")

    (condition,) = status_of(cluster).conditions
    assert condition.type == "Valid" and condition.status == "False" and condition.reason == "InvalidSpec"
    assert "spec.ssh" in condition.message
    w1 = cluster.get("nodes", "w1")
    assert w1 is not None and not w1["spec"].get("unschedulable")
    assert not read_state(sim_dir, "w1")["changes"]


def test_an_unexpected_error_in_a_reconcile_is_a_condition_and_a_warning_event_until_a_pass_succeeds(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    # An OverflowError is what int(inf) raised in the plan: not a ShimshiftError,
    # so before, kopf only logged it and retried every 60 s with nothing in status or Events.
    cluster.seed([node("w1")])
    operator = operator_factory(SHIMSHIFT_SIM_RAISE="w1:facts:2")
    operator.start()
    cluster.seed(migration(mode="Plan"))

    def failing() -> Condition | None:
        found = [c for c in status_of(cluster).conditions if c.type == "ReconcileError"]
        return found[0] if found and found[0].status == "True" else None

    condition = eventually(failing, 60, "the ReconcileError condition")
    assert condition.reason == "InternalError"
    assert "OverflowError" in condition.message and "cannot convert float infinity" in condition.message
    assert "Traceback" not in condition.message and len(condition.message) <= 500
    events = eventually(
        lambda: [
            e
            for e in cluster.list("events", namespace=operator_namespace(cluster))
            if e["involvedObject"]["kind"] == "NodeMigration" and e["reason"] == "InternalError"
        ],
        30,
        "the InternalError Event",
    )
    assert events[0]["type"] == "Warning" and "OverflowError" in events[0]["message"]

    # The third pass succeeds: the plan is written and the condition says the error is gone.
    eventually(lambda: status_of(cluster).phase == Phase.PLANNED, 60, "the plan after the retries")
    (cleared,) = [c for c in status_of(cluster).conditions if c.type == "ReconcileError"]
    assert cleared.status == "False"
    assert (sim_dir / "raised-w1-facts").read_text() == "2"
    assert "cannot convert float infinity" in operator.logs()  # the traceback is in the log only
