"""The renderer and kubelet planner as the report uses them, and the render sharing between nodes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shimshift.model.facts import DockerImage
from shimshift.planning.cluster import Node
from shimshift.planning.snapshot import load_snapshot
from shimshift.steps.configure import SharedRenders, containerd_files
from shimshift.steps.switch import SharedKubeletEdits, kubelet_files
from tests.unit.planning.factory import spec

REPO = Path(__file__).resolve().parents[3]
SNAP = load_snapshot(REPO / "examples" / "snapshot")
NODE = next(n for n in SNAP.cluster.nodes if n.name == "worker-03")
FACTS = SNAP.facts["worker-03"]


def test_the_renderer_ignores_the_node_inventory_so_look_alike_nodes_may_share_a_render() -> None:
    # SharedRenders keys renders on the facts minus images, containers and free disk: hold the
    # renderer to not reading them.
    s = spec()
    other = dataclasses.replace(
        FACTS,
        images=(DockerImage("sha256:" + "0" * 64, ("x:1",), (), 1),),
        containers=(),
        containerd_images=("sha256:" + "1" * 64,),
        containerd_root_free_bytes=1,
    )
    assert containerd_files(s, FACTS) == containerd_files(s, other)


def test_a_shared_render_is_reused_only_for_the_same_spec_and_config() -> None:
    shared = SharedRenders()
    s = spec()
    first = shared(s, NODE, FACTS)
    twin = dataclasses.replace(FACTS, node="worker-99", images=())
    assert shared(s, Node(name="worker-99"), twin) is first
    changed = dataclasses.replace(FACTS, daemon_json={})
    assert shared(s, NODE, changed) != first
    assert shared(spec(containerd={"sandboxImage": "registry.k8s.io/pause:3.9"}), NODE, FACTS) != first


def test_the_kubelet_section_shows_the_flag_edit_and_the_node_annotation() -> None:
    section = kubelet_files(spec(), NODE, FACTS)
    flags, config = section.changes
    change = flags
    assert change.path == "/var/lib/kubelet/kubeadm-flags.env"
    # daemon.json's json-file rotation (100m x 3) becomes the kubelet's
    assert config.path == "/var/lib/kubelet/config.yaml"
    assert "+containerLogMaxSize: 100Mi" in config.diff and "+containerLogMaxFiles: 3" in config.diff
    assert '-KUBELET_KUBEADM_ARGS="--network-plugin=cni' in change.diff
    assert "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in change.diff
    assert any("cri-socket" in n and "dockershim.sock" in n for n in section.notes)


def test_the_containerd_section_carries_the_insecure_registry_and_lists_what_docker_settings_are_lost() -> (
    None
):
    section = containerd_files(spec(), FACTS)
    carried = {c.source: c.carried for c in section.carryover}
    assert carried["daemon.json insecure-registries"] is True
    assert "daemon.json log-opts" not in carried  # carried into the kubelet's files by the switch
    assert any("TLS verification is off" in w for w in section.warnings)


def test_a_shared_kubelet_edit_is_reused_only_for_the_same_kubelet_setup() -> None:
    shared = SharedKubeletEdits()
    s = spec()
    first = shared(s, NODE, FACTS)
    twin = dataclasses.replace(NODE, name="worker-99")
    assert shared(s, twin, dataclasses.replace(FACTS, node="worker-99", images=())) is first
    files = dict(FACTS.kubelet.files)
    files["/var/lib/kubelet/kubeadm-flags.env"] = 'KUBELET_KUBEADM_ARGS="--network-plugin=kubenet"\n'
    other = dataclasses.replace(FACTS, kubelet=dataclasses.replace(FACTS.kubelet, files=files))
    assert shared(s, NODE, other).changes[0].after != first.changes[0].after
    # Docker's log rotation is part of the kubelet setup: another one is another edit
    rotated = dataclasses.replace(FACTS, daemon_json={"log-opts": {"max-size": "1g", "max-file": "4"}})
    assert "containerLogMaxSize: 1Gi" in (shared(s, NODE, rotated).changes[1].after or "")
