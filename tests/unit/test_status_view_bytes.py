"""`shimshift status`'s images bar is in bytes: the bytes moved of the bytes to move (Docker's sizes of
the images each node's step moves, as its record holds them), for the fleet and for each node whose
images step runs now; records of an older shimshift, without bytes, make it a bar of nodes, and the
view says so."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shimshift.entry.statusview import render_status

NOW = dt.datetime(2026, 12, 6, 10, 12, 34, tzinfo=dt.UTC)
GIB, MIB = 1024**3, 1024**2
MIGRATION: dict[str, Any] = {
    "metadata": {"name": "workers", "generation": 1},
    "spec": {"mode": "Migrate"},
    "status": {"phase": "Progressing", "observedGeneration": 1},
}


def _step(id_: str, state: str, started: str = "2026-12-06T10:10:00Z") -> dict[str, Any]:
    return {"id": id_, "state": state, "startedAt": started}


def _done(name: str, moved: int, images: int = 40) -> dict[str, Any]:
    return {
        "name": name,
        "phase": "Succeeded",
        "step": "done",
        "stepState": "Done",
        "attempts": 1,
        "images": {
            "transferred": images,
            "pulled": 0,
            "skipped": 2,
            "bytes": moved - 1000,  # streamed: what the metric counts, not what the bar shows
            "bytesToMove": moved,
            "bytesMoved": moved,
        },
        "steps": [_step("images", "Done")],
    }


def _running(name: str, moved: int | None, to_move: int | None, step: str = "images") -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": name,
        "phase": "InProgress",
        "step": step,
        "stepState": "Started",
        "attempts": 1,
        "steps": [_step(step, "Started")],
    }
    if to_move is not None:
        node["images"] = {"transferred": 0, "pulled": 0, "skipped": 0, "bytes": 0}
        node["images"] |= {"bytesToMove": to_move, "bytesMoved": moved}
    return node


def _view(nodes: list[dict[str, Any]]) -> list[str]:
    return render_status(MIGRATION, nodes, source="NodeMigrationNode", now=NOW).splitlines()


def test_the_images_bar_shows_bytes_moved_of_bytes_to_move_for_the_fleet_and_each_node_in_flight() -> None:
    nodes = [
        _done("node-a", 4 * GIB),
        {"name": "node-b", "phase": "Skipped", "attempts": 0, "skipReason": "already on containerd"},
        _running("node-c", GIB + 512 * MIB, 3 * GIB),
        _running("node-d", 0, 0, step="recheck"),  # nothing to move: a full bar
        {"name": "node-e", "phase": "Pending", "attempts": 0},
    ]

    lines = _view(nodes)

    assert lines[1:5] == [
        "Nodes   [############..................] 2/5 done  (Pending 1, Skipped 1, InProgress 2, Succeeded 1)",
        "Images  [########################......] 5.5 GiB of 7.0 GiB (78%) on the 3 node(s) whose images"
        " step started; 1/4 nodes' images step done: 40 images moved, 2 skipped",
        "        node-c  [##########..........] 1.5 GiB of 3.0 GiB (50%), images step running for 2m34s",
        "        node-d  [####################] 0 B of 0 B (100%), recheck step running for 2m34s",
    ]
    table = lines[lines.index("") + 1 :]
    assert table[0] == "NODE    PHASE       STEP     STATE    ATTEMPTS  IN STEP  IMAGES"
    assert table[1] == "node-a  Succeeded   done     Done     1         -        40 moved, 4.0 GiB"
    assert table[4] == "node-c  InProgress  images   Started  1         2m34s    1.5 GiB of 3.0 GiB"


def test_once_every_node_started_its_images_step_the_bar_is_the_fleets_and_a_finished_one_is_full() -> None:
    lines = _view([_done("node-a", 4 * GIB), _done("node-b", 2 * GIB, images=3)])
    assert lines[2] == (
        "Images  [##############################] 6.0 GiB of 6.0 GiB (100%);"
        " 2/2 nodes' images step done: 43 images moved, 4 skipped"
    )


def test_before_any_images_step_the_bar_is_empty_and_says_so() -> None:
    lines = _view([{"name": "node-a", "phase": "InProgress", "step": "backup", "stepState": "Started"}])
    assert lines[2] == (
        "Images  [..............................] no node's images step started yet;"
        " 0/1 nodes' images step done: 0 images moved, 0 skipped"
    )


def test_a_running_step_without_bytes_yet_is_named_without_a_bar() -> None:
    lines = _view([_running("node-a", None, None)])
    assert lines[3] == "        node-a: images step running for 2m34s (no bytes recorded yet)"


def test_records_of_an_older_version_without_bytes_make_it_a_bar_of_nodes_and_the_view_says_so() -> None:
    older = _done("node-a", 4 * GIB)
    del older["images"]["bytesToMove"], older["images"]["bytesMoved"]
    lines = _view([older, _running("node-b", GIB, 2 * GIB)])
    assert lines[2] == (
        "Images  [###############...............] 1/2 nodes' images step done: 40 images moved, 2 skipped,"
        " 4.0 GiB (a bar of nodes: records of an older shimshift hold no bytes to move)"
    )
    assert (
        lines[3]
        == "        node-b  [##########..........] 1.0 GiB of 2.0 GiB (50%), images step running for 2m34s"
    )
    table = lines[lines.index("") + 1 :]
    assert table[1].endswith("40 moved, 4.0 GiB")  # its streamed bytes, the one figure it has
