"""The operator's own pod on a node being migrated, on the real API server.

The chart's Deployment is created for real (the real controller manager makes its ReplicaSet and pods,
the real scheduler binds them, the real API server evicts them); what a kubelet would do with those
pods is done by `PodKubelet` below: for each pod bound to a node it starts the operator process
(`tests.e2e.run_operator`, simulated node steps) with the pod's downward API values resolved from the
pod object (SHIMSHIFT_POD_NAME, SHIMSHIFT_NAMESPACE, SHIMSHIFT_NODE_NAME), and when the pod is
evicted it kills that process (SIGKILL, as a kubelet does at the end of the pod's grace period: the
worst case, the operator stopped in the middle of its node's steps). The operator is a host process, not a container run by a kubelet; testbed/README.md says so.

Proven: the node the active replica runs on is planned last and migrated last; its drain evicts the
operator's pod; with one replica the Deployment's replacement pod (on a migrated node) resumes the
node from its NodeMigrationNode and finishes; with two a peer finishes it; no node change is made
twice, no node is left cordoned.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi

from shimshift.kube.lease import LEASE_ANNOTATION, parse_lease
from shimshift.model.status import NodePhase, Phase
from shimshift.model.timestamps import parse_iso
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.realapi import RealCluster
from tests.e2e.simnodes import read_state
from tests.unit.chart import helm

pytestmark = [pytest.mark.e2e, pytest.mark.realapi]

NAMESPACE = helm.NAMESPACE  # the operator's, where the chart's Deployment runs

NODES = ("w1", "w2", "w3", "w4")
NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")
PEERING = {
    "apiVersion": "kopf.dev/v1",
    "kind": "ClusterKopfPeering",
    "metadata": {"name": "shimshift"},
    "status": {},
}
#: the downward API fields the chart's Deployment names, as a kubelet resolves them
FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda pod: str(pod["metadata"]["name"]),
    "metadata.namespace": lambda pod: str(pod["metadata"]["namespace"]),
    "spec.nodeName": lambda pod: str(pod["spec"].get("nodeName") or ""),
}


def deployment(cluster: KubeApi, replicas: int) -> dict[str, Any]:
    """The chart's Deployment as rendered, with `replicas` and its pods on different nodes."""
    assert isinstance(cluster, RealCluster)
    chart = copy.deepcopy(helm.only(cluster.stack.docs, "Deployment"))
    chart["spec"]["replicas"] = replicas
    labels = chart["spec"]["selector"]["matchLabels"]
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
    pod_spec = chart["spec"]["template"]["spec"]
    pod_spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return dict(chart)


def downward_env(pod: dict[str, Any]) -> dict[str, str]:
    """The operator container's environment from the downward API, resolved from the pod object."""
    container = pod["spec"]["containers"][0]
    env = {}
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            env[var["name"]] = FIELDS[ref["fieldPath"]](pod)
    return env


