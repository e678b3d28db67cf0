"""Rollout speed-up on real testbed nodes: the same four-node migration one node at a time, then four at once.

    python3 bench/rollout_testbed.py [--profile NAME] [--nodes 4] [--timeout 900] [--save DIR]
    python3 bench/rollout_testbed.py --records SERIAL.json PARALLEL.json

Two runs in one invocation, each on fresh testbed nodes of one profile (real sshd, containerd and
dockerd; the model kubelet), the API emulator with its scheduler and workload controllers, a kube-proxy
DaemonSet pod on every node and a Deployment of one pod per node, and the shipped operator (`shimshift
run` over SSH, the real playbooks):

- `serial`: `rollout.maxUnavailable: 1`;
- `parallel`: `rollout.maxUnavailable: N` (every node in one wave).

The wall time of a run is from the operator's first status write on the NodeMigration to its phase
Succeeded. Output:

    run serial: phase=Succeeded wall_s=... nodes=4 node_s: min=... max=...
    run parallel: ...
    rollout: serial_s=A parallel_s=B speedup=A/B

`speedup` is bounded by N; on a shared two-core machine the parallel run's nodes compete for the same
cores (every node's image import and daemon restarts are real work), so it measures how much of a
node's migration is waiting (drain, restarts, verify) rather than CPU. `--save DIR` keeps each run's
NodeMigration and NodeMigrationNode objects as JSON; `--records` prints the lines again from them. Needs
root (the testbed's namespaces), like the e2e suite.
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

from testbed.nodes.profiles import PROFILE_NAMES, PROFILES, ProfileName

from harness import migrate, ready_on, ssh_secrets, workload
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.status import NodePhase, NodeRecord
from shimshift.model.timestamps import parse_iso

MIGRATION = "speedup"
DEFAULT_PROFILE = ProfileName.KUBEADM_CGROUPFS.value


@dataclass(frozen=True)
class Run:
    """One rollout: its label, the wall time of the whole NodeMigration, and every node's record."""

    label: str
    phase: str
    wall_s: float
    records: tuple[NodeRecord, ...]


# ---- pure parts (tests/unit/test_bench_rollout_testbed.py) ------------------------------------------


def node_seconds(record: NodeRecord) -> float | None:
    """From the node's first step start to its last step end, or None for a node that never ran."""
    starts = [t for s in record.steps if (t := parse_iso(s.started_at)) is not None]
    ends = [t for s in record.steps if (t := parse_iso(s.finished_at)) is not None]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def run_line(run: Run) -> str:
    seconds = [s for s in (node_seconds(r) for r in run.records) if s is not None]
    spread = f"min={min(seconds):.1f} max={max(seconds):.1f}" if seconds else "none"
    succeeded = sum(1 for r in run.records if r.phase == NodePhase.SUCCEEDED)
    return (
        f"run {run.label}: phase={run.phase} wall_s={run.wall_s:.1f} nodes={len(run.records)} "
        f"succeeded={succeeded} node_s: {spread}"
    )


def report(serial: Run, parallel: Run) -> list[str]:
    """The bench's output lines; the speed-up only when both rollouts succeeded."""
    lines = [run_line(serial), run_line(parallel)]
    if serial.phase != "Succeeded" or parallel.phase != "Succeeded":
        lines.append("rollout: a run did not succeed (see the phases above): no speed-up to compare")
    elif parallel.wall_s <= 0:
        lines.append("rollout: the parallel run has no wall time")
    else:
        lines.append(
            f"rollout: serial_s={serial.wall_s:.1f} parallel_s={parallel.wall_s:.1f} "
            f"speedup={serial.wall_s / parallel.wall_s:.2f}"
        )
    return lines


def load_run(label: str, path: Path) -> Run:
    saved = json.loads(path.read_text())
    records = tuple(record_of(obj) for obj in saved["nodes"])
    return Run(label, str(saved["phase"]), float(saved["wallSeconds"]), records)


def save_run(run: Run, nodes: Sequence[Mapping[str, Any]], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.label}.json"
    path.write_text(
        json.dumps({"phase": run.phase, "wallSeconds": run.wall_s, "nodes": list(nodes)}, indent=1)
    )
    return path


# ---- one rollout on the testbed ----------------------------------------------------------------


def rollout_once(
    label: str, max_unavailable: int, args: argparse.Namespace, workdir: Path
) -> tuple[Run, list[dict[str, Any]]]:
    """Bring up fresh nodes, migrate them all with `maxUnavailable`, tear them down."""
    from testbed.nodes import Cluster
    from testbed.waiting import wait_until
    from tests.e2e.conftest import emulator_for

    profile = PROFILES[ProfileName(args.profile)]
    workdir.mkdir(parents=True)
    with Cluster.up(f"speedup-{label}-{os.getpid()}", [args.profile] * args.nodes) as nodes:
        names = [n.name for n in nodes.nodes]
        with emulator_for(nodes, workdir, workloads=True) as api:
            wait_until(
                lambda: all(ready_on(api.get("nodes", n) or {}, "docker://") for n in names),
                120,
                what="every kubelet Ready on Docker",
            )
            api.seed([*ssh_secrets(nodes), *workload(profile.kubelet_version, replicas=args.nodes)])
            spec = {"nodeNames": names, "rollout": {"maxUnavailable": max_unavailable}}
            migrated = migrate(api, nodes, workdir, MIGRATION, spec, args.timeout)
            children = [
                api.must_get("nodemigrationnodes.shimshift.io", child_name(MIGRATION, n)) for n in names
            ]
    run = Run(label, migrated.phase, migrated.wall_s, tuple(record_of(obj) for obj in children))
    if run.phase != "Succeeded":
        print(f"run {label}: the rollout ended {run.phase}; operator log tail:", file=sys.stderr)
        print(migrated.log_tail, file=sys.stderr)
    return run, children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Wall time of one rollout over fresh testbed nodes, one node at a time and all at once."
    )
    parser.add_argument("--profile", choices=PROFILE_NAMES, default=DEFAULT_PROFILE, help="testbed profile")
    parser.add_argument(
        "--nodes", type=int, default=4, help="nodes per run (and maxUnavailable of the second)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one rollout may take")
    parser.add_argument("--save", type=Path, help="keep each run's NodeMigrationNode objects here as JSON")
    parser.add_argument(
        "--records",
        nargs=2,
        type=Path,
        metavar=("SERIAL", "PARALLEL"),
        help="print the figures of two runs saved with --save; bring nothing up",
    )
    args = parser.parse_args(argv)
    if args.records:
        missing = [str(p) for p in args.records if not p.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)} (files written by --save DIR)")
        try:
            saved = load_run("serial", args.records[0]), load_run("parallel", args.records[1])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            parser.error(f"not a run saved by --save: {e}")
        print("\n".join(report(*saved)))
        return 0
    if not 2 <= args.nodes <= 8:
        parser.error("--nodes must be between 2 and 8 (the testbed's nodes per cluster on this machine)")
    print(f"profile {args.profile}, {args.nodes} nodes per run", flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="speedup-bench-") as tmp:
        for label, limit in (("serial", 1), ("parallel", args.nodes)):
            run, children = rollout_once(label, limit, args, Path(tmp) / label)
            runs.append(run)
            print(run_line(run), flush=True)
            if args.save:
                save_run(run, children, args.save)
    print(report(runs[0], runs[1])[-1])
    return 0 if all(r.phase == "Succeeded" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
