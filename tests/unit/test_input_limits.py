"""Hostile inputs that once crashed, hung or exhausted the CLI pinned.

Each answers with a clear error naming the file, field or node, and exit status 1, never a traceback.
The ones that hung or crashed the process run `python -m shimshift` in a subprocess with a timeout and
a memory cap (tests/unit/fuzz/cli.py), so a regression fails the test instead of the test run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from shimshift.entry.cli import main
from shimshift.model import check_nodemigration
from shimshift.model.durations import parse_duration
from shimshift.resources import load_crd
from tests.unit.conftest import minimal_manifest
from tests.unit.fuzz.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "examples" / "snapshot"
PLAN = REPO / "examples" / "plan.yaml"
NOW = "2026-01-15T12:00:00Z"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def problems_of(**spec: object) -> list[str]:
    _, problems = check_nodemigration(minimal_manifest(**spec), load_crd())
    return [str(p) for p in problems]


# --- finding 6: durations and numbers that overflow -------------------------------------------------


def test_a_400_digit_duration_is_refused_by_validate_naming_the_field() -> None:
    problems = problems_of(drain={"timeout": "9" * 400 + "h"})
    assert any(p.startswith("spec.drain.timeout:") for p in problems), problems


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rollout.pauseBetweenNodes", "8761h"),
        ("drain.timeout", "999999h"),
        ("ssh.connectTimeout", "100000000m"),
        ("ssh.commandTimeout", "8760h1s"),
    ],
)
def test_a_duration_over_one_year_is_refused_naming_the_field(field: str, value: str) -> None:
    section, key = field.split(".")
    extra: dict[str, object] = {key: value}
    if section == "ssh":
        extra |= {"privateKeySecretRef": {"name": "k"}, "knownHostsSecretRef": {"name": "h"}}
    problems = problems_of(**{section: extra})
    assert any(p.startswith(f"spec.{field}:") and "8760h" in p for p in problems), problems


def test_one_year_is_still_a_valid_duration() -> None:
    assert problems_of(drain={"timeout": "8760h"}) == []
    assert parse_duration("8760h") == 8760 * 3600


def test_the_duration_parser_refuses_overlong_numbers_and_never_returns_infinity() -> None:
    with pytest.raises(ValueError, match="8760h"):
        parse_duration("9" * 400 + "h")
    with pytest.raises(ValueError, match="8760h"):
        parse_duration("1" + "0" * 20 + "ms")


def test_a_plan_with_a_400_digit_drain_timeout_is_invalid_input_not_an_overflow_traceback(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(PLAN.read_text() + '  drain:\n    timeout: "' + "9" * 400 + 'h"\n')
    status, out = run("plan", "-f", str(manifest), "--snapshot", str(SNAPSHOT), "--now", NOW)
    assert status == 1
    assert "spec.drain.timeout" in out


@pytest.mark.parametrize("value", ['"' + "9" * 5000 + '%"', "9" * 5000, '"' + "9" * 40 + '%"'])
def test_a_huge_max_unavailable_is_a_problem_not_a_traceback(tmp_path: Path, value: str) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(PLAN.read_text() + f"  rollout:\n    maxUnavailable: {value}\n")
    status, out = run("validate", "-f", str(manifest))
    assert status == 1
    assert "maxUnavailable" in out or "Exceeds the limit (4300 digits)" in out, out


# --- finding 8: `shimshift validate` on hostile YAML -----------------------------------------------


def alias_bomb() -> str:
    """A NodeMigration whose spec.mode is a "billion laughs" alias bomb (9 ** 9 strings, 449 bytes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    head = "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"
    return head + "spec:\n  nodeNames: [a]\n  x:\n" + "".join(f"    {ln}\n" for ln in lines) + "  mode: *i\n"


def test_the_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 600
    result = run_cli("validate", "-f", str(bomb))
    assert result.status == 1, result
    assert "refusing a possible alias bomb" in result.stdout
    assert str(bomb) in result.stdout


@pytest.mark.parametrize("text", ["[" * 2000 + "]" * 2000, "- " * 2000 + "x", "{a: " * 2000 + "}" * 2000])
def test_yaml_nested_2000_deep_is_refused_not_a_recursion_traceback(tmp_path: Path, text: str) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text(text + "\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert f"{f}: refused: YAML nested more than 100 levels deep" in out


def test_extra_config_toml_nested_2000_deep_is_a_problem_of_that_field() -> None:
    problems = problems_of(containerd={"extraConfig": "a = " + "[" * 2000 + "]" * 2000})
    assert any(p.startswith("spec.containerd.extraConfig:") and "deep" in p for p in problems), problems


def test_a_manifest_over_1_mib_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_text(PLAN.read_text() + "# " + "x" * (1 << 20) + "\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert "limit is 1 MiB" in out


def test_a_fifo_given_to_validate_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    result = run_cli("validate", "-f", str(fifo))
    assert result.status == 1, result
    assert "not a regular file" in result.stdout


# --- finding 9: `shimshift plan --snapshot` on corrupted snapshots ----------------------------------


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    target = tmp_path / "snap"
    shutil.copytree(SNAPSHOT, target)
    return target


def plan(snapshot: Path) -> tuple[int, str]:
    return run("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW, "--format", "json")


def test_a_200_kb_nested_pods_yaml_is_refused_instead_of_crashing_the_c_loader(snapshot: Path) -> None:
    (snapshot / "pods.yaml").write_text("- " * 100_000 + "x\n")
    result = run_cli("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW)
    assert result.status == 1, result
    assert "pods.yaml" in result.stdout
    assert "nested more than 100 levels" in result.stdout


def test_a_facts_file_that_is_a_fifo_is_refused_without_blocking(snapshot: Path) -> None:
    (snapshot / "facts" / "worker-01.json").unlink()
    os.mkfifo(snapshot / "facts" / "worker-01.json")
    result = run_cli("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW)
    assert result.status == 1, result
    assert "worker-01.json" in result.stdout
    assert "not a regular file (a FIFO)" in result.stdout


def test_a_facts_file_linked_to_dev_urandom_is_refused_without_reading_it(snapshot: Path) -> None:
    (snapshot / "facts" / "worker-01.json").unlink()
    (snapshot / "facts" / "worker-01.json").symlink_to("/dev/urandom")
    result = run_cli("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW)
    assert result.status == 1, result
    assert "worker-01.json" in result.stdout
    assert "not a regular file (a character device)" in result.stdout


def test_a_pods_file_linked_to_dev_zero_is_refused(snapshot: Path) -> None:
    (snapshot / "pods.yaml").unlink()
    (snapshot / "pods.yaml").symlink_to("/dev/zero")
    result = run_cli("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW)
    assert result.status == 1, result
    assert "pods.yaml" in result.stdout


@pytest.mark.parametrize(
    ("file", "path", "value", "where"),
    [
        ("pods.yaml", ("items", 0, "metadata"), "not-a-map", "pods.yaml: items[0].metadata"),
        ("pods.yaml", ("items", 0, "spec", "containers"), {"a": 1}, "pods.yaml: items[0].spec.containers"),
        ("pods.yaml", ("items", 1, "metadata", "labels"), ["x"], "pods.yaml: items[1].metadata.labels"),
        ("pods.yaml", ("items", 0, "spec", "terminationGracePeriodSeconds"), "x", "terminationGrace"),
        (
            "nodes.yaml",
            ("items", 0, "status", "conditions"),
            [1, 2],
            "nodes.yaml: items[0].status.conditions",
        ),
        ("nodes.yaml", ("items", 0, "metadata", "name"), ["a"], "nodes.yaml: items[0].metadata.name"),
        ("poddisruptionbudgets.yaml", ("items", 0, "spec", "selector"), "x", "items[0].spec.selector"),
        ("deployments.yaml", ("items", 0, "spec", "replicas"), "three", "items[0].spec.replicas"),
    ],
)
def test_a_wrongly_typed_snapshot_object_is_an_error_naming_the_file_and_object_path(
    snapshot: Path, file: str, path: tuple[str | int, ...], value: object, where: str
) -> None:
    doc = yaml.safe_load((snapshot / file).read_text())
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    (snapshot / file).write_text(yaml.safe_dump(doc))
    status, out = plan(snapshot)
    assert status == 1, out
    assert where in out, out
    assert "Traceback" not in out


def test_deeply_nested_facts_json_is_an_error_naming_the_file(snapshot: Path) -> None:
    (snapshot / "facts" / "worker-02.json").write_text("[" * 100_000 + "]" * 100_000)
    status, out = plan(snapshot)
    assert status == 1
    assert "worker-02.json" in out
    assert "nested too deep" in out


# --- finding 7: one node's unreadable config.toml blocks that node only ----------------------------


def test_a_6_kb_nested_config_toml_blocks_its_node_and_the_others_are_planned(snapshot: Path) -> None:
    facts_file = snapshot / "facts" / "worker-01.json"
    facts = json.loads(facts_file.read_text())
    facts["containerd_config"] = "a = " + "[" * 3000 + "]" * 3000 + "\n"
    facts_file.write_text(json.dumps(facts))
    status, out = plan(snapshot)
    assert status == 3, out
    report = json.loads(out)
    nodes = {n["name"]: n for n in report["nodes"]}
    bad = [f for f in nodes["worker-01"]["findings"] if f["level"] == "blocker"]
    assert any("config.toml" in f["message"] and "worker-01" in f["message"] for f in bad), bad
    assert nodes["worker-02"]["containerd"]["computed"], nodes["worker-02"]["containerd"]
    assert not any("config.toml" in f["message"] for f in nodes["worker-02"]["findings"])


def test_render_refuses_a_facts_file_that_is_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "facts.json"
    os.mkfifo(fifo)
    result = run_cli("render", "-f", str(PLAN), "--facts", str(fifo))
    assert result.status == 1, result
    assert "not a regular file (a FIFO)" in result.stdout


def test_an_impossible_date_in_a_manifest_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(PLAN.read_text() + "  rollout: {paused: 2026-13-45}\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert f"{f}: refused: a YAML value cannot be read: month must be in 1..12" in out


def test_validate_on_stdin_that_is_not_text_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe\x00junk" * 100), encoding="utf-8")
    )
    status, out = run("validate", "-f", "-")
    assert status == 1
    assert "-: is not UTF-8 text" in out


def test_validate_reads_at_most_1_mib_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PLAN.read_text() + "#" * (2 << 20)))
    status, out = run("validate", "-f", "-")
    assert status == 1
    assert "limit is 1 MiB" in out
