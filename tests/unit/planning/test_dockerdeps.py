"""Docker dependencies found in pod specs, grouped by workload, each with a severity and advice."""

from __future__ import annotations

from typing import Any

from shimshift.planning.dockerdeps import (
    DependencyKind,
    Severity,
    agent_of,
    find_docker_dependencies,
    pod_dependencies,
)
from tests.unit.planning.factory import cluster, controller, pod


def kinds(raw: dict[str, Any]) -> set[tuple[DependencyKind, Severity]]:
    return {(k, s) for k, s, _ in pod_dependencies(cluster(pods=[raw]).pods[0])}


def test_the_docker_socket_is_found_under_either_path_and_with_a_trailing_slash() -> None:
    for path in ("/var/run/docker.sock", "/run/docker.sock", "/var/run//docker.sock/"):
        assert kinds(pod("a", host_paths={"sock": path})) == {(DependencyKind.DOCKER_SOCKET, Severity.HIGH)}


def test_parent_directories_of_the_socket_count_and_run_dirs_weigh_more() -> None:
    assert kinds(pod("a", host_paths={"r": "/var/run"})) == {
        (DependencyKind.SOCKET_PARENT_DIR, Severity.HIGH)
    }
    assert kinds(pod("a", host_paths={"r": "/run/"})) == {(DependencyKind.SOCKET_PARENT_DIR, Severity.HIGH)}
    assert kinds(pod("a", host_paths={"r": "/"})) == {(DependencyKind.SOCKET_PARENT_DIR, Severity.MEDIUM)}


def test_unrelated_host_paths_are_not_dependencies() -> None:
    assert kinds(pod("a", host_paths={"m": "/lib/modules", "c": "/var/run/calico", "l": "/var/log"})) == set()


def test_log_shippers_reading_docker_container_logs_are_found() -> None:
    assert kinds(pod("a", host_paths={"l": "/var/lib/docker/containers"})) == {
        (DependencyKind.DOCKER_LOGS, Severity.MEDIUM)
    }
    shipper = pod("a", host_paths={"d": "/var/lib/docker"}, image="fluent/fluentd:v1.16")
    assert kinds(shipper) == {(DependencyKind.DOCKER_LOGS, Severity.MEDIUM)}


def test_docker_in_docker_is_low_risk_and_a_privileged_docker_client_is_high() -> None:
    assert kinds(pod("a", image="docker:24.0-dind", privileged=True)) == {
        (DependencyKind.DOCKER_IN_DOCKER, Severity.LOW)
    }
    cli = pod("a", image="alpine:3.19", privileged=True, command=["sh", "-c", "docker ps -q | wc -l"])
    assert kinds(cli) == {(DependencyKind.DOCKER_CLIENT, Severity.HIGH)}
    assert kinds(pod("a", image="alpine:3.19", command=["sh", "-c", "docker ps"])) == set()  # not privileged


def test_cadvisor_on_docker_labels_is_found() -> None:
    assert (DependencyKind.DOCKER_LABELS, Severity.MEDIUM) in kinds(
        pod("a", image="gcr.io/cadvisor/cadvisor:v0.47.0")
    )


def test_a_daemonset_is_one_finding_across_its_nodes_and_other_nodes_are_ignored() -> None:
    pods = [
        pod(f"agent-{n}", node_name=n, owner=("DaemonSet", "agent"), host_paths={"s": "/var/run/docker.sock"})
        for n in ("n1", "n2", "n3")
    ]
    c = cluster(pods=pods, controllers=[controller("DaemonSet", "agent", replicas=None)])
    deps = find_docker_dependencies(c.pods, c.controller_index(), frozenset({"n1", "n2"}))
    assert len(deps) == 1
    dep = deps[0]
    assert (dep.workload, dep.pods, dep.nodes) == ("DaemonSet/agent", 2, ("n1", "n2"))
    assert "containerd.sock" in dep.advice


def test_a_known_agent_on_docker_sock_is_named_with_the_setting_its_vendor_documents() -> None:
    pods = [
        pod(
            f"dd-{n}",
            node_name=n,
            owner=("DaemonSet", "datadog"),
            host_paths={"s": "/var/run/docker.sock"},
            image="gcr.io/datadoghq/agent:7.50.0",
        )
        for n in ("n1", "n2")
    ]
    c = cluster(pods=pods, controllers=[controller("DaemonSet", "datadog", replicas=None)])
    (dep,) = find_docker_dependencies(c.pods, c.controller_index(), frozenset({"n1", "n2"}))
    assert dep.workload == "DaemonSet/datadog" and dep.pods == 2
    assert (
        "(Datadog Agent, gcr.io/datadoghq/agent:7.50.0) mounts hostPath /var/run/docker.sock" in dep.evidence
    )
    assert dep.advice.startswith("Datadog Agent: mount /run/containerd/containerd.sock")
    assert "DD_CRI_SOCKET_PATH" in dep.advice and "use the CRI socket" in dep.advice
    assert (agent_of("docker.io/falcosecurity/falco-no-driver:0.37.1") or ("", ""))[0] == "Falco"
    assert (agent_of("registry.twistlock.com/twistlock/defender:defender_32_03") or ("", ""))[
        0
    ] == "Prisma Cloud Defender"
    assert (agent_of("gcr.io/cadvisor/cadvisor:v0.47.0") or ("", ""))[0] == "cAdvisor"
    for image, product, says in (
        ("docker.io/dynatrace/oneagent:1.281", "Dynatrace OneAgent", "generic container metrics"),
        ("abc123.live.dynatrace.com/linux/oneagent:latest", "Dynatrace OneAgent", "containerd"),
        ("quay.io/sysdig/agent-slim:12.18.0", "Sysdig Agent", "cri.socket_path"),
        ("registry.aquasec.com/aquasec/enforcer:2022.4", "Aqua Enforcer", "nothing of its own to change"),
        ("quay.io/signalfx/signalfx-agent:5.20.1", "SignalFx Smart Agent", "docker-container-stats"),
        ("verizondigital/kubectl-flame:v0.2.4-jvm", "kubectl-flame", "supports Docker only"),
    ):
        found = agent_of(image)
        assert found is not None and found[0] == product and says in found[1], (image, found)
    # an image of another vendor, or one that only looks alike, gets the general advice
    for image in (
        "example.com/agent:1",
        "newrelic/infrastructure:1",
        "falcon/sensor:7",
        "example.com/oneagent-lookalike/x:1",
        "quay.io/sysdig/agent-helper:1",
    ):
        assert agent_of(image) is None, image
    plain = pod("p", host_paths={"s": "/var/run/docker.sock"}, image="example.com/agent:1")
    c = cluster(pods=[plain])
    (dep,) = find_docker_dependencies(c.pods, c.controller_index(), frozenset({"n1"}))
    assert dep.agent is None and dep.advice.startswith("use the CRI socket")
