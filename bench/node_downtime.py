"""Time out of service per node: the seconds one testbed node stays cordoned while shimshift migrates it.

    python3 bench/node_downtime.py [--profile NAME] [--extra-images 6] [--base-mb 20] [--each-mb 4]
                                   [--timeout 300] [--save DIR]
    python3 bench/node_downtime.py --records BEFORE.json AFTER.json

Each run brings up one fresh testbed node (real sshd, containerd and dockerd; the profile with the most
images, `--extra-images` more loaded into its Docker so the images step has weight), the API emulator
with its scheduler and workload controllers, a Deployment of two pods and a kube-proxy DaemonSet on
it, and the shipped operator (`shimshift run`, over SSH, the real playbooks); it migrates the node
and reads its NodeMigrationNode: `cordonedSeconds` (the cordon's Done to the finish's Done) and
where that time went, step by step, from the step records.

Two runs in the same invocation, on two fresh nodes of the same profile: `before` with staging off
(`spec.staging: AfterCordon`: cordon, drain, then backup, configure, images, switch, verify, finish)
and `after` with staging on (`BeforeCordon`, the default: backup, configure and images while the node
serves, then cordon, drain, recheck, switch, verify, finish). Output:

    images: N in Docker, X MiB (unique layers; Y MiB of them the --extra-images)
    run before: cordoned_s=... wall_s=... parts: drain=... backup=... ...
    run after:  ...
    downtime: cordoned_s_before=A cordoned_s_after=B ratio=A/B
    wall: fleet_s_before=... fleet_s_after=... ratio=...

For a node with 2 GiB of images: `--extra-images 10 --base-mb 200 --each-mb 190`.

`--save DIR` keeps both NodeMigrationNode objects as JSON; `--records` prints the same lines from
two saved objects without bringing anything up. Needs root (the testbed's namespaces), like the e2e
suite; one run takes one to three minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness.py, also when loaded by path

from testbed.nodes.images import ImageSpec, benchmark_images, node_images
from testbed.nodes.profiles import PROFILE_NAMES, PROFILES, ProfileName

from harness import migrate, ready_on, ssh_secrets, workload
from shimshift.model.cordoned import cordoned_parts
from shimshift.model.keys import StepId
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.status import NodePhase, NodeRecord

MIGRATION = "downtime"
#: Whether the operator stages backup, configure and images before the cordon (`spec.staging`).
STAGING_BUILT = True
#: spec.staging of each run: the old order, then the staged one.
STAGING = {"before": "AfterCordon", "after": "BeforeCordon"}
PART_STEPS = (
    StepId.DRAIN,
    StepId.BACKUP,
    StepId.CONFIGURE,
    StepId.IMAGES,
    StepId.RECHECK,
    StepId.SWITCH,
    StepId.VERIFY,
    StepId.FINISH,
)


@dataclass(frozen=True)
class Run:
    """One migration of one node: its record as the operator left it, and the fleet's wall time (from
    the operator's first status write on the NodeMigration to its phase Succeeded)."""

    label: str
    record: NodeRecord
    wall_s: float


# ---- pure parts (tests/unit/test_bench_node_downtime.py) --------------------------------------------


def _unique_bytes(images: Sequence[ImageSpec]) -> int:
    return sum({layer.name: layer.size_bytes for image in images for layer in image.layers}.values())


def profile_with_most_images() -> str:
    """The testbed profile whose nodes hold the most images (then the most bytes of them); among equals
    the first on the cgroupfs driver, where Docker really runs the pods' containers (on the systemd
    driver it only creates them), so the switch stops running containers as on a real node."""

    def weight(name: str) -> tuple[int, int, bool]:
        p = PROFILES[ProfileName(name)]
        images = node_images(p.sandbox_image, p.kubelet_version)
        return len(images), _unique_bytes(images), p.cgroup_driver == "cgroupfs"

    best = max(weight(n) for n in PROFILE_NAMES)
    return next(n for n in PROFILE_NAMES if weight(n) == best)


def part_seconds(record: NodeRecord) -> dict[str, int]:
    """The cordoned time by step (every step of PART_STEPS, 0 when it ran outside the cordon or not at
    all) and `other`: what no step accounts for (the engine between steps, the status writes)."""
    parts = cordoned_parts(record)
    out = {str(step): parts.get(step, 0) for step in PART_STEPS}
    out["other"] = max(0, (record.cordoned_seconds or 0) - sum(parts.values()))
    return out


def run_line(run: Run) -> str:
    parts = " ".join(f"{k}={v}" for k, v in part_seconds(run.record).items())
    seconds = run.record.cordoned_seconds
    cordoned = "none" if seconds is None else str(seconds)
    head = f"run {run.label}: phase={run.record.phase} cordoned_s={cordoned} wall_s={run.wall_s:.1f}"
    return f"{head} parts: {parts}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


def report(before: Run, after: Run, *, staging_built: bool = STAGING_BUILT) -> list[str]:
    """The bench's output lines for a run in the current order and one with staging."""
    a, b = before.record.cordoned_seconds, after.record.cordoned_seconds
    lines = [run_line(before), run_line(after)]
    if not staging_built:
        lines.append(
            "staging is not built yet: 'after' ran the current order again, so cordoned_s_after is a "
            "second baseline and the ratio is run-to-run noise, not a gain"
        )
    if a is None or b is None:
        lines.append("downtime: a run has no cordonedSeconds (did it succeed? see the phases above)")
    else:
        lines.append(f"downtime: cordoned_s_before={a} cordoned_s_after={b} ratio={_ratio(a, b)}")
    lines.append(
        f"wall: fleet_s_before={before.wall_s:.1f} fleet_s_after={after.wall_s:.1f} "
        f"ratio={_ratio(before.wall_s, after.wall_s)}"
    )
    return lines


