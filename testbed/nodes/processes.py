"""Find and kill the testbed's own processes by the marker in their environment.

The testbed only ever kills processes it started: each carries ``MARKER_ENV=<cluster dir>``
(see ``layout.py``), so a stale process of a killed run is recognised without guessing from
names. Killing a node's init (PID 1 of its PID namespace) makes the kernel kill every process of
the node, including daemons, shims and containers, and its mounts vanish with its mount namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed.nodes.layout import MARKER_ENV
from testbed.waiting import WaitTimeout, wait_until


def marked_processes(predicate_dir: Path | None = None, marker: str = MARKER_ENV) -> dict[int, Path]:
    """PID -> cluster dir of every live process carrying the testbed marker (optionally only
    those of clusters under ``predicate_dir``); ``marker`` names another marker variable (the
    control plane's)."""
    found: dict[int, Path] = {}
    needle = marker.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                cluster = Path(item[len(needle) :].decode(errors="replace"))
                if predicate_dir is None or cluster == predicate_dir or predicate_dir in cluster.parents:
                    found[int(entry.name)] = cluster
                break
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_and_wait(
    pids: list[int], timeout: float = 5.0, reap: Sequence[subprocess.Popen[bytes]] = ()
) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; return those still alive at the deadline.
    ``reap``: the caller's own children, collected as they die."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pending = list(reap)
    alive = [p for p in pids if pid_alive(p)]

    def gone() -> bool:
        nonlocal pending, alive
        pending = [proc for proc in pending if proc.poll() is None]
        alive = [p for p in alive if pid_alive(p)]
        return not (alive or pending)

    with contextlib.suppress(WaitTimeout):
        wait_until(gone, timeout, what="the killed processes to go", interval=0.01)
    return alive + [proc.pid for proc in pending]
