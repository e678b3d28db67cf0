"""Playbooks are data: the loader rejects malformed ones with file, task and field, and rendering turns
every value into exactly one argument, whatever it contains."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shimshift.playbooks import (
    Each,
    NodeFile,
    PlaybookError,
    default_dir,
    load_playbook,
    load_playbooks,
    node_script,
    parse_playbook,
    render_argv,
    task_enabled,
)

INJECTIONS = [
    "$(touch /tmp/x)",
    "; rm -rf /",
    "`touch /tmp/x`",
    "a\nb",
    "'\"",
    "{{ 7*7 }}",
    "--flag",
    " lead",
]


def book(tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"playbook": "t", "tasks": tasks, **extra}


def test_every_shipped_playbook_loads_with_its_scripts() -> None:
    books = load_playbooks()
    assert {"facts", "backup", "configure", "switch", "verify", "commit"} == set(books)
    assert books["facts"].read_only and books["verify"].read_only
    for b in books.values():
        for t in b.tasks:
            for action in (t.run, t.undo):
                if action is not None and action.script is not None:
                    assert "restore_backup()" in b.scripts[action.script]  # lib.sh is prepended


#: Changing playbooks with nothing for a rollback to take back, and why (playbooks/README.md, "undo").
NOTHING_TO_UNDO = {
    "backup": "it only writes the backups, which are kept",
}


def test_every_changing_playbook_has_an_undo_for_what_it_changes() -> None:
    books = load_playbooks()
    changing = {name: b for name, b in books.items() if not b.read_only}
    assert {"configure", "switch", "commit"} <= set(changing)
    without_undo = {name for name, b in changing.items() if all(t.undo is None for t in b.tasks)}
    assert without_undo == set(NOTHING_TO_UNDO) & set(books), (
        "a playbook that changes the node needs an undo (or an entry in NOTHING_TO_UNDO saying why not)"
    )
    # and the tasks whose change a rollback must take back carry the undo themselves
    assert books["configure"].tasks[0].undo is not None
    assert books["switch"].tasks[-1].undo is not None
    assert books["commit"].tasks[0].undo is not None  # Docker enabled again
    assert books["commit"].tasks[1].undo is None  # removed backups are the point of the commit


def test_a_malformed_playbook_names_the_file_the_task_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(book([{"name": "go", "run": {"argv": "echo hi"}, "timeot": "1s"}])))
    with pytest.raises(PlaybookError) as e:
        load_playbook(path)
    text = str(e.value)
    assert str(path) in text
    assert "tasks[0] (go).timeot: unknown field" in text
    assert "tasks[0] (go).run.argv: a list of strings" in text


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"name": "x"}, "tasks[0] (x).run: required"),
        ({"run": ["true"]}, "tasks[0].name: required"),
        ({"name": "x", "run": ["true"], "timeout": "0s"}, "must be positive"),
        ({"name": "x", "run": ["true"], "timeout": "soon"}, "tasks[0] (x).timeout"),
        ({"name": "x", "run": {"argv": ["a"], "script": "b"}}, "exactly one of"),
        ({"name": "x", "run": {"script": "nope"}}, "script 'nope'"),
        ({"name": "x", "run": ["{{ unclosed"]}, "run.argv[0]: not a valid template"),
        ({"name": "x", "run": [True]}, "run.argv[0]: a string"),
        ({"name": "x", "run": ["true"], "when": "a =="}, "when: not a valid expression"),
    ],
)
def test_each_malformed_field_is_rejected(task: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(
        PlaybookError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        parse_playbook(book([task]), source="p.yaml", scripts_dir=tmp_path)


def test_duplicate_task_names_are_rejected() -> None:
    with pytest.raises(PlaybookError, match="task name 'a' is used twice"):
        parse_playbook(book([{"name": "a", "run": ["true"]}, {"name": "a", "run": ["true"]}]), source="p")


def test_a_missing_variable_fails_rendering_with_its_name() -> None:
    pb = parse_playbook(book([{"name": "a", "run": ["echo", "{{ nodename }}"]}]), source="p")
    with pytest.raises(PlaybookError, match="'nodename' is undefined"):
        render_argv(pb, pb.tasks[0], pb.tasks[0].run, {})


@pytest.mark.parametrize("value", INJECTIONS)
def test_an_injected_value_is_one_argument_verbatim(value: str) -> None:
    pb = parse_playbook(
        book([{"name": "a", "run": ["echo", "{{ v }}", "pre-{{ v }}", {"each": "vs"}]}]), source="p"
    )
    argv = render_argv(pb, pb.tasks[0], pb.tasks[0].run, {"v": value, "vs": [value, value]})
    assert argv == ("echo", value, "pre-" + value, value, value)


def test_a_script_action_passes_values_as_positional_parameters(tmp_path: Path) -> None:
    (tmp_path / "hello.sh").write_text('printf "%s" "$1"\n')
    pb = parse_playbook(
        book([{"name": "a", "run": {"script": "hello", "args": ["{{ v }}"]}}]),
        source="p",
        scripts_dir=tmp_path,
    )
    argv = render_argv(pb, pb.tasks[0], pb.tasks[0].run, {"v": "$(id)"})
    assert argv == ("/bin/sh", "-c", 'printf "%s" "$1"\n', "shimshift-hello", "$(id)")


def test_each_requires_a_list_of_strings() -> None:
    pb = parse_playbook(book([{"name": "a", "run": ["x", {"each": "paths"}]}]), source="p")
    assert pb.tasks[0].run.argv == ("x", Each("paths"))
    with pytest.raises(PlaybookError, match="needs a list of strings"):
        render_argv(pb, pb.tasks[0], pb.tasks[0].run, {"paths": "/etc/passwd"})


def test_when_skips_a_task_and_an_undefined_name_is_an_error() -> None:
    pb = parse_playbook(book([{"name": "a", "run": ["x"], "when": "policy == 'Stop'"}]), source="p")
    assert task_enabled(pb.tasks[0], {"policy": "Stop"})
    assert not task_enabled(pb.tasks[0], {"policy": "Keep"})
    with pytest.raises(PlaybookError, match="policy"):
        task_enabled(pb.tasks[0], {})


def test_a_node_file_knows_its_checksum_and_hides_its_content() -> None:
    f = NodeFile("/etc/x", b"secret-ish", 0o600)
    assert f.sha256 == hashlib.sha256(b"secret-ish").hexdigest()
    assert "secret-ish" not in repr(f)


@given(st.text(max_size=60))
def test_rendering_never_splits_or_changes_a_value(value: str) -> None:
    pb = parse_playbook(book([{"name": "a", "run": ["{{ v }}"]}]), source="p")
    assert render_argv(pb, pb.tasks[0], pb.tasks[0].run, {"v": value.replace("\x00", "")}) == (
        value.replace("\x00", ""),
    )


def test_every_node_script_parses_under_posix_sh() -> None:
    # the scripts run as `/bin/sh -c <lib.sh + script>` (shimshift.steps.runner.script_argv); dash is
    # a POSIX sh without bash's extensions, so a bashism fails to parse here
    dash = shutil.which("dash")
    if dash is None:
        pytest.skip("dash is not installed")
    scripts = sorted((default_dir() / "scripts").glob("*.sh"))
    assert len(scripts) >= 10
    for path in scripts:
        text = node_script(path.stem)
        result = subprocess.run([dash, "-n"], input=text, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
