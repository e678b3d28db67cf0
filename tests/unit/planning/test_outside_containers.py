"""Containers Docker runs outside the kubelet block a node unless the spec says they may stop, and the
plan says what the switch really does to them; RKE1, k3s and RKE2 nodes are refused with their path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shimshift.model.facts import Distribution, NodeFacts, OutsideContainer
from shimshift.planning.findings import Level
from shimshift.planning.outside import check_outside
from tests.unit.planning.factory import spec

SCRIPTS = Path(__file__).resolve().parents[3] / "operator" / "shimshift" / "data" / "playbooks" / "scripts"
REGISTRY = OutsideContainer("registry", "registry:2", "always")
ETCD = OutsideContainer("etcd", "quay.io/coreos/etcd:v3.4.13", "no")


def _facts(*containers: OutsideContainer, more: int = 0, **fields: object) -> NodeFacts:
    return NodeFacts(node="n1", outside_containers=containers, outside_containers_more=more, **fields)  # type: ignore[arg-type]


def test_the_switch_stops_docker_so_outside_containers_stop_with_it() -> None:
    # the fate the plan states rests on this: switch.sh stops docker under every policy
    switch = (SCRIPTS / "switch.sh").read_text()
    assert re.search(r"^stop_recorded \"\$state\" docker \|\| exit$", switch, re.M)


def test_by_default_they_are_a_blocker_naming_them_and_what_to_do() -> None:
    (f,) = check_outside(spec(), _facts(ETCD, REGISTRY))

    assert (f.code, f.level, f.node) == ("DockerContainersOutsideKubelet", Level.BLOCKER, "n1")
    assert "2 container(s)" in f.message
    assert "etcd (quay.io/coreos/etcd:v3.4.13)" in f.message
    assert "registry (registry:2, restart always)" in f.message
    assert "static pods" in f.advice and "spec.dockerOutsideContainers: Stop" in f.advice


def test_a_long_list_names_five_and_counts_the_rest_including_the_ones_facts_only_counted() -> None:
    many = tuple(OutsideContainer(f"job-{i}", "busybox", "no") for i in range(50))
    (f,) = check_outside(spec(), _facts(*many, more=7))

    assert "57 container(s)" in f.message
    assert "job-4 (busybox) and 52 more" in f.message
    assert "job-5 " not in f.message


def test_under_stop_they_are_listed_as_stopped_with_docker_not_blocked() -> None:
    (f,) = check_outside(spec(dockerOutsideContainers="Stop", docker="Stop"), _facts(REGISTRY))

    assert (f.code, f.level) == ("DockerContainersStopped", Level.WARNING)
    assert "registry (registry:2, restart always)" in f.message
    assert "stop with it" in f.message and "stay stopped" in f.message


def test_under_docker_keep_the_plan_says_restarting_ones_come_back_when_docker_starts() -> None:
    (f,) = check_outside(spec(dockerOutsideContainers="Stop"), _facts(ETCD, REGISTRY))

    assert "Docker enabled" in f.message and "at boot" in f.message
    assert "registry (restart policy always or unless-stopped) start again" in f.message
    assert "etcd (restart" not in f.message  # restart "no" stays stopped


def test_with_live_restore_the_plan_says_they_keep_running_without_dockerd() -> None:
    (f,) = check_outside(spec(), _facts(REGISTRY, daemon_json={"live-restore": True}))
    assert "keep running without a dockerd" in f.message
    assert "they stop with it" not in f.message


def test_no_outside_containers_no_finding() -> None:
    assert check_outside(spec(), _facts()) == []


@pytest.mark.parametrize(
    ("distribution", "code", "path"),
    [
        (Distribution.RKE1, "Rke1Node", "RKE2"),
        (Distribution.K3S, "K3sNode", "embedded containerd"),
        (Distribution.RKE2, "K3sNode", "already runs containerd"),
    ],
)
def test_rancher_distributions_are_refused_with_the_supported_path(
    distribution: Distribution, code: str, path: str
) -> None:
    facts = _facts(REGISTRY, distribution=distribution, distribution_evidence="seen")
    (f,) = check_outside(spec(dockerOutsideContainers="Stop"), facts)

    assert (f.code, f.level, f.subject) == (code, Level.BLOCKER, distribution.value)
    assert path in f.advice or path in f.message
    assert "(seen)" in f.message
