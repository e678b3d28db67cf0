"""Starting ``python -m testbed.kubeapi`` as a separate process, with a bounded wait for readiness."""

from __future__ import annotations

import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Standalone:
    url: str
    kubeconfig: Path
    process: subprocess.Popen[str]


def _read_first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        # One select is the whole wait: an exiting emulator makes its stdout readable (EOF) too, and
        # select resumes after a signal with the time that is left.
        if selector.select(timeout=timeout):
            return proc.stdout.readline()
    raise TimeoutError(f"the standalone emulator did not start within {timeout}s (exit code {proc.poll()})")


@contextmanager
def standalone_server(kubeconfig: Path, *args: str, timeout: float = 30.0) -> Iterator[Standalone]:
    """Run the emulator in its own process (extra ``args`` go to its CLI); stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = _read_first_line(proc, timeout)
        if "serving on " not in line:
            raise RuntimeError(f"unexpected first line from the emulator: {line!r}")
        url = line.split("serving on ", 1)[1].split()[0]
        yield Standalone(url, kubeconfig, proc)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
