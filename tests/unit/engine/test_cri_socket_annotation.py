"""kubeadm's cri-socket annotation says containerd's socket once the node finished (kubeadm upgrade reads
it, and with Docker kept fails on "found multiple CRI endpoints" without it); the old value is kept on
the Node in the same write, so a finish that fails afterwards is rolled back with the old value put
back, and so is a Succeeded node undone on request; the commit that ends the rollback window drops
the record."""

from __future__ import annotations

from shimshift.model import keys
from shimshift.model.status import NodePhase
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

DOCKERSHIM = "/var/run/dockershim.sock"
CONTAINERD = "unix:///run/containerd/containerd.sock"


def _cluster(clock: Clock) -> FakeCluster:
    return FakeCluster(workers(1, annotations={keys.CRI_SOCKET_ANNOTATION: DOCKERSHIM}), clock)


def test_a_finished_node_says_containerds_socket_and_keeps_the_old_value_until_the_commit(
    clock: Clock,
) -> None:
    cluster = _cluster(clock)
    cluster.create(manifest())
    nodes = FakeNodes(cluster)
    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.SUCCEEDED
    annotations = cluster.nodes["w1"].annotations
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == CONTAINERD
    assert annotations[keys.CRI_SOCKET_BEFORE_ANNOTATION] == DOCKERSHIM  # an undo puts it back

    cluster.set_spec("m", commit=True)
    run_to_end(cluster, nodes, clock)
    record = cluster.status().node("w1")
    assert record is not None and record.committed and record.phase == NodePhase.SUCCEEDED
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == CONTAINERD
    assert keys.CRI_SOCKET_BEFORE_ANNOTATION not in annotations


def test_an_undo_on_request_of_a_succeeded_node_puts_the_old_value_back(clock: Clock) -> None:
    cluster = _cluster(clock)
    cluster.create(manifest())
    nodes = FakeNodes(cluster)
    run_to_end(cluster, nodes, clock)
    cluster.nodes["w1"].annotations[keys.UNDO_ANNOTATION] = "yes"
    run_to_end(cluster, nodes, clock)

    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.ROLLED_BACK and record.undo_request
    annotations = cluster.nodes["w1"].annotations
    assert annotations[keys.CRI_SOCKET_ANNOTATION] == DOCKERSHIM
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
