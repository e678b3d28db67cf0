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

Then the reports themselves: each format's size (goals at 5,000 nodes: Markdown <= 4 MiB, HTML
<= 8 MiB; the JSON is complete, whatever its size), as a ratio of the snapshot's size on disk; how
Plan mode stores them (shimshift.kube.reportstore.pack: bytes of data+binaryData and ConfigMaps, each
within the 1 MiB a ConfigMap holds), then that store on the API emulator, which refuses what a real
server refuses, read back by `shimshift report` in each format and by the kubectl pipeline of
docs/plan-reports.md and compared byte for byte; and the HTML page in headless Chromium (`--chromium`, default
/usr/bin/chromium): the time from navigation start until the page is loaded and laid out, measured in the
page by an appended probe, and the browser process's wall time against the
same for an empty page (its start-up: the baseline). Goal: under 5 s.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import os
import resource
import shutil
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


PROBE = """<script>
window.addEventListener('load', function () {
  document.body.getBoundingClientRect();  // forces style and layout of the whole page
  var pre = document.createElement('pre'); pre.id = 'render-ms';
  pre.textContent = String(Math.round(performance.now())); document.body.appendChild(pre);
});
</script>"""


def chromium_render(chromium: str, page: Path, profile: Path) -> tuple[float, float]:
    """(milliseconds to load and lay out `page`, measured in the page; process wall seconds)."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    argv += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    argv += [f"--user-data-dir={profile}", "--window-size=1400,2200", "--dump-dom", probe.as_uri()]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    _, marker, rest = proc.stdout.partition('<pre id="render-ms">')
    if not marker:
        raise SystemExit(f"chromium did not render {page}: {proc.stderr[-2000:]}")
    return float(rest.split("<", 1)[0]), wall


def report_sizes(tmp: Path, snapshot_bytes: int, nodes: int, chromium: str) -> None:
    sys.path.insert(0, str(REPO / "operator"))
    from shimshift.kube.reportstore import pack, stored_sizes

    files = {}
    for fmt, file, goal in (
        ("markdown", "report.md", 4.0),
        ("html", "report.html", 8.0),
        ("json", "report.json", None),
    ):
        path = tmp / f"report.{fmt}"
        if not path.exists():
            continue
        files[file] = path.read_text()
        mib = path.stat().st_size / 1024**2
        scaled = None if goal is None else goal * nodes / 5000
        verdict = "complete" if scaled is None else ("ok" if mib <= scaled else "OVER GOAL")
        print(
            f"report size {fmt:<8} {mib:8.2f} MiB, {path.stat().st_size / snapshot_bytes:.3f}x the snapshot "
            f"[{verdict}{'' if scaled is None else f': <= {scaled:g} MiB'}]"
        )
    boxes = pack("bench", files)
    sizes = stored_sizes(boxes)
    total = sum(len(t.encode()) for t in files.values())
    print(
        f"stored (Plan mode): {sum(sizes) / 1024**2:.2f} MiB in {len(boxes)} ConfigMap(s), largest "
        f"{max(sizes) / 1024:.0f} KiB of 1024 KiB; {sum(sizes) / total:.3f}x the reports' "
        f"{total / 1024**2:.0f} MiB"
    )
    store_in_emulator(tmp, files)
    if "report.html" not in files:
        return
    if not Path(chromium).exists():
        print(f"chromium render: skipped, {chromium} not found")
        return
    empty = tmp / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body><p>x</p></body></html>")
    base_ms, base_wall = chromium_render(chromium, empty, tmp / "profile")
    ms, wall = chromium_render(chromium, tmp / "report.html", tmp / "profile")
    print(
        f"chromium render report.html: {ms / 1000:6.2f} s in the page ({base_ms / 1000:.2f} s for an empty "
        f"page), process {wall:6.2f} s wall vs {base_wall:.2f} s for an empty page "
        f"({wall / base_wall:.2f}x) [{'ok' if ms < 5000 else 'OVER GOAL'}: < 5 s]"
    )


KUBECTL = ("kubectl", "--kubeconfig")
SELECTOR = "shimshift.io/report-for=bench"
PLAIN_MD = "jsonpath={.data.report\\.md}"


def store_in_emulator(tmp: Path, files: dict[str, str]) -> None:
    """Plan mode's store and `shimshift report` against the API emulator, which refuses what a real API
    server refuses (testbed/kubeapi/limits.py); then the kubectl pipeline of docs/plan-reports.md."""
    sys.path.insert(0, str(REPO))
    from testbed.kubeapi.runner import EmulatorConfig, EmulatorThread, write_kubeconfig

    from shimshift.kube.api import Kube, load_api_client
    from shimshift.kube.reportstore import store_report

    thread = EmulatorThread(EmulatorConfig(controllers=False))
    url = thread.start()
    try:
        kubeconfig = write_kubeconfig(tmp / "kubeconfig", url)
        kube = Kube(load_api_client(str(kubeconfig)))
        started = time.monotonic()
        store_report(kube, "default", "bench", "", files)
        stored_s = time.monotonic() - started
        listed = kube.request("GET", "/api/v1/namespaces/default/configmaps")
        kube.close()
        same = []
        env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
        for fmt, file in (("md", "report.md"), ("json", "report.json"), ("html", "report.html")):
            if file not in files:
                continue
            out = tmp / f"read.{fmt}"
            argv = [sys.executable, "-m", "shimshift", "report", "bench", "-n", "default"]
            argv += ["--kubeconfig", str(kubeconfig), "--format", fmt, "-o", str(out)]
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
            same.append(f"{fmt} {'identical' if out.read_text() == files[file] else 'DIFFERENT'}")
        pipeline = "skipped (kubectl or jq missing)"
        if shutil.which("kubectl") and shutil.which("jq") and "report.md" in files:
            got = subprocess.run(
                [*KUBECTL, str(kubeconfig), "-n", "default", "get", "cm", "-l", SELECTOR, "-o", "json"],
                capture_output=True,
                check=True,
                timeout=300,
            ).stdout
            joined = subprocess.run(
                [
                    "jq",
                    "-j",
                    '[.items[].binaryData // {} | to_entries[] | select(.key | startswith("report.md.gz."))]'
                    " | sort_by(.key) | .[].value",
                ],
                input=got,
                capture_output=True,
                check=True,
                timeout=300,
            ).stdout
            if joined:
                md = gzip.decompress(base64.b64decode(joined)).decode()
            else:  # the plain form: one ConfigMap, text in data
                md = subprocess.run(
                    [*KUBECTL, str(kubeconfig), "-n", "default", "get", "cm", "bench-plan", "-o", PLAIN_MD],
                    capture_output=True,
                    check=True,
                    text=True,
                    timeout=300,
                ).stdout
            pipeline = "identical" if md == files["report.md"] else "DIFFERENT"
        print(
            f"stored in the API emulator (its real size limits): {len(listed.get('items') or [])} "
            f"ConfigMap(s) in {stored_s:.2f} s; shimshift report: {', '.join(same)}; "
            f"kubectl | jq | base64 -d | gunzip (md): {pipeline}"
        )
    finally:
        thread.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--pdbs", type=int, default=2000)
    parser.add_argument("--formats", default="json,markdown,html")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="browser for the HTML render time")
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
        report_sizes(Path(tmp), size, args.nodes, args.chromium)
    return 0


if __name__ == "__main__":
    sys.exit(main())
