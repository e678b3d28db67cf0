"""Bring-up and teardown time of N testbed nodes (targets: 4 nodes up < 20 s, down < 5 s).

    python3 bench/nodes_bringup.py [--nodes 4] [--rounds 3] [--no-images]

Baseline measured in the same run: bringing up one node, so the ratio shows how well nodes start
in parallel on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.nodes import Cluster
from testbed.nodes.profiles import PROFILE_NAMES as ALL_PROFILES


def measure(count: int, images: bool) -> tuple[float, float]:
    profiles = [ALL_PROFILES[i % len(ALL_PROFILES)] for i in range(count)]
    started = time.monotonic()
    cluster = Cluster.up(f"bench-{count}", profiles, images=images)
    up = time.monotonic() - started
    started = time.monotonic()
    cluster.down()
    return up, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-images", action="store_true")
    args = parser.parse_args(argv)
    images = not args.no_images
    base = [measure(1, images) for _ in range(args.rounds)]
    runs = [measure(args.nodes, images) for _ in range(args.rounds)]
    b_up = statistics.median(u for u, _ in base)
    up, down = statistics.median(u for u, _ in runs), statistics.median(d for _, d in runs)
    print(f"1 node:   up {b_up:.2f}s (median of {args.rounds})")
    print(
        f"{args.nodes} nodes: up {up:.2f}s, down {down:.2f}s (median of {args.rounds}; "
        f"max up {max(u for u, _ in runs):.2f}s, max down {max(d for _, d in runs):.2f}s)"
    )
    print(f"ratio up({args.nodes}) / up(1) = {up / b_up:.2f}  (images seeded: {images})")
    return 0 if up < 20 and down < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
