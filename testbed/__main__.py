"""``python -m testbed``: bring testbed nodes up and down from a shell.

    python -m testbed up --nodes 4 [--profiles kubeadm-systemd,kubespray] [--name demo]
                         [--kubeconfig FILE]   # start the fake kubelets against that API server
    python -m testbed status [--name demo]
    python -m testbed down [--name demo | --all]

``up`` leaves the cluster running after it exits and prints its coordinates as JSON (also in
``<root>/<name>/cluster.json``): SSH host/port/user per node, the client key and known_hosts.
``down`` kills every process of the cluster and removes its directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from testbed.nodes.cluster import Cluster, cleanup_stale, cluster_name_problem, teardown_dir
from testbed.nodes.layout import DEFAULT_ROOT
from testbed.nodes.profiles import ProfileName


def _profiles(arg: str | None, count: int) -> list[str]:
    names = [p.strip() for p in arg.split(",")] if arg else [p.value for p in ProfileName]
    known = {p.value for p in ProfileName}
    for name in names:
        if name not in known:
            raise SystemExit(
                f"unknown profile {name!r}; choose from {', '.join(sorted(known))} "
                "(comma-separated, cycled over the nodes)"
            )
    return list(itertools.islice(itertools.cycle(names), count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where cluster dirs live")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring up nodes and leave them running")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--profiles", help="comma-separated profile names, cycled over the nodes")
    up.add_argument("--name", default="testbed")
    up.add_argument("--no-images", action="store_true", help="skip seeding Docker images and containers")
    up.add_argument("--no-registry", action="store_true", help="skip the TLS registry")
    up.add_argument(
        "--kubeconfig",
        type=Path,
        help="register the nodes' fake kubelets with the API server this kubeconfig names "
        "(it must listen on the host's loopback, e.g. python -m testbed.kubeapi)",
    )
    down = sub.add_parser("down", help="tear a cluster down")
    down.add_argument("--name", default="testbed")
    down.add_argument("--all", action="store_true", help="every cluster under --root, and stale ones")
    status = sub.add_parser("status", help="print a cluster's coordinates")
    status.add_argument("--name", default="testbed")
    args = parser.parse_args(argv)
    if not getattr(args, "all", False):
        problem = cluster_name_problem(args.name, getattr(args, "nodes", 1))
        if problem:
            parser.error(f"argument --name: {problem}")  # exits 2 with the usage
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    if args.command == "up":
        started = time.monotonic()
        cluster = Cluster.up(
            args.name,
            _profiles(args.profiles, args.nodes),
            root=args.root,
            images=not args.no_images,
            registry=not args.no_registry,
        )
        try:
            if args.kubeconfig:
                document = yaml.safe_load(args.kubeconfig.read_text())
                cluster.attach_api(document["clusters"][0]["cluster"]["server"], args.kubeconfig)
        except BaseException:
            cluster.down()
            raise
        cluster.detach()
        print(json.dumps(cluster.describe(), indent=1))
        print(f"up: {len(cluster.nodes)} nodes in {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 0
    if args.command == "down":
        started = time.monotonic()
        if args.all:
            for directory in sorted(args.root.iterdir()) if args.root.is_dir() else []:
                teardown_dir(directory)
            cleanup_stale(args.root, include_detached=True)
        else:
            teardown_dir(args.root / args.name)
        print(f"down: {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 0
    described = args.root / args.name / "cluster.json"
    if not described.exists():
        print(f"no cluster {args.name!r} under {args.root}", file=sys.stderr)
        return 1
    print(described.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
