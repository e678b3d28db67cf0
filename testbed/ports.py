"""The one place the tests and the testbed get a loopback TCP port for a server they are about to start.

Asking the kernel for port 0 and handing the number on is racy twice over on a busy machine: the number
comes from the ephemeral range, which every outgoing connection (a client of the API server, an SSH
session, a pull) also draws from, and another process (another xdist worker) may be handed the same
number before the server binds it. A CI run lost a kube-apiserver to ``bind: address already in use``
that way.

So ``free_port()`` picks from 20000-32767, below Linux's default ephemeral range (32768-60999), which no
outgoing connection uses; takes the port only if it can bind it now; and reserves it across processes
with an exclusive ``flock`` on ``/tmp/shimshift-ports/<port>``, held for the life of the process that
asked (the kernel drops it when that process exits, so a crash leaves nothing stale). A process never
hands out the same port twice."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import threading
from pathlib import Path

LOW, HIGH = 20000, 32767
LOCKS = Path("/tmp/shimshift-ports")

_lock = threading.Lock()
_held: dict[int, int] = {}  # port -> the fd whose flock reserves it


class NoFreePort(RuntimeError):
    """Every port of the range is bound or reserved; the message says where to look."""


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _reserve(port: int) -> int | None:
    LOCKS.mkdir(mode=0o1777, parents=True, exist_ok=True)
    fd = os.open(LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def free_port() -> int:
    """A loopback port no one is listening on and no other process of the testbed has been given."""
    with _lock:
        start = random.randint(LOW, HIGH)
        span = HIGH - LOW + 1
        for offset in range(span):
            port = LOW + (start - LOW + offset) % span
            if port in _held:
                continue
            fd = _reserve(port)
            if fd is None:
                continue
            if not _bindable(port):
                os.close(fd)
                continue
            _held[port] = fd
            return port
    raise NoFreePort(f"no free port in {LOW}-{HIGH}: every one is bound or reserved under {LOCKS}")
