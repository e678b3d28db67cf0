"""The blocking-pods read is one LIST the API server filters by label and phase, page by page: its
cost is the matching pods', never every pod of the cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from shimshift.kube.api import Kube
from shimshift.kube.pods import list_blocking_pods


def pod(namespace: str, name: str, node: str | None, phase: str = "Running") -> dict[str, Any]:
    spec = {"nodeName": node} if node else {}
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec, "status": {"phase": phase}}


class PagedPods:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.queries: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        q = dict(query)
        self.queries.append((method, path, q))
        index = int(q.get("continue", "0"))
        more = {"continue": str(index + 1)} if index + 1 < len(self.pages) else {}
        return {"metadata": more, "items": self.pages[index]}


def test_blocking_pods_are_listed_by_label_and_phase_selector_in_pages_and_grouped_by_node() -> None:
    kube = PagedPods(
        [
            [pod("jobs", "b", "n1"), pod("jobs", "pending", None, "Pending")],
            [pod("jobs", "a", "n1"), pod("db", "x", "n2", "Pending"), pod("jobs", "late", "n3", "Succeeded")],
        ]
    )

    blocked = list_blocking_pods(cast(Kube, kube), "app in (batch,db)")

    assert blocked == {"n1": ("jobs/a", "jobs/b"), "n2": ("db/x",)}
    assert [(m, p) for m, p, _ in kube.queries] == [("GET", "/api/v1/pods")] * 2
    for _, _, query in kube.queries:
        assert query["labelSelector"] == "app in (batch,db)"
        assert query["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"
        assert query["limit"] == "500"
    assert "continue" not in kube.queries[0][2] and kube.queries[1][2]["continue"] == "1"
