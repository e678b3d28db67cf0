"""Planning at scale: `shimshift plan` on a generated snapshot of 5,000 nodes, 150,000 pods, 2,000 PDBs.

    python3 bench/plan_bench.py [--nodes 5000] [--pods 150000] [--pdbs 2000] [--formats json,markdown,html]
                                [--repeat 3]

Each measurement is a fresh `python -m shimshift ...` process (what a user runs): wall clock, CPU time
(user + system, from the kernel) and peak RSS (read by the process itself at exit); each is taken
`--repeat` times and the median printed. Baseline measured in the same run: a process that only loads
the same snapshot (`load_snapshot`), so the ratios say what planning and rendering add on top of
reading the files. Targets: under 10 s and under 1 GB for a 5,000-node fleet. The verdict reads CPU time: the
machines are shared, and wall time there measures the neighbours as much as the plan.
The snapshot is generated first (testbed.snapshot_gen fleet, deterministic) and not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WRAP = """
import runpy, sys
args = sys.argv[1:]
try:
    if args[0] == "load":
        from pathlib import Path
        from shimshift.entry.plancli import gc_paused
        from shimshift.planning.snapshot import load_snapshot
        with gc_paused():  # as `shimshift plan` loads it
            load_snapshot(Path(args[1]))
    else:
        sys.argv = ["shimshift", *args]
        runpy.run_module("shimshift", run_name="__main__")
finally:
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's RSS across fork+exec.
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("PEAK_KB", hwm, file=sys.stderr)
"""


def measure(args: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak MiB, exit status) of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", WRAP, *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
    if proc.returncode not in (0, 2, 3) or not peak:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, peak[0] / 1024, proc.returncode


def median_of(repeat: int, args: list[str]) -> tuple[float, float, float, int]:
    """`measure` taken `repeat` times, the median of each figure (the machines are shared and noisy)."""
    runs = [measure(args) for _ in range(repeat)]
    wall, cpu, peak = (statistics.median(r[i] for r in runs) for i in range(3))
    return wall, cpu, peak, runs[-1][3]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--pdbs", type=int, default=2000)
    parser.add_argument("--formats", default="json,markdown,html")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / "snapshot"
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "testbed.snapshot_gen",
                "fleet",
                str(snap),
                "--nodes",
                str(args.nodes),
                "--pods",
                str(args.pods),
                "--pdbs",
                str(args.pdbs),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'operator'}"},
            check=True,
            timeout=900,
        )
        size = sum(p.stat().st_size for p in snap.rglob("*") if p.is_file())
        print(f"snapshot: {size / 1024**2:.0f} MiB on disk, generated in {time.monotonic() - started:.0f} s")
        print(
            f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
            "(wall time suffers when it is high; CPU time much less)"
        )
        b_wall, b_cpu, b_mb, _ = median_of(args.repeat, ["load", str(snap)])
        print(
            f"baseline, load_snapshot only:    {b_wall:6.2f} s wall {b_cpu:6.2f} s CPU {b_mb:6.0f} MiB peak"
        )
        manifest = REPO / "examples" / "fleet-plan.yaml"
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"report.{fmt}"
            argv = ["plan", "--snapshot", str(snap), "-f", str(manifest), "--format", fmt, "-o", str(out)]
            wall, cpu, mb, status = median_of(args.repeat, [*argv, "--now", "2026-01-15T10:00:00Z"])
            verdict = "ok" if cpu < 10 and mb < 1024 else "OVER TARGET"
            print(
                f"shimshift plan --format {fmt:<8} {wall:6.2f} s wall {cpu:6.2f} s CPU {mb:6.0f} MiB peak "
                f"(exit {status}, report {out.stat().st_size / 1024**2:.0f} MiB); vs baseline "
                f"{wall / b_wall:.2f}x wall, {cpu / b_cpu:.2f}x CPU, {mb / b_mb:.2f}x memory "
                f"[{verdict}: < 10 s CPU, < 1 GB]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
