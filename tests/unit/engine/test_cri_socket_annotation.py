"""kubeadm's cri-socket annotation says containerd's socket once the node finished (kubeadm upgrade reads
it, and with Docker kept fails on "found multiple CRI endpoints" without it); the old value is kept on
the Node in the same write, so a finish that fails afterwards is rolled back with the old value put
back, and a finished node carries no leftover record."""

from __future__ import annotations

from shimshift.model import keys
from shimshift.model.status import NodePhase
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

DOCKERSHIM = "/var/run/dockershim.sock"
CONTAINERD = "unix:///run/containerd/containerd.sock"


def _cluster(clock: Clock) -> FakeCluster:
    return FakeCluster(workers(1, annotations={keys.CRI_SOCKET_ANNOTATION: DOCKERSHIM}), clock)


def test_a_finished_node_says_containerds_socket_and_keeps_no_record(clock: Clock) -> None:
    cluster = _cluster(clock)
    cluster.create(manifest())
    run_to_end(cluster, FakeNodes(cluster), clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.SUCCEEDED
    annotations = cluster.nodes["w1"].annotations
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == CONTAINERD
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in annotations


def test_a_finish_that_fails_after_the_annotation_is_rolled_back_with_the_old_value(clock: Clock) -> None:
    cluster = _cluster(clock)
    cluster.fail_label["w1"] = 100
    cluster.create(manifest())
    run_to_end(cluster, FakeNodes(cluster), clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.ROLLED_BACK
    annotations = cluster.nodes["w1"].annotations
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == DOCKERSHIM
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in annotations
