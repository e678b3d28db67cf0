"""The facts parser on probe output captured from the testbed's real nodes (facts.sh run over SSH on
each profile: real `docker info`/`image inspect`/`ps` JSON, `ctr plugins ls`, `df`, node files), and the
kubelet switch planned from those facts. Regenerate by running the probe on a testbed node."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.switch.kubelet import plan_kubelet_switch
from tests.unit.playbooks.probe import profile_info

CAPTURES = Path(__file__).parent / "fixtures" / "probe"
PROFILES = sorted(p.stem for p in CAPTURES.glob("*.txt"))
ENDPOINT = "unix:///run/containerd/containerd.sock"


def facts(profile: str) -> NodeFacts:
    version = "v" + profile_info(profile)["kubelet_version"]
    return parse_facts(f"node-{profile}", (CAPTURES / f"{profile}.txt").read_text(), kubelet_version=version)


def test_every_profile_has_a_capture() -> None:
    assert PROFILES == ["cri-dockerd", "kubeadm-cgroupfs", "kubeadm-systemd", "kubespray"]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_real_probe_gives_complete_facts(profile: str) -> None:
    f = facts(profile)
    info = profile_info(profile)
    assert f.unreadable == {}
    assert (f.docker_version, f.containerd_version) == ("20.10.24+dfsg1", "1.6.20~ds1")
    assert f.docker_running and f.containerd_running and f.cri_enabled is False
    assert f.containerd_config is not None and 'disabled_plugins = ["cri"]' in f.containerd_config
    assert f.docker_cgroup_driver == f.kubelet.cgroup_driver.value == info["cgroup_driver"]  # type: ignore[union-attr]
    assert f.images and all(i.id.startswith("sha256:") and i.size > 0 for i in f.images)
    assert {c.namespace for c in f.containers} == {"kube-system"}
    assert f.containerd_root_free_bytes and f.containerd_root_free_bytes > 0
    assert f.dockershim_node and not f.on_containerd


@pytest.mark.parametrize("profile", PROFILES)
def test_the_switch_planned_from_a_real_probe_is_valid_and_idempotent(profile: str) -> None:
    f = facts(profile)
    switch = plan_kubelet_switch(f.node, f.kubelet, endpoint=ENDPOINT)
    assert switch.changed
    after = {**f.kubelet.files, **{e.path: e.after for e in switch.edits}}
    again = plan_kubelet_switch(f.node, dataclasses.replace(f.kubelet, files=after), endpoint=ENDPOINT)
    assert again.edits == ()