def image_volume_line(args: argparse.Namespace) -> str:
    """How many images the node's Docker holds and their unique bytes: the profile's own and the extra."""
    p = PROFILES[ProfileName(args.profile)]
    own = node_images(p.sandbox_image, p.kubelet_version)
    extra = (
        benchmark_images(base_mb=args.base_mb, count=args.extra_images, each_mb=args.each_mb)
        if args.extra_images
        else []
    )
    mib = 1024**2
    return (
        f"images: {len(own) + len(extra)} in Docker, {_unique_bytes([*own, *extra]) / mib:.0f} MiB "
        f"(unique layers; {_unique_bytes(extra) / mib:.0f} MiB of them the --extra-images)"
    )


def load_run(label: str, path: Path) -> Run:
    """A run saved by `--save`: the NodeMigrationNode object, with the wall time beside it."""
    saved = json.loads(path.read_text())
    return Run(label, record_of(saved["object"]), float(saved.get("wallSeconds", 0.0)))


def save_run(run: Run, obj: Mapping[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.label}.json"
    path.write_text(json.dumps({"wallSeconds": run.wall_s, "object": obj}, indent=1))
    return path


# ---- one migration on the testbed ---------------------------------------------------------------


def migrate_once(label: str, args: argparse.Namespace, workdir: Path) -> tuple[Run, dict[str, Any]]:
    """Bring up one node, migrate it with the shipped operator, tear it down; the run and the node's
    NodeMigrationNode object."""
    from testbed.nodes import Cluster
    from testbed.nodes.seeding import load_images
    from testbed.waiting import wait_until
    from tests.e2e.conftest import emulator_for

    profile = PROFILES[ProfileName(args.profile)]
    workdir.mkdir(parents=True)
    with Cluster.up(f"downtime-{label}-{os.getpid()}", [args.profile]) as nodes:
        node = nodes.nodes[0]
        if args.extra_images:
            extra = benchmark_images(base_mb=args.base_mb, count=args.extra_images, each_mb=args.each_mb)
            load_images([node], extra, workdir / "extra-images.tar")
        with emulator_for(nodes, workdir, workloads=True) as api:
            wait_until(
                lambda: ready_on(api.get("nodes", node.name) or {}, "docker://"),
                90,
                what="the kubelet Ready on Docker",
            )
            # two web pods (no budget: with one node, a replacement has nowhere to run until the uncordon)
            api.seed([*ssh_secrets(nodes), *workload(profile.kubelet_version, replicas=2)])
            wait_until(
                lambda: len(api.list("pods", namespace="default", label_selector="app=web")) == 2,
                60,
                what="the web pods",
            )
            spec = {"staging": STAGING[label], "nodeNames": [node.name]}
            migrated = migrate(api, nodes, workdir, MIGRATION, spec, args.timeout)
            obj = api.get("nodemigrationnodes.shimshift.io", child_name(MIGRATION, node.name)) or {}
    run = Run(label, record_of(obj), migrated.wall_s)
    if run.record.phase != NodePhase.SUCCEEDED:
        print(f"run {label}: the node ended {run.record.phase}; operator log tail:", file=sys.stderr)
        print(migrated.log_tail, file=sys.stderr)
    return run, obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seconds one testbed node stays cordoned while shimshift migrates it, "
        "with staging off (spec.staging AfterCordon) and on (BeforeCordon)."
    )
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=None,
        help="testbed profile (default: the one with the most images)",
    )
    parser.add_argument("--extra-images", type=int, default=6, help="images loaded into Docker on top")
    parser.add_argument("--base-mb", type=int, default=20, help="their shared base layer, MB")
    parser.add_argument("--each-mb", type=int, default=4, help="each one's own layer, MB")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one migration may take")
    parser.add_argument("--save", type=Path, help="keep both NodeMigrationNode objects here as JSON")
    parser.add_argument(
        "--records",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="print the figures of two runs saved with --save; bring nothing up",
    )
    args = parser.parse_args(argv)
    if args.records:
        missing = [str(p) for p in args.records if not p.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)} (files written by --save DIR)")
        try:
            before, after = load_run("before", args.records[0]), load_run("after", args.records[1])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            parser.error(f"not a run saved by --save: {e}")
        print("\n".join(report(before, after)))
        return 0
    args.profile = args.profile or profile_with_most_images()
    print(
        f"profile {args.profile}, {args.extra_images} extra images "
        f"({args.base_mb} MB shared base + {args.each_mb} MB each)",
        flush=True,
    )
    print(image_volume_line(args), flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="downtime-bench-") as tmp:
        for label in ("before", "after"):
            run, obj = migrate_once(label, args, Path(tmp) / label)
            runs.append(run)
            print(run_line(run), flush=True)
            if args.save:
                save_run(run, obj, args.save)
    print("\n".join(report(runs[0], runs[1])[2:]))
    ok = all(r.record.phase == NodePhase.SUCCEEDED for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
