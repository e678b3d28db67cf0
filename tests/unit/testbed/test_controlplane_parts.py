"""The control plane's parts that need no process: which binaries it wants, what CI does when one is
missing, and the pod-lifecycle stand-in's rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testbed import components
from testbed.controlplane.cluster import binaries, etcd_binary
from testbed.controlplane.fixtures import cleanup_stale, missing_component
from testbed.controlplane.podlife import (
    EXTERNAL_KUBELET,
    REAL_KUBELET,
    finishes_deletions,
    managed,
    node_status_patch,
    pod_running,
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
    pod = {"metadata": {"uid": "0f-1"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    assert not pod_running(pod)
    status = running_status(pod, "10.244.0.9", "127.0.0.1")
    assert pod_running(status)
    assert status["status"]["containerStatuses"][0]["ready"] is True


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
