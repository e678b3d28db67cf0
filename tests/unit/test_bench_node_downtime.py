"""bench/node_downtime.py's pure parts: the profile it picks, where the cordoned time went, its output
lines (the ratio against the baseline of the same invocation), and `--records` over saved runs. The
migrations themselves run only when the bench is run by hand (they need root and a few minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shimshift.model.cordoned import with_cordon_times
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, NodeRecord, StepRecord, StepState
from tests.unit.benchload import load_bench

bench = load_bench("node_downtime")


def _at(seconds: int) -> str:
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


def _migrated(drain: int, images: int) -> NodeRecord:
    """A node cordoned at 10 whose drain, images and the rest took these seconds."""
    record = NodeRecord("n1", NodePhase.SUCCEEDED, was_unschedulable=False)
    t = 10
    record = record.with_step(StepRecord(StepId.CORDON, StepState.DONE, _at(9), _at(t)))
    for step, took in (
        (StepId.DRAIN, drain),
        (StepId.BACKUP, 1),
        (StepId.CONFIGURE, 3),
        (StepId.IMAGES, images),
        (StepId.SWITCH, 4),
        (StepId.VERIFY, 6),
        (StepId.FINISH, 1),
    ):
        record = record.with_step(StepRecord(step, StepState.DONE, _at(t + 1), _at(t + 1 + took)))
        t += 1 + took
    return with_cordon_times(record)


def test_the_bench_picks_a_profile_with_the_most_images_where_docker_runs_the_containers() -> None:
    assert bench.profile_with_most_images() == "kubeadm-cgroupfs"


def test_the_parts_are_the_steps_inside_the_cordon_and_the_rest_is_other() -> None:
    record = _migrated(drain=20, images=30)
    assert record.cordoned_seconds == 72
    parts = bench.part_seconds(record)
    assert parts == {
        "drain": 20,
        "backup": 1,
        "configure": 3,
        "images": 30,
        "recheck": 0,  # the old order has none
        "switch": 4,
        "verify": 6,
        "finish": 1,
        "other": 7,  # a second between steps
    }


def test_the_report_prints_the_downtime_line_and_the_ratio_and_no_longer_says_staging_is_unbuilt() -> None:
    before = bench.Run("before", _migrated(drain=20, images=30), 80.0)
    after = bench.Run("after", _migrated(drain=20, images=6), 60.0)

    lines = bench.report(before, after)

    assert lines[0].startswith("run before: phase=Succeeded cordoned_s=72 wall_s=80.0 parts: drain=20 ")
    assert "downtime: cordoned_s_before=72 cordoned_s_after=48 ratio=1.50" in lines
    assert "wall: fleet_s_before=80.0 fleet_s_after=60.0 ratio=1.33" in lines
    assert not any("not built" in line for line in lines)
    assert any(
        line.startswith("staging is not built yet")
        for line in bench.report(before, after, staging_built=False)
    )


def test_the_runs_compare_staging_off_with_staging_on() -> None:
    assert bench.STAGING == {"before": "AfterCordon", "after": "BeforeCordon"}


def test_the_image_volume_line_counts_the_extra_images() -> None:
    args = bench.argparse.Namespace(profile="kubeadm-cgroupfs", extra_images=10, base_mb=200, each_mb=190)
    line = bench.image_volume_line(args)
    assert line.startswith("images: ") and "MiB of them the --extra-images" in line
    extra = int(line.split("; ")[1].split(" MiB")[0])
    assert extra >= 2000, line  # the 2 GiB the downtime goal is stated for


def test_a_run_without_a_cordoned_time_is_said_so_not_divided() -> None:
    failed = bench.Run("after", NodeRecord("n1", NodePhase.FAILED), 12.0)
    lines = bench.report(bench.Run("before", _migrated(20, 30), 80.0), failed)
    assert "run after: phase=Failed cordoned_s=none" in lines[1]
    assert any(line.startswith("downtime: a run has no cordonedSeconds") for line in lines)


def test_records_saved_by_a_run_print_the_same_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for label, images in (("before", 30), ("after", 30)):
        record = _migrated(drain=20, images=images)
        obj = {"spec": {"migration": "downtime", "node": "n1"}, "status": record.for_storage()}
        paths.append(bench.save_run(bench.Run(label, record, 75.0), obj, tmp_path))

    assert bench.main(["--records", *map(str, paths)]) == 0

    out = capsys.readouterr().out
    assert "downtime: cordoned_s_before=72 cordoned_s_after=72 ratio=1.00" in out
    assert "wall: fleet_s_before=75.0 fleet_s_after=75.0 ratio=1.00" in out


def test_bad_records_are_a_usage_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"no": "object"}))
    with pytest.raises(SystemExit) as exited:
        bench.main(["--records", str(junk), str(tmp_path / "absent.json")])
    assert exited.value.code == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--records", str(junk), str(junk)])
    assert "not a run saved by --save" in capsys.readouterr().err


def test_help_runs_without_bringing_anything_up(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(["--help"])
    assert exited.value.code == 0
    assert "--records" in capsys.readouterr().out
