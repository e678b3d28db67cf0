"""``python -m testbed``: bring testbed nodes up and down from a shell.

    python -m testbed up --nodes 4 [--profiles kubeadm-systemd,kubespray] [--name demo]
                         [--kubeconfig FILE]   # start the fake kubelets against that API server
    python -m testbed status [--name demo]
    python -m testbed down [--name demo | --all]
    python -m testbed controlplane up [--name demo] [--version v1.24.17]   # a real control plane
    python -m testbed controlplane status|down [--name demo]

``up`` leaves the cluster running after it exits and prints its coordinates as JSON (also in
``<root>/<name>/cluster.json``): SSH host/port/user per node, the client key and known_hosts.
``down`` kills every process of the cluster and removes its directory.
``controlplane up`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
pod-lifecycle stand-in (``testbed.controlplane``), leaves them running and prints their coordinates as
JSON (the admin kubeconfig among them); pass that kubeconfig to ``up --kubeconfig`` to register the
nodes' kubelets with it, each with its own node certificate.
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

from testbed.components import ComponentMissing
from testbed.controlplane.cluster import DEFAULT_ROOT as CONTROLPLANE_ROOT
from testbed.controlplane.cluster import ControlPlane, ControlPlaneError
from testbed.controlplane.cluster import teardown_dir as teardown_controlplane
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
    plane = sub.add_parser("controlplane", help="a real Kubernetes control plane on the host's loopback")
    plane.add_argument("action", choices=["up", "down", "status"])
    plane.add_argument("--name", default="testbed")
    plane.add_argument("--version", help="a Kubernetes version listed in scripts/components/versions")
    plane.add_argument(
        "--controlplane-root", type=Path, default=CONTROLPLANE_ROOT, help="where run dirs live"
    )
    args = parser.parse_args(argv)
    if not getattr(args, "all", False):
        problem = cluster_name_problem(args.name, getattr(args, "nodes", 1))
        if problem:
            parser.error(f"argument --name: {problem}")  # exits 2 with the usage
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    if args.command == "controlplane":
        return _controlplane(args)
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
                server = document["clusters"][0]["cluster"]["server"]
                real = _plane_serving(server)
                cluster.attach_api(
                    server, args.kubeconfig, node_kubeconfig=real.node_kubeconfig if real else None
                )
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


def _plane_serving(server: str, root: Path = CONTROLPLANE_ROOT) -> ControlPlane | None:
    """The control plane (started by ``controlplane up``) whose API server is ``server``, if any: its
    nodes then get their own node certificates."""
    for state in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        plane = ControlPlane.attach(state.parent.name, root)
        if plane is not None and plane.url == server:
            return plane
    return None


def _controlplane(args: argparse.Namespace) -> int:
    root: Path = args.controlplane_root
    started = time.monotonic()
    if args.action == "up":
        try:
            plane = ControlPlane.up(args.name, root=root, version=args.version)
        except (ComponentMissing, ControlPlaneError) as e:
            print(f"controlplane up: {e}", file=sys.stderr)
            return 1
        print(json.dumps(plane.describe(), indent=1))
        print(f"controlplane up: {plane.version} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 0
    if args.action == "down":
        teardown_controlplane(root / args.name)
        print(f"controlplane down: {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 0
    found = ControlPlane.attach(args.name, root)
    if found is None:
        print(f"no control plane {args.name!r} under {root}", file=sys.stderr)
        return 1
    print(json.dumps({**found.describe(), "running": found.running()}, indent=1))
    return 0 if all(found.running().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
