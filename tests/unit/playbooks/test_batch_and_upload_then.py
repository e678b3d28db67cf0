"""Folding node commands into one round trip, run here with the node's own shell: `run_batch`
(playbooks/scripts/batch.sh) and `upload_then` (the upload, then a script)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from shimshift.model.errors import NodeError
from shimshift.steps.runner import (
    UPLOADED_MARKER,
    BatchCommandTimeout,
    Command,
    CommandResult,
    run_batch,
    upload_then,
)

pytestmark = pytest.mark.skipif(shutil.which("dash") is None, reason="needs dash, the nodes' /bin/sh")


class LocalRunner:
    """Runs argv here, as sshd runs it on a node (the script under dash, as /bin/sh is on Debian)."""

    def __init__(self) -> None:
        self.runs = 0

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        self.runs += 1
        argv = ["dash", *argv[1:]] if argv[0] == "/bin/sh" else list(argv)
        start = time.monotonic()
        done = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout, check=False)
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def test_a_batch_runs_each_command_as_its_own_argv_in_one_round_trip() -> None:
    runner = LocalRunner()
    tricky = "a b; $(touch /tmp/never) `x` \"q\" 'p'"
    results = run_batch(
        runner,
        "n1",
        [
            Command(["printf", "%s|", tricky, "second"]),
            Command(["sh", "-c", "echo err >&2; exit 3"], may_fail=True),
            Command(["cat"], stdin=b"only me\n"),
            Command(["cat"]),
        ],
    )
    assert runner.runs == 1
    assert [r.exit_status for r in results] == [0, 3, 0, 0]
    assert results[0].stdout.decode() == f"{tricky}|second|"  # every value exactly one argument
    assert results[1].stderr == b"err\n"
    assert results[2].stdout == b"only me\n" and results[3].stdout == b""  # stdin reaches one command


def test_a_batch_stops_after_a_command_that_may_not_fail() -> None:
    results = run_batch(LocalRunner(), "n1", [Command(["false"]), Command(["echo", "never"])])
    assert [r.exit_status for r in results] == [1]


def test_each_command_of_a_batch_is_bounded_on_the_node_and_its_timeout_is_transient() -> None:
    with pytest.raises(BatchCommandTimeout, match="sleep did not finish within 1s") as err:
        run_batch(
            LocalRunner(), "n1", [Command(["true"]), Command(["sleep", "30"], timeout=1, may_fail=True)]
        )
    assert err.value.transient
    # a command that exits 124 by itself is its own answer
    (own,) = run_batch(LocalRunner(), "n1", [Command(["sh", "-c", "exit 124"], timeout=30, may_fail=True)])
    assert own.exit_status == 124


def test_a_batch_that_does_not_reach_its_end_is_an_error() -> None:
    class Truncated(LocalRunner):
        def run(self, argv: Sequence[str], **kw: object) -> CommandResult:
            got = super().run(argv)
            return CommandResult(got.argv, 0, got.stdout.rsplit(b"shimshift-batch\tend", 1)[0], b"", 0.0)

    with pytest.raises(NodeError, match="did not run to its end"):
        run_batch(Truncated(), "n1", [Command(["true"])])


class StreamingLocalRunner(LocalRunner):
    """LocalRunner that hands stdout over as it arrives, as the SSH runner does (`run_streaming`)."""

    def run_streaming(
        self,
        argv: Sequence[str],
        *,
        on_stdout: Callable[[bytes], None],
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.runs += 1
        argv = ["dash", *argv[1:]] if argv[0] == "/bin/sh" else list(argv)
        start = time.monotonic()
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            out = b""
            while chunk := os.read(proc.stdout.fileno(), 65536):
                out += chunk
                on_stdout(chunk)
            status = proc.wait(timeout)
        return CommandResult(tuple(argv), status, out, b"", time.monotonic() - start)


def test_over_a_streaming_runner_each_result_is_told_as_its_command_ends(tmp_path: Path) -> None:
    # the second command waits for a file that only the report of the first one creates: told at the
    # batch's end, the first report would come after the second command's bound (a timeout)
    flag = tmp_path / "first-told"
    told: list[tuple[int, int, bytes]] = []

    def ended(index: int, result: CommandResult) -> None:
        told.append((index, result.exit_status, result.stdout))
        flag.touch()

    wait = f'i=0; while [ ! -e "{flag}" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e "{flag}" ]'
    commands = [Command(["echo", "one"]), Command(["sh", "-c", wait], timeout=30), Command(["echo", "three"])]
    results = run_batch(StreamingLocalRunner(), "n1", commands, on_result=ended)

    assert [r.exit_status for r in results] == [0, 0, 0]
    assert told == [(0, 0, b"one\n"), (1, 0, b""), (2, 0, b"three\n")]


def test_over_a_runner_that_does_not_stream_each_result_is_told_at_the_batchs_end() -> None:
    told: list[int] = []
    runner = LocalRunner()
    commands = [Command(["true"]), Command(["false"], may_fail=True), Command(["false"]), Command(["true"])]
    results = run_batch(runner, "n1", commands, on_result=lambda i, r: told.append(r.exit_status))
    assert told == [r.exit_status for r in results] == [0, 1, 1]  # the batch stopped at the third
    assert runner.runs == 1


def upload_args(target: Path, content: bytes) -> list[str]:
    sha = hashlib.sha256(content).hexdigest()
    return [str(target), sha, "644", "0:0", "", str(len(content)), "0"]


def test_upload_then_installs_the_files_and_then_runs_the_script_in_one_command(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    script = ("/bin/sh", "-c", 'cat -- "$1"; echo "args: $*"', "shimshift-x", str(target), "two words")
    argv = upload_then(upload_args(target, b"new\n"), script)
    got = LocalRunner().run(argv, stdin=b"new\n")
    assert got.exit_status == 0, got.stderr
    head, marker, rest = got.stdout.partition(UPLOADED_MARKER)
    assert marker and head == f"changed {target}\n".encode()
    assert rest == f"new\nargs: {target} two words\n".encode()  # the script saw the new file, its own args


def test_upload_then_runs_no_script_when_the_upload_fails(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    args = upload_args(target, b"new\n")
    args[1] = "0" * 64  # the bytes do not match their checksum
    argv = upload_then(args, ("/bin/sh", "-c", "echo ran", "shimshift-x"))
    got = LocalRunner().run(argv, stdin=b"new\n")
    assert got.exit_status == 23 and UPLOADED_MARKER not in got.stdout and b"ran" not in got.stdout
    assert not target.exists()
