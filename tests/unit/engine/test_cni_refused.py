"""The facts step refuses exactly the nodes the plan blocks for their network: over every combination
of the CNI cases (the configurations in containerd's conf_dir, a CNI DaemonSet that writes one, the
kubelet's network flags, kubenet with and without a podCIDR on the Node), the plan's CNI blockers and
the run's refusal agree, and the run says the plan's words."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.planning.build import build_plan
from shimshift.planning.report import PlanReport
from shimshift.steps.facts.cni import NETWORK_FLAGS
from shimshift.steps.facts.parse import parse_facts
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest
from tests.unit.planning.factory import cluster, controller, node, pod, spec
from tests.unit.playbooks.probe import node_files, probe_output

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
CONFIGS = {
    "10-calico.conflist": json.dumps({"name": "k8s", "plugins": [{"type": "calico"}, {"type": "portmap"}]}),
    "05-broken.conf": '{"name": "x"}',
    "20-flannel.conflist": json.dumps({"name": "cbr0", "plugins": [{"type": "flannel"}]}),
}
FLAGS = [
    "--network-plugin=cni",
    "--network-plugin=kubenet",
    "--network-plugin=cni --cni-conf-dir=/etc/kubernetes/cni/net.d",
    "--network-plugin=cni --cni-bin-dir=/opt/a,/opt/b",
    "",
]
CNI_CODES = {"CniConfigMissing", "CniConfigInvalid"}
FLAG_CODES = {"KubeletFlagRefused", "CriDockerdFlagRefused"}


def facts_for(configs: list[str], flags: str) -> NodeFacts:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/var/lib/kubelet/kubeadm-flags.env"] = (
        f'KUBELET_KUBEADM_ARGS="{flags} --pod-infra-container-image=k8s.gcr.io/pause:3.6"\n'
    )
    overrides: dict[str, tuple[str, str]] = {"cni-bin:/opt/cni/bin": ("calico\nportmap\n", "0")}
    for conf in ("/etc/cni/net.d", "/etc/kubernetes/cni/net.d"):
        overrides[f"cni-conf:{conf}"] = ("".join(f"{n}\n" for n in configs), "0")
        for n in configs:
            overrides[f"cnifile:{conf}/{n}"] = (CONFIGS[n], "0")
    return parse_facts("n1", probe_output(files, overrides=overrides), kubelet_version="v1.23.17")


def with_pod_cidr(raw: dict[str, Any], cidr: str) -> dict[str, Any]:
    if cidr:
        raw["spec"]["podCIDR"] = cidr
    return raw


def network_blockers(report: PlanReport) -> list[str]:
    return [
        f"{b.message}: {b.advice}"
        for b in report.blockers
        if b.code in CNI_CODES
        or (b.code in FLAG_CODES and b.subject.split()[-1].lstrip("-") in NETWORK_FLAGS)
    ]


SUBSETS = [sorted(c) for n in range(len(CONFIGS) + 1) for c in itertools.combinations(CONFIGS, n)]


@pytest.mark.parametrize(
    ("configs", "flags", "writer", "cidr"),
    list(itertools.product(SUBSETS, FLAGS, (False, True), ("", "10.244.1.0/24"))),
)
def test_the_facts_step_refuses_exactly_the_nodes_the_plan_blocks_for_their_network(
    configs: list[str], flags: str, writer: bool, cidr: str
) -> None:
    facts = facts_for(configs, flags)
    conf_dir = "/etc/kubernetes/cni/net.d" if "cni-conf-dir" in flags else "/etc/cni/net.d"
    agents = [pod("canal-x", owner=("DaemonSet", "canal"), host_paths={"cni": conf_dir})] if writer else []
    report = build_plan(
        spec(),
        cluster(
            nodes=[with_pod_cidr(node("n1", labels={"pool": "workers"}), cidr)],
            pods=agents,
            controllers=[controller("DaemonSet", "canal", replicas=None)],
        ),
        {"n1": facts},
        NOW,
    )
    blockers = network_blockers(report)
    other = [b for b in report.blockers if f"{b.message}: {b.advice}" not in blockers]
    assert other == []  # the profile's node is otherwise clean: any refusal is the network's

    clock = Clock()
    writers: dict[str, tuple[str, ...]] = {conf_dir: ("canal",)} if writer else {}
    fake = FakeCluster([FakeNode("n1", cni_writers=writers, pod_cidrs=(cidr,) if cidr else ())], clock)
    nodes = FakeNodes(fake)
    nodes.node_facts["n1"] = facts
    fake.create(manifest())
    run_to_end(fake, nodes, clock)

    record = fake.status().node("n1")
    assert record is not None
    (step,) = [s for s in record.steps if s.id == StepId.FACTS]
    if blockers:
        assert record.phase == NodePhase.FAILED and step.state == StepState.FAILED
        assert any(b in step.message for b in blockers), (step.message, blockers)
        assert StepId.CORDON not in {s.id for s in record.steps}
    else:
        assert step.state == StepState.DONE, step.message


def test_the_cases_cover_both_sides() -> None:
    """The generated cases include nodes the plan blocks for each reason, and clean ones."""

    def plan(configs: list[str], flags: str) -> list[str]:
        facts = facts_for(configs, flags)
        return network_blockers(build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW))

    assert plan(["10-calico.conflist"], "--network-plugin=cni") == []
    assert "holds no CNI configuration" in plan([], "--network-plugin=cni")[0]
    assert "05-broken.conf is not a CNI configuration" in plan(["05-broken.conf"], "")[0]
    assert "no spec.podCIDR" in plan(["10-calico.conflist"], "--network-plugin=kubenet")[0]
    assert "--cni-bin-dir" in plan(["10-calico.conflist"], FLAGS[3])[0]
