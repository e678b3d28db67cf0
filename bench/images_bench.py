"""Image transfer from Docker into containerd's k8s.io on one testbed node, three ways.

    python3 bench/images_bench.py [--rounds 3] [--images 10] [--base-mb 40] [--each-mb 5]

The images: `--images` images sharing one `--base-mb` MB base layer, `--each-mb` MB of their own on
top (testbed.nodes.images.benchmark_images), loaded into the node's Docker. Each round times, with
containerd emptied (and garbage-collected) before each method:

- naive: per image, `docker save -o FILE IMG` then `ctr -n k8s.io images import FILE` (what most
  migration scripts do);
- shimshift: the images step as the operator runs it (plan with layer batches, the streaming
  `docker save IMG… | ctr import` script, names, verification by image ID); its bare stream is
  shown too;
- floor: `ctr -n k8s.io images import` of an already-saved tar of the same images (the import
  alone, no Docker export at all).

Aims: shimshift >= 2x faster than naive, and within 1.3x of the floor. Ratios of the medians and of
the best rounds (the machine is shared: the best round is the least disturbed one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from testbed.nodes import Cluster, Node
from testbed.nodes.docker_api import DockerClient
from testbed.nodes.images import benchmark_images, write_archive
from tests.integration.images.conftest import NodeRunner, docker_facts, enable_cri

from shimshift.model.spec import Images, ImageStrategy
from shimshift.steps.images.commands import read_image_layers
from shimshift.steps.images.plan import plan_images
from shimshift.steps.images.run import migrate_images
from shimshift.steps.runner import script_argv

CTR = ["ctr", "-n", "k8s.io"]


def must(node: Node, argv: list[str], timeout: float = 300) -> str:
    result = node.exec(argv, timeout=timeout)
    if result.exit_status != 0:
        raise SystemExit(f"{' '.join(argv[:6])}: exit {result.exit_status}: {result.stderr.strip()[-500:]}")
    return result.stdout


def empty_containerd(node: Node) -> None:
    refs = must(node, [*CTR, "images", "ls", "-q"]).split()
    if refs:
        must(node, [*CTR, "images", "rm", "--sync", *refs])
    left = must(node, [*CTR, "content", "ls", "-q"]).split()
    if left:
        raise SystemExit(f"containerd still holds {len(left)} blobs after removing every image")


def timed(node: Node, action: Callable[[], object]) -> float:
    empty_containerd(node)
    node.exec(["sync"])
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--base-mb", type=int, default=40)
    parser.add_argument("--each-mb", type=int, default=5)
    args = parser.parse_args(argv)
    specs = benchmark_images(base_mb=args.base_mb, count=args.images, each_mb=args.each_mb)
    tags = [s.tags[0] for s in specs]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster.up(
            f"bench-images-{os.getpid()}", ["kubeadm-cgroupfs"], images=False, registry=False
        ) as cluster,
    ):
        node = cluster.nodes[0]
        enable_cri(node)
        archive = Path(tmp) / "bench.tar"
        write_archive(specs, archive)
        DockerClient(node.docker_socket).load(archive)
        runner = NodeRunner(node)
        facts = docker_facts(node)
        layers = read_image_layers(runner, node.name, [i.id for i in facts.images])
        plan = plan_images(facts, Images(strategy=ImageStrategy.TRANSFER), layers=layers)
        assert len(plan.batches) == 1 and len(plan.moves) == args.images, plan.batches
        saved = "/tmp/bench-all.tar"  # the floor's input, saved once, outside the timing
        must(node, ["docker", "save", "-o", saved, *tags])

        def naive() -> None:
            for tag in tags:
                must(node, ["docker", "save", "-o", "/tmp/one.tar", tag])
                must(node, [*CTR, "images", "import", "/tmp/one.tar"])
                must(node, ["rm", "-f", "/tmp/one.tar"])

        def shimshift() -> None:
            migrate_images(runner, plan)
            must(node, ["rm", "-f", "/var/lib/shimshift/images/refs-before.txt"])

        def stream() -> None:
            must(node, list(script_argv("image-transfer", "--", *tags)))

        def floor() -> None:
            must(node, [*CTR, "images", "import", saved])

        methods: dict[str, Callable[[], None]] = {
            "naive": naive,
            "shimshift": shimshift,
            "stream": stream,
            "floor": floor,
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, action in methods.items():
                times[name].append(timed(node, action))
        empty_containerd(node)
    med = {name: statistics.median(values) for name, values in times.items()}
    low = {name: min(values) for name, values in times.items()}
    total_mb = plan.bytes / 2**20
    print(
        f"{args.images} images, {args.base_mb} MB shared base + {args.each_mb} MB each "
        f"({total_mb:.0f} MB unique), {args.rounds} rounds, medians:"
    )
    for name, values in times.items():
        print(f"  {name:10s} {med[name]:6.2f} s   (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    for label, t in (("medians", med), ("best rounds", low)):
        print(
            f"{label}: naive / shimshift = {t['naive'] / t['shimshift']:.2f}x (aim >= 2), "
            f"shimshift / floor = {t['shimshift'] / t['floor']:.2f}x (aim <= 1.3), "
            f"bare stream / floor = {t['stream'] / t['floor']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
