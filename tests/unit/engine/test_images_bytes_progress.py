"""The bytes a running images step moved, in the node's own record: the step's port reports (bytes
moved, bytes to move) as transfers end; the node's NodeMigrationNode record holds the figure while
the step runs (the first report, then at most every PROGRESS_EVERY seconds, and the last), and the
step's end keeps bytes moved == bytes to move. The NodeMigration's own status never holds them."""

from __future__ import annotations

from typing import Any

from shimshift.model.facts import NodeFacts
from shimshift.model.nodestate import child_name
from shimshift.model.status import ImageCounts, NodeRecord, Phase
from shimshift.steps.base import PROGRESS_EVERY, ImagesProgress
from tests.unit.engine.conftest import run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

GIB = 1024**3


class ProgressingNodes(FakeNodes):
    """Fake nodes whose images step moves 3 GiB in three transfers of 1 GiB, 1 s apart (then 5 s),
    noting what the node's record held after each report."""

    def __init__(self, cluster: FakeCluster, clock: Clock) -> None:
        super().__init__(cluster)
        self.clock = clock
        self.seen: list[dict[str, Any]] = []

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        assert progress is not None, "the images step hands its port a progress callback"
        for moved, wait in ((0, 0.0), (GIB, 1.0), (2 * GIB, PROGRESS_EVERY), (3 * GIB, 1.0)):
            self.clock.advance(wait)
            progress(moved, 3 * GIB)
            progress(moved, 3 * GIB)  # the same figure again is never written twice
            self.seen.append(dict(self.cluster.children[child_name("m", node)][1]))
        super().images(node, facts)
        return ImageCounts(transferred=3, bytes=3 * GIB - 1, bytes_to_move=3 * GIB, bytes_moved=3 * GIB)

    def recheck_images(
        self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None
    ) -> ImageCounts:
        assert progress is not None
        progress(3 * GIB, 3 * GIB)  # nothing appeared since staging: the staged images, all there
        super().recheck_images(node, facts)
        return ImageCounts(transferred=3, bytes=3 * GIB - 1, bytes_to_move=3 * GIB, bytes_moved=3 * GIB)


def test_the_record_holds_the_bytes_moved_while_the_images_step_runs_and_bounds_its_writes(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = ProgressingNodes(cluster, clock)
    writes: list[tuple[str, int, int]] = []
    write = cluster.write_node_record

    def noting(migration: Any, record: Any) -> None:
        writes.append((str(record.step), record.images.bytes_moved, record.images.bytes_to_move))
        write(migration, record)

    cluster.write_node_record = noting  # type: ignore[method-assign]
    cluster.create(manifest())

    assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED

    running = [
        (r["step"], r["stepState"], r["images"]["bytesMoved"], r["images"]["bytesToMove"]) for r in nodes.seen
    ]
    assert running == [
        ("images", "Started", 0, 3 * GIB),  # the first report: what there is to move
        ("images", "Started", 0, 3 * GIB),  # 1 s later: not written (within PROGRESS_EVERY)
        ("images", "Started", 2 * GIB, 3 * GIB),  # PROGRESS_EVERY seconds after the last write
        ("images", "Started", 3 * GIB, 3 * GIB),  # everything moved: written whenever it comes
    ]
    during = [w for w in writes if w[0] == "images" and w[2]]
    assert during[:3] == [("images", 0, 3 * GIB), ("images", 2 * GIB, 3 * GIB), ("images", 3 * GIB, 3 * GIB)]
    w1 = cluster.status().node("w1")
    assert w1 is not None
    assert (w1.images.bytes_moved, w1.images.bytes_to_move, w1.images.bytes) == (
        3 * GIB,
        3 * GIB,
        3 * GIB - 1,
    )
    stored = cluster.children[child_name("m", "w1")][1]["images"]
    assert stored["bytesMoved"] == stored["bytesToMove"] == 3 * GIB
    parent = cluster.get("m")
    assert "bytesMoved" not in repr(parent.status.stored), "the NodeMigration's status holds no bytes"


def test_records_without_bytes_store_as_older_versions_wrote_them() -> None:
    counts = ImageCounts(transferred=2, skipped=1, bytes=10)
    stored = NodeRecord("w1", images=counts).for_storage()["images"]
    assert stored == {"transferred": 2, "pulled": 0, "skipped": 1, "bytes": 10}
    moving = NodeRecord("w1", images=ImageCounts(bytes_to_move=5, bytes_moved=2))
    assert moving.for_storage()["images"]["bytesToMove"] == 5
    assert NodeRecord.from_storage(moving.for_storage()).images == moving.images
