"""The control plane's parts that need no process: which binaries it wants, what CI does when one is
missing, and the pod-lifecycle stand-in's rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from testbed import components
from testbed.controlplane.cluster import binaries, etcd_binary
from testbed.controlplane.fixtures import cleanup_stale, missing_component
from testbed.controlplane.podlife import (
    EXTERNAL_KUBELET,
    REAL_KUBELET,
    echoed,
    finishes_deletions,
    managed,
    node_status_patch,
    pod_events,
    pod_running,
    pod_step,
    running_status,
)


def test_a_missing_binary_is_named_with_the_command_that_builds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIMSHIFT_COMPONENTS", str(tmp_path))
    with pytest.raises(components.ComponentMissing) as missing:
        binaries("v1.24.17")
    assert "scripts/build-components kubernetes" in str(missing.value)
    with pytest.raises(components.ComponentMissing) as missing:
        etcd_binary("v1.34.4")  # 1.31+ needs the built etcd 3.6, not Debian's 3.4
    assert "scripts/build-components etcd" in str(missing.value)


def test_under_ci_a_missing_component_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs the real control plane: kube-apiserver"):
        missing_component("kube-apiserver is not built")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        missing_component("kube-apiserver is not built")


def test_the_heartbeat_keeps_each_condition_and_adds_ready_and_capacity_only_when_absent() -> None:
    not_ready = {
        "type": "Ready",
        "status": "False",
        "reason": "Test",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patch = node_status_patch({"status": {"conditions": [not_ready], "capacity": {"pods": "3"}}})["status"]
    assert [(c["type"], c["status"], c["lastTransitionTime"]) for c in patch["conditions"]] == [
        ("Ready", "False", "2026-01-01T00:00:00Z")
    ]
    assert "capacity" not in patch and patch["allocatable"]["pods"] == "110"
    fresh = node_status_patch({"metadata": {"name": "n"}})["status"]
    assert [(c["type"], c["status"]) for c in fresh["conditions"]] == [("Ready", "True")]


def test_only_nodes_without_a_model_kubelet_are_managed_and_pods_become_running() -> None:
    assert managed({"metadata": {"name": "plain"}})
    assert not managed({"metadata": {"annotations": {EXTERNAL_KUBELET: "true"}}})
    # a real kubelet's Node as registered, before the cloud initializes it: not a kubelet-less Node
    registered = {
        "metadata": {"name": "real"},
        "spec": {
            "taints": [{"key": "node.cloudprovider.kubernetes.io/uninitialized", "effect": "NoSchedule"}]
        },
    }
    assert not managed(registered)
    assert managed(
        {"metadata": {"name": "plain"}, "spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]}}
    )
    pod = {"metadata": {"uid": "0f-1"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    assert not pod_running(pod)
    status = running_status(pod, "10.244.0.9", "127.0.0.1")
    assert pod_running(status)
    assert status["status"]["containerStatuses"][0]["ready"] is True


def test_the_heartbeat_points_the_api_server_at_the_log_endpoint_and_keeps_a_nodes_own_address() -> None:
    fresh = node_status_patch({"metadata": {"name": "n"}}, 20001)["status"]
    assert fresh["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 20001}}
    assert fresh["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
    own = [{"type": "InternalIP", "address": "10.0.0.7"}]
    assert "addresses" not in node_status_patch({"status": {"addresses": own}}, 20001)["status"]
    assert "daemonEndpoints" not in node_status_patch({"metadata": {"name": "n"}})["status"]


def _pod(image: str, command: list[str] | None = None, restart: str = "Always") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "canary", "image": image}
    if command:
        container["command"] = command
    return {
        "metadata": {"uid": "0f-1", "name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n", "restartPolicy": restart, "containers": [container]},
    }


def _after(pod: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    assert patch is not None
    return {**pod, "status": {**(pod.get("status") or {}), **patch["status"]}}


def _state(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    return state


def test_an_echo_pod_runs_then_completes_with_its_words_as_its_log() -> None:
    pod = _pod("busybox:1.36", ["echo", "token-1"], restart="Never")
    running = _after(pod, pod_step(pod, "10.244.0.2", "127.0.0.1"))
    assert running["status"]["phase"] == "Running" and "running" in _state(running)
    done = _after(running, pod_step(running, "10.244.0.2", "127.0.0.1"))
    assert done["status"]["phase"] == "Succeeded"
    assert _state(done)["terminated"]["exitCode"] == 0 and _state(done)["terminated"]["reason"] == "Completed"
    assert not pod_running(done)
    assert pod_step(done, "10.244.0.2", "127.0.0.1") is None  # finished: left alone
    assert echoed(pod) == {"canary": "token-1\n"}
    # restartPolicy Always: an ordinary pod, Running and left so
    ordinary = _pod("busybox:1.36", ["echo", "x"])
    kept = _after(ordinary, pod_step(ordinary, "10.244.0.3", "127.0.0.1"))
    assert pod_running(kept) and pod_step(kept, "10.244.0.3", "127.0.0.1") is None


def test_an_image_under_invalid_is_not_pulled_and_kubelets_events_say_so() -> None:
    image = "registry.invalid/tools/busybox:1.36"
    pod = _pod(image, ["echo", "token"], restart="Never")
    first = pod_step(pod, "10.244.0.4", "127.0.0.1")
    failing = _after(pod, first)
    assert failing["status"]["phase"] == "Pending" and _state(failing)["waiting"]["reason"] == "ErrImagePull"
    assert first is not None
    events = pod_events(pod, first)
    assert [(e["type"], e["reason"]) for e in events] == [
        ("Normal", "Pulling"),
        ("Warning", "Failed"),
        ("Warning", "Failed"),
    ]
    assert events[1]["message"].startswith(f'Failed to pull image "{image}": rpc error')
    assert events[1]["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "p",
        "namespace": "ns",
        "uid": "0f-1",
    }
    backoff = pod_step(failing, "10.244.0.4", "127.0.0.1")
    stuck = _after(failing, backoff)
    assert _state(stuck)["waiting"] == {
        "reason": "ImagePullBackOff",
        "message": f'Back-off pulling image "{image}"',
    }
    assert backoff is not None and [e["reason"] for e in pod_events(failing, backoff)] == [
        "BackOff",
        "Failed",
    ]
    assert pod_step(stuck, "10.244.0.4", "127.0.0.1") is None


def test_deletions_are_finished_on_every_node_but_a_real_kubelets() -> None:
    model = {"metadata": {"annotations": {EXTERNAL_KUBELET: "true"}}}
    real = {"metadata": {"annotations": {EXTERNAL_KUBELET: "true", REAL_KUBELET: "true"}}}
    assert finishes_deletions({"metadata": {"name": "plain"}}) and finishes_deletions(model)
    assert not finishes_deletions(real)  # the real kubelet deletes its pods once their containers stop


def test_a_dead_sessions_control_plane_is_cleaned_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead, live = tmp_path / "pytest-999999999", tmp_path / f"pytest-{os.getpid()}"
    for directory in (dead, live, tmp_path / "demo"):
        (directory / "logs").mkdir(parents=True)
    assert cleanup_stale(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and (tmp_path / "demo").exists()
