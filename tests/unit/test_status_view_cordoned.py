"""`shimshift status` says how long nodes were out of service: the uncordoned nodes' mean and longest
time cordoned (their records' cordonedSeconds), and how long the nodes in flight have been cordoned."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shimshift.entry.statusview import render_status

NOW = dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
MIGRATION: dict[str, Any] = {"metadata": {"name": "workers"}, "spec": {"mode": "Migrate"}, "status": {}}


def _lines(nodes: list[dict[str, Any]]) -> list[str]:
    return render_status(MIGRATION, nodes, source="test", now=NOW).splitlines()


def test_the_view_gives_the_mean_and_longest_time_cordoned_and_the_nodes_cordoned_now() -> None:
    nodes: list[dict[str, Any]] = [
        {"name": "a", "phase": "Succeeded", "cordonedAt": "2026-01-01T00:00:00Z", "cordonedSeconds": 40},
        {"name": "b", "phase": "RolledBack", "cordonedAt": "2026-01-01T00:01:00Z", "cordonedSeconds": 95},
        {"name": "c", "phase": "InProgress", "step": "images", "cordonedAt": "2026-01-01T00:07:30Z"},
        {"name": "d", "phase": "InProgress", "step": "facts"},  # not cordoned yet
        {"name": "e", "phase": "Succeeded"},  # an admin's cordon: no figure
    ]

    lines = _lines(nodes)

    assert lines[3] == (
        "Cordoned 2 node(s) uncordoned after 1m07s on average, longest 1m35s (b); "
        "1 cordoned now, the longest for 2m30s"
    )


def test_no_line_before_any_node_was_cordoned() -> None:
    lines = _lines([{"name": "a", "phase": "InProgress", "step": "facts"}])
    assert not any(line.startswith("Cordoned") for line in lines)