@dataclass
class PodKubelet:
    """For the operator's pods what a kubelet does: run the operator for a bound pod, stop it when the
    pod is deleted (evicted). One `sync` per poll of the test."""

    cluster: KubeApi
    factory: Callable[..., Operator]
    selector: str
    logs: Path
    running: dict[str, tuple[str, Operator]] = field(default_factory=dict)  # pod -> (node, process)
    started: list[tuple[str, str]] = field(default_factory=list)  # (pod, node), in order
    stopped: list[tuple[str, str]] = field(default_factory=list)

    def sync(self) -> None:
        namespace = NAMESPACE
        pods = {
            p["metadata"]["name"]: p
            for p in self.cluster.list("pods", namespace=namespace, label_selector=self.selector)
        }
        for name, (where, op) in list(self.running.items()):
            pod = pods.get(name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                # SIGKILL: the end of the grace period, the worst case. Given SIGTERM, the evicted
                # operator finishes the pass it is in (the chart grants 60 s) and often the node with
                # it; killed, it leaves the node mid-step to whoever acts next.
                op.kill()
                del self.running[name]
                self.stopped.append((name, where))
        stopped = {pod for pod, _ in self.stopped}
        for name, pod in sorted(pods.items()):
            where = pod["spec"].get("nodeName")
            if (
                not where
                or name in self.running
                or name in stopped
                or pod["metadata"].get("deletionTimestamp")
            ):
                continue
            env = downward_env(pod)
            assert env["SHIMSHIFT_NODE_NAME"] == where and env["SHIMSHIFT_POD_NAME"] == name
            op = self.factory(
                **env,
                SHIMSHIFT_SIM_STEP_SECONDS="0.3",
                SHIMSHIFT_IDENTITY=name,  # the lease holder's name, as the pod name makes it
                SHIMSHIFT_LEASE_TTL="6",
            )
            op.workdir = self.logs / name  # each pod's operator its own log
            op.workdir.mkdir(parents=True, exist_ok=True)
            op.start()
            self.running[name] = (where, op)
            self.started.append((name, where))

    def stop_all(self) -> None:
        for _, op in self.running.values():
            op.stop()


def _holder(cluster: KubeApi) -> str:
    obj = cluster.get("nodemigrations.shimshift.io", "m") or {}
    return parse_lease((obj.get("metadata", {}).get("annotations") or {}).get(LEASE_ANNOTATION, ""))[0]


def _report(cluster: KubeApi) -> dict[str, Any]:
    namespace, name = status_of(cluster).report_config_map.split("/", 1)
    cm = cluster.get("configmaps", name, namespace) or {}
    data: dict[str, Any] = json.loads(cm["data"]["report.json"])
    return data


def _rollout(
    cluster: KubeApi, operator_factory: Callable[..., Operator], replicas: int, logs: Path
) -> dict[str, Any]:
    """Plan, then migrate, with the chart's Deployment of `replicas`; returns what the test checks."""
    if replicas > 1:
        cluster.seed(PEERING)
    cluster.seed([node(n) for n in NODES])
    dep = deployment(cluster, replicas)
    labels = dep["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    cluster.seed(dep)
    pods = PodKubelet(cluster, operator_factory, selector, logs)
    try:

        def all_running() -> bool:
            pods.sync()
            return len(pods.running) == replicas

        eventually(all_running, 90, f"{replicas} operator pod(s) bound and their operators started")
        if replicas > 1:  # kopf knows every replica's priority before there is work (test_replicas.py)

            def peered() -> bool:
                pods.sync()
                peering = cluster.get("clusterkopfpeerings.kopf.dev", "shimshift") or {}
                return len(peering.get("status") or {}) == replicas

            eventually(peered, 60, "every replica in the peering object")
        cluster.seed(migration(mode="Plan", rollout={"maxUnavailable": 1}))

        def planned() -> bool:
            pods.sync()
            return status_of(cluster).phase == Phase.PLANNED

        eventually(planned, 90, "the plan")
        holder = _holder(cluster)
        active_node = pods.running[holder][0] if holder else pods.started[0][1]
        report = _report(cluster)
        cluster.patch("nodemigrations.shimshift.io", "m", {"spec": {"mode": "Migrate"}})

        def finished() -> bool:
            pods.sync()
            return status_of(cluster).phase in {Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED}

        eventually(finished, 240, "the rollout to end")
        return {
            "active_pod": holder,
            "active_node": active_node,
            "report": report,
            "started": list(pods.started),
            "stopped": list(pods.stopped),
            "final_holder": _holder(cluster),
        }
    finally:
        pods.stop_all()


def _check_common(cluster: KubeApi, sim_dir: Path, seen: dict[str, Any]) -> None:
    active_node = seen["active_node"]
    # the plan said it: the active replica's node alone in the last wave
    last = seen["report"]["waves"][-1]
    assert last["nodes"] == [active_node] and last["runsOperator"] is True, seen["report"]["waves"]
    assert any(f["code"] == "RunsOperator" and f["node"] == active_node for f in seen["report"]["notes"])
    # and the rollout did it: started after every other node finished
    status = status_of(cluster)
    assert status.phase == Phase.SUCCEEDED, status.message
    records = {r.name: r for r in status.nodes}
    print({r.name: (r.started_at, r.finished_at) for r in status.nodes})
    assert [records[n].phase for n in NODES] == [NodePhase.SUCCEEDED] * len(NODES)
    started = parse_iso(records[active_node].started_at)
    assert started is not None
    for other in set(NODES) - {active_node}:
        finished = parse_iso(records[other].finished_at)
        assert finished is not None and finished <= started, (other, records[other].finished_at, started)
    # its drain evicted the active operator's pod, and that operator was stopped
    assert (seen["active_pod"], active_node) in seen["stopped"], seen
    # nothing done twice, nothing left cordoned
    for name in NODES:
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
        assert not (cluster.get("nodes", name) or {}).get("spec", {}).get("unschedulable"), name
    # no operator pod is left on a node it was evicted from... and every pod left runs somewhere else
    namespace = NAMESPACE
    left = [
        p for p in cluster.list("pods", namespace=namespace) if not p["metadata"].get("deletionTimestamp")
    ]
    assert all(p["spec"].get("nodeName") for p in left)


def test_one_replica_on_the_node_it_migrates_last_is_replaced_and_the_replacement_finishes(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path, tmp_path: Path
) -> None:
    seen = _rollout(cluster, operator_factory, 1, tmp_path)
    _check_common(cluster, sim_dir, seen)
    active_node = seen["active_node"]
    # the Deployment's replacement pod, bound elsewhere (its node is cordoned), ran an operator that
    # resumed the node: the steps after the eviction are the replacement's
    replacements = [(p, n) for p, n in seen["started"] if p != seen["active_pod"]]
    assert replacements, seen
    replacement, where = replacements[0]
    assert where != active_node
    by = read_state(sim_dir, active_node).get("by", {})
    assert by.get("finish") == replacement, by
    assert set(by.values()) <= {seen["active_pod"], replacement}, by
    print(f"operator pods (pod, node): started {seen['started']}, stopped {seen['stopped']}; steps by {by}")


def test_two_replicas_the_active_ones_node_goes_last_and_a_peer_finishes_it(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path, tmp_path: Path
) -> None:
    seen = _rollout(cluster, operator_factory, 2, tmp_path)
    _check_common(cluster, sim_dir, seen)
    active_node = seen["active_node"]
    by = read_state(sim_dir, active_node).get("by", {})
    # the evicted replica did not finish its own node: another replica did
    assert by.get("finish") not in ("", None, seen["active_pod"]), by
    assert seen["final_holder"] != seen["active_pod"]
    print(f"operator pods (pod, node): started {seen['started']}, stopped {seen['stopped']}; steps by {by}")
