"""Run `python -m shimshift` on one hostile input, bounded: what the fuzzers and regressions assert on.

Each run is a fresh process (a segfault or a hang must fail the test, not end the test run) with a
wall-clock timeout, an address-space cap as a safety net for the machine, and its own peak RSS (the
VmHWM `tests.unit.fuzz.hwm_main` reports as it ends; `wait4`'s maxrss when it could not: killed), so
a test can say "under 10 s and under 200 MB" of exactly that program.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TIMEOUT = 10.0  # seconds, per input: no input may hang the CLI longer
PEAK_LIMIT_MB = 200  # per input: no input may make the CLI use more memory
_AS_CAP = 1 << 30  # the safety net: a runaway input dies at 1 GiB of address space instead of the host


@dataclass(frozen=True)
class CliResult:
    status: int  # exit status; negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float
    timed_out: bool

    def assert_handled(self, allowed: tuple[int, ...] = (0, 1, 2, 3)) -> None:
        """A clean answer: an allowed exit status, no traceback, within the time and memory bounds."""
        assert not self.timed_out, f"no answer within {TIMEOUT} s"
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout, self.stderr[-3000:]
        assert self.status in allowed, self
        assert self.peak_mb < PEAK_LIMIT_MB, f"peak RSS {self.peak_mb:.0f} MB"
        if self.status == 1:
            assert self.stdout.strip() or self.stderr.strip(), "exit 1 without a message"


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_AS_CAP, _AS_CAP))


def run_cli(*argv: str, timeout: float = TIMEOUT) -> CliResult:
    """`python -m shimshift ARGV` in a fresh process, reaped with wait4 for its own peak RSS."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        hwm = Path(tmp) / "peak-kib"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
            "SHIMSHIFT_FUZZ_HWM": str(hwm),
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.fuzz.hwm_main", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            preexec_fn=_limit,  # only setrlimit, before exec
            start_new_session=True,
        )
        timed_out = False
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, wait_status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(wait_status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        peak_kib = int(hwm.read_text()) if hwm.exists() else usage.ru_maxrss  # both KiB on Linux
        return CliResult(
            status=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            seconds=seconds,
            peak_mb=peak_kib / 1024,
            timed_out=timed_out,
        )
