"""runc as the nodes' container runtimes call it, with a container's ``oomScoreAdj`` raised to what the
testbed may set.

kubelet asks for negative OOM scores (-998 for every pod sandbox, -997 for critical and Guaranteed
pods), which needs CAP_SYS_RESOURCE; the testbed host runs without it, so runc fails the container
(``can't get final child's PID from pipe: EOF``). Inside each node this script is mounted over
/usr/sbin/runc (for dockerd and containerd alike): on ``create`` and ``run`` it raises the bundle's
``process.oomScoreAdj`` to its own score (the lowest it may set), as containerd's
``restrict_oom_score_adj`` does for rootless runs, then execs the real runc. Stdlib only: it runs
with ``python -I -S`` on every runc call.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: Where a node sees the real runc (bound there by ``init.py`` before this script hides /usr/sbin/runc).
REAL_RUNC = "/opt/testbed/runc.real"


def bundle_of(argv: list[str]) -> Path:
    for i, arg in enumerate(argv):
        if arg in ("--bundle", "-b") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--bundle="):
            return Path(arg.split("=", 1)[1])
    return Path()


def clamp(argv: list[str], floor: int) -> bool:
    """Raise the bundle's oomScoreAdj to ``floor`` for ``create``/``run``; True if it was changed."""
    if "create" not in argv and "run" not in argv:
        return False
    path = bundle_of(argv) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    process = config.get("process")
    if not isinstance(process, dict) or not isinstance(process.get("oomScoreAdj"), int):
        return False
    if process["oomScoreAdj"] >= floor:
        return False
    process["oomScoreAdj"] = floor
    tmp = path.with_name(path.name + ".testbed")
    tmp.write_text(json.dumps(config))
    tmp.replace(path)
    return True


def main() -> None:
    argv = sys.argv[1:]
    try:
        floor = int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        floor = 0
    clamp(argv, floor)
    os.execv(REAL_RUNC, [REAL_RUNC, *argv])  # noqa: S606 - the caller's argv, no shell


if __name__ == "__main__":
    main()
