"""`python -m shimshift` that reports its own peak RSS (VmHWM) to the file named by
`SHIMSHIFT_FUZZ_HWM` when it ends, however it ends short of being killed.

Why not the child's `ru_maxrss` from `wait4`: Linux carries the high-water mark of the memory a child
had before `exec` (a copy of its parent's, a large pytest late in the suite) into the rusage of the
program it becomes, so a 60 MB CLI read as 271 MB in a full run. VmHWM belongs to the program's own
address space, which `exec` starts anew.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path


def peak_kib() -> int:
    """This process's VmHWM (peak resident set) in KiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def main() -> None:
    try:
        runpy.run_module("shimshift", run_name="__main__", alter_sys=True)
    finally:
        path = os.environ.get("SHIMSHIFT_FUZZ_HWM")
        if path:
            Path(path).write_text(str(peak_kib()), encoding="ascii")


if __name__ == "__main__":
    main()
