"""free_port hands out ports below the ephemeral range, never one another process holds, never twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from testbed import ports


def test_ports_are_below_the_ephemeral_range_and_distinct() -> None:
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    given = [ports.free_port() for _ in range(50)]
    assert len(set(given)) == 50
    assert all(ports.LOW <= p <= ports.HIGH < low for p in given)


def test_a_port_reserved_by_another_process_is_never_handed_out() -> None:
    # another process reserves 40 ports and reports them, then waits on stdin while holding them
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from testbed import ports; "
            "print(' '.join(str(ports.free_port()) for _ in range(40)), flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        theirs = {int(p) for p in child.stdout.readline().split()}
        assert len(theirs) == 40
        # narrowed to one of their ports, which nobody is listening on, free_port finds nothing
        for port in sorted(theirs)[:5]:
            _expect_none_free(port)
    finally:
        child.kill()
        child.communicate()


def test_a_port_someone_listens_on_is_skipped() -> None:
    with socket.socket() as listener:
        port = ports.free_port()
        os.close(ports._held.pop(port))  # give up the reservation, so only the listener is in the way
        listener.bind(("127.0.0.1", port))
        listener.listen()
        _expect_none_free(port)


def _expect_none_free(port: int) -> None:
    old = ports.LOW, ports.HIGH
    ports.LOW, ports.HIGH = port, port
    try:
        got = ports.free_port()
    except ports.NoFreePort as exc:
        assert "every one is bound or reserved" in str(exc)
    else:
        raise AssertionError(f"free_port handed out {got}, which is taken")
    finally:
        ports.LOW, ports.HIGH = old
