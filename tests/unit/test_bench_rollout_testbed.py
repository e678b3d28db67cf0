"""bench/rollout_testbed.py's pure parts: a node's own seconds from its step records, the output lines
(the speed-up only when both rollouts succeeded) and `--records` over saved runs. The rollouts run only
when the bench is run by hand (they need root and several minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, NodeRecord, StepRecord, StepState
from tests.unit.benchload import load_bench

bench = load_bench("rollout_testbed")


def _at(seconds: int) -> str:
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


def _node(name: str, start: int, took: int, phase: NodePhase = NodePhase.SUCCEEDED) -> NodeRecord:
    record = NodeRecord(name, phase, was_unschedulable=False)
    record = record.with_step(StepRecord(StepId.FACTS, StepState.DONE, _at(start), _at(start + 1)))
    return record.with_step(
        StepRecord(StepId.FINISH, StepState.DONE, _at(start + took - 1), _at(start + took))
    )


def test_a_nodes_seconds_run_from_its_first_start_to_its_last_end() -> None:
    assert bench.node_seconds(_node("a", 5, 40)) == 40.0
    assert bench.node_seconds(NodeRecord("b", NodePhase.PENDING, was_unschedulable=False)) is None


def test_the_speedup_is_serial_over_parallel_wall_time() -> None:
    serial = bench.Run("serial", "Succeeded", 160.0, tuple(_node(f"n{i}", 40 * i, 40) for i in range(4)))
    parallel = bench.Run("parallel", "Succeeded", 50.0, tuple(_node(f"m{i}", 0, 45 + i) for i in range(4)))
    lines = bench.report(serial, parallel)
    assert (
        lines[0] == "run serial: phase=Succeeded wall_s=160.0 nodes=4 succeeded=4 node_s: min=40.0 max=40.0"
    )
    assert (
        lines[1] == "run parallel: phase=Succeeded wall_s=50.0 nodes=4 succeeded=4 node_s: min=45.0 max=48.0"
    )
    assert lines[2] == "rollout: serial_s=160.0 parallel_s=50.0 speedup=3.20"


def test_no_speedup_is_claimed_when_a_rollout_failed() -> None:
    serial = bench.Run("serial", "Succeeded", 160.0, (_node("n", 0, 40),))
    parallel = bench.Run("parallel", "Failed", 20.0, (_node("m", 0, 20, NodePhase.FAILED),))
    lines = bench.report(serial, parallel)
    assert "succeeded=0" in lines[1]
    assert lines[2].startswith("rollout: a run did not succeed")
    assert "speedup" not in lines[2]


def test_saved_runs_print_the_same_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        "serial": bench.Run("serial", "Succeeded", 120.0, (_node("n", 0, 30),)),
        "parallel": bench.Run("parallel", "Succeeded", 40.0, (_node("m", 0, 35),)),
    }
    paths = []
    for run in runs.values():
        objects = [{"spec": {"node": r.name}, "status": r.for_storage()} for r in run.records]
        paths.append(bench.save_run(run, objects, tmp_path))
    assert bench.main(["--records", *map(str, paths)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == bench.report(runs["serial"], runs["parallel"])


def test_records_that_are_not_saved_runs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--records", str(bad), str(bad)])
    assert exit_.value.code == 2
    assert "not a run saved by --save" in capsys.readouterr().err
