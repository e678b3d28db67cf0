"""Passes of several NodeMigrations start at once when the operator starts: they must share one
cache of NodeMigrationNode objects and each read it only after its first list. (Each pass that made a
cache of its own, or read one before it was listed, saw no records: every node of a finished
NodeMigration looked new and was migrated again.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from shimshift.kube import children
from shimshift.kube.cluster import KubeCluster
from shimshift.model.migration import parse_nodemigration
from shimshift.model.nodestate import child_manifest, child_status
from shimshift.model.status import NodePhase, NodeRecord
from shimshift.resources import load_crd

PASSES = 24


class SlowListKube:
    """Serves one NodeMigrationNode; each LIST takes 0.2 s; watches see nothing."""

    def __init__(self) -> None:
        child = child_manifest("done", "uid-1", "w1")
        child["metadata"]["resourceVersion"] = "7"
        child["status"] = child_status(NodeRecord("w1", NodePhase.SUCCEEDED))
        self.child = child
        self.lists = 0
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", children.CHILDREN), (method, path)
        with self._lock:
            self.lists += 1
        time.sleep(0.2)
        return {"items": [self.child], "metadata": {"resourceVersion": "7"}}

    def watch(self, path: str, *, resource_version: str, timeout: float) -> Iterator[dict[str, Any]]:
        time.sleep(0.5)
        return iter(())


def test_passes_starting_together_share_one_cache_and_read_it_listed() -> None:
    kube = SlowListKube()
    cluster = KubeCluster(kube)  # type: ignore[arg-type]
    body = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "done", "uid": "uid-1", "generation": 1},
        "spec": {
            "mode": "Migrate",
            "nodeNames": ["w1"],
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
        },
    }
    migration = parse_nodemigration(body, load_crd())
    start = threading.Barrier(PASSES)
    seen: list[tuple[str, ...]] = []

    def one_pass() -> None:
        start.wait()
        records = cluster.read_node_records(migration)
        seen.append(tuple(f"{r.name}:{r.phase}" for r in records))

    threads = [threading.Thread(target=one_pass) for _ in range(PASSES)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        cluster.close()
    assert seen == [("w1:Succeeded",)] * PASSES
    assert kube.lists == 1
