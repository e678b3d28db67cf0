"""The node that runs the cluster's only API server: found from its kube-apiserver mirror pod and the
default/kubernetes Endpoints, skipped without spec.rollout.allowApiDowntime, last of all with it."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.migration import parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import MigrationStatus, NodePhase, NodeRecord
from shimshift.planning.apiserver import (
    ApiServers,
    api_server_hosts,
    endpoint_addresses,
    sole_api_nodes,
    static_pod_image_findings,
)
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Cluster, Container, Node, Pod
from shimshift.planning.report_formats import report_files
from shimshift.planning.rollout import decide
from shimshift.planning.selection import NodeSkipReason, select_nodes
from shimshift.planning.waves import plan_waves
from shimshift.resources import load_crd

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CP = {"node-role.kubernetes.io/control-plane": "", "pool": "all"}
WORKER = {"pool": "all"}


def spec(**rollout: Any) -> NodeMigrationSpec:
    raw = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "m", "uid": "u", "generation": 1},
        "spec": {
            "mode": "Migrate",
            "nodeSelector": {"matchLabels": {"pool": "all"}},
            "rollout": rollout,
            "ssh": {"privateKeySecretRef": {"name": "k"}, "knownHostsSecretRef": {"name": "h"}},
        },
    }
    return parse_nodemigration(raw, load_crd()).spec


def finished(records: tuple[NodeRecord, ...], *names: str) -> MigrationStatus:
    """The status with `names` Succeeded."""
    return MigrationStatus(
        nodes=tuple(
            NodeRecord(name=r.name, phase=NodePhase.SUCCEEDED, finished_at="2026-01-01T00:00:00Z")
            if r.name in names
            else r
            for r in records
        )
    )


def nodes() -> tuple[Node, ...]:
    return (
        Node("cp1", CP, runtime_version="docker://20.10.24"),
        Node("w1", WORKER, runtime_version="docker://20.10.24"),
        Node("w2", WORKER, runtime_version="docker://20.10.24"),
    )


def apiserver_pod(node: str, **kw: Any) -> Pod:
    values: dict[str, Any] = {"labels": {"component": "kube-apiserver"}, "mirror": True}
    values.update(kw)
    return Pod("kube-system", f"kube-apiserver-{node}", node, **values)


SOLE = ApiServers(("cp1",), 1)


def test_a_node_runs_the_only_api_server_when_it_has_the_mirror_pod_and_the_endpoints_list_one() -> None:
    assert sole_api_nodes(SOLE) == {"cp1"}
    assert sole_api_nodes(ApiServers(("cp1", "cp2", "cp3"), 3)) == frozenset()
    assert sole_api_nodes(ApiServers((), 1)) == frozenset()  # an API server not run by a kubelet


def test_endpoints_that_cannot_be_read_take_the_one_mirror_pod_node_as_the_only_api_server() -> None:
    assert sole_api_nodes(ApiServers(("cp1",), None, "HTTP 403 Forbidden")) == {"cp1"}
    assert sole_api_nodes(ApiServers(("cp1", "cp2"), None, "HTTP 403 Forbidden")) == frozenset()


def test_only_a_mirror_pod_in_kube_system_counts_as_a_kube_apiserver_static_pod() -> None:
    pods = [
        apiserver_pod("cp1"),
        apiserver_pod("w1", mirror=False),  # a Deployment's pod named like one
        Pod("default", "kube-apiserver-w2", "w2", {"component": "kube-apiserver"}, mirror=True),
        apiserver_pod("cp9", deleting=True),
        Pod("kube-system", "kube-apiserver-cp2", "cp2", {}, mirror=True),  # no kubeadm label: by name
    ]
    assert api_server_hosts(pods) == ("cp1", "cp2")


def test_endpoint_addresses_counts_each_ready_address_once() -> None:
    raw = {
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}]},
            {"addresses": [{"ip": "10.0.0.1"}]},
        ]
    }
    assert endpoint_addresses(raw) == 1
    assert endpoint_addresses({}) == 0


def test_without_the_opt_in_the_node_is_skipped_with_a_reason_that_says_how_to_opt_in() -> None:
    selection = select_nodes(spec(), nodes(), SOLE)
    assert [n.name for n in selection.selected] == ["w1", "w2"]
    (skipped,) = selection.skipped
    assert (skipped.node, skipped.reason) == ("cp1", NodeSkipReason.SOLE_API_SERVER)
    assert "only API server" in skipped.message
    assert "spec.rollout.allowApiDowntime: true" in skipped.message
    assert "kube-system/kube-apiserver-cp1" in skipped.message
    assert "default/kubernetes list 1 address" in skipped.message
    # unknown (offline without pods, or a caller that did not read): nothing is skipped for it
    assert [n.name for n in select_nodes(spec(), nodes()).selected] == ["cp1", "w1", "w2"]


def test_with_the_opt_in_the_node_is_the_last_wave_after_the_operators_own_node() -> None:
    opted = spec(allowApiDowntime=True)
    selection = select_nodes(opted, nodes(), SOLE)
    assert [n.name for n in selection.selected] == ["cp1", "w1", "w2"]
    waves = plan_waves(opted.rollout, selection.selected, "w1", frozenset({"cp1"}))
    assert [w.nodes for w in waves] == [("w2",), ("w1",), ("cp1",)]
    assert [(w.runs_operator, w.api_downtime) for w in waves] == [
        (False, False),
        (True, False),
        (False, True),
    ]


def test_the_rollout_starts_the_api_server_node_only_when_every_other_node_is_done() -> None:
    opted = spec(allowApiDowntime=True, maxUnavailable=5)
    status = MigrationStatus()
    first = decide(opted, status, nodes(), NOW, api=SOLE, operator_node="w2")
    assert first.start == ("w1",)
    assert "cp1 runs the only API server: migrated last of all" in first.message
    second = decide(opted, finished(first.nodes, "w1"), nodes(), NOW, api=SOLE, operator_node="w2")
    assert second.start == ("w2",)  # the operator's node before the API server's
    third = decide(opted, finished(second.nodes, "w1", "w2"), nodes(), NOW, api=SOLE, operator_node="w2")
    assert third.start == ("cp1",)


def test_a_rollout_without_the_opt_in_ends_succeeded_and_names_the_node_it_left() -> None:
    records = decide(spec(), MigrationStatus(), nodes(), NOW, api=SOLE).nodes
    decision = decide(spec(), finished(records, "w1", "w2"), nodes(), NOW, api=SOLE)
    assert decision.start == ()
    assert "every selected node runs containerd but cp1, skipped" in decision.message
    assert "spec.rollout.allowApiDowntime: true" in decision.message
    cp1 = next(r for r in decision.nodes if r.name == "cp1")
    assert cp1.phase == NodePhase.SKIPPED and "only API server" in cp1.skip_reason


def _report(s: NodeMigrationSpec, api: ApiServers | None, pods: tuple[Pod, ...] = ()) -> dict[str, Any]:
    cluster = Cluster(nodes(), pods, (), ())
    report = build_plan(s, cluster, {}, NOW, name="m", api_servers=api)
    data: dict[str, Any] = json.loads(report_files(report)["report.json"])
    return data


def _codes(report: dict[str, Any]) -> set[str]:
    found = [*report["blockers"], *report["warnings"], *report["notes"]]
    return {f["code"] for f in found}


def test_the_plan_report_says_the_node_is_skipped_and_how_to_opt_in() -> None:
    report = _report(spec(), SOLE)
    assert [s["node"] for s in report["skipped"]] == ["cp1"]
    warning = next(f for f in report["warnings"] if f["code"] == "SoleApiServerSkipped")
    assert "cp1" in warning["message"] and "allowApiDowntime: true" in warning["advice"]


def test_the_plan_report_puts_an_opted_in_node_last_and_says_the_api_is_down_during_its_switch() -> None:
    report = _report(spec(allowApiDowntime=True), SOLE)
    last = report["waves"][-1]
    assert last["nodes"] == ["cp1"] and last["apiDowntime"] is True
    assert not any(w["apiDowntime"] for w in report["waves"][:-1])
    finding = next(f for f in report["warnings"] if f["code"] == "ApiDowntime")
    assert finding["node"] == "cp1"
    assert "the Kubernetes API is unavailable during its switch" in finding["message"]
    markdown = report_files(
        build_plan(spec(allowApiDowntime=True), Cluster(nodes(), (), (), ()), {}, NOW, api_servers=SOLE)
    )["report.md"]
    assert "runs the only API server: migrated last of all, the API unavailable during its switch" in markdown


def test_endpoints_that_cannot_be_read_are_a_finding_of_the_plan() -> None:
    report = _report(spec(), ApiServers(("cp1",), None, "HTTP 403 Forbidden"))
    finding = next(f for f in report["warnings"] if f["code"] == "ApiEndpointsUnreadable")
    assert "HTTP 403 Forbidden" in finding["message"] and "cp1" in finding["message"]
    assert [s["node"] for s in report["skipped"]] == ["cp1"]


def test_an_offline_plan_judges_from_the_snapshots_mirror_pods_and_says_it_had_no_endpoints() -> None:
    report = _report(spec(), None, (apiserver_pod("cp1"),))
    assert [s["node"] for s in report["skipped"]] == ["cp1"]
    assert {"SoleApiServerSkipped", "ApiEndpointsUnreadable"} <= _codes(report)


APISERVER_IMAGE = "registry.k8s.io/kube-apiserver:v1.24.17"


def _facts() -> NodeFacts:
    return NodeFacts(
        node="cp1",
        docker_version="20.10.24",
        containerd_version="1.6.20",
        images=(
            DockerImage("sha256:" + "a" * 64, (APISERVER_IMAGE,), size=100, in_use=True),
            DockerImage("sha256:" + "b" * 64, ("registry.k8s.io/pause:3.6",), size=1, in_use=True),
        ),
    )


def test_a_static_pod_image_the_images_step_leaves_in_docker_is_a_warning_on_the_api_servers_node() -> None:
    pods = (apiserver_pod("cp1", containers=(Container("kube-apiserver", APISERVER_IMAGE),)),)
    narrowed = spec(allowApiDowntime=True)
    narrowed = replace(narrowed, images=replace(narrowed.images, include=("docker.io/library/*",)))
    (finding,) = static_pod_image_findings(narrowed, "cp1", pods, _facts())
    assert finding.code == "StaticPodImageNotMigrated" and finding.subject == "kube-system/kube-apiserver-cp1"
    assert APISERVER_IMAGE in finding.message and "include" in finding.message
    # by default every image of Docker's is moved before the switch, the static pods' too
    assert static_pod_image_findings(spec(allowApiDowntime=True), "cp1", pods, _facts()) == []
    report = build_plan(
        narrowed, Cluster(nodes(), pods, (), ()), {"cp1": _facts()}, NOW, name="m", api_servers=SOLE
    )
    assert "StaticPodImageNotMigrated" in {f.code for f in report.warnings}
