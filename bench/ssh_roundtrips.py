"""SSH cost of the node steps on one testbed node: round trips counted, time against a baseline.

    python3 bench/ssh_roundtrips.py [--rounds 3] [--profile kubeadm-systemd] [--name bench-ssh]

1. Facts: the probe as shimshift runs it (one remote script, one round trip, its output parsed on the
   host) against the naive way (every probe command as its own SSH exec, as an Ansible-style fact
   gathering does). Prints round trips and the median time of each, and the ratio naive/shimshift.
2. The whole node sequence (facts, backup, configure, images, recheck, switch, verify: the node steps
   of the default order) and its rollback,
   with round trips and handshakes per step, on a node whose fake kubelet reports to the API
   emulator. Run once (it changes the node, then puts it back).

Needs root and the testbed's Debian packages (scripts/setup).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from testbed.kubeapi import EmulatorConfig, EmulatorThread, write_kubeconfig
from testbed.nodes import Cluster, Node

from shimshift.model.keys import StepId
from shimshift.model.spec import NodeMigrationSpec
from shimshift.remote import NodeConnection, NodeRunPlan, NodeSteps, SshOptions, SshTarget
from shimshift.rendering import render_node_config
from shimshift.steps import images
from shimshift.steps.switch.kubelet import plan_kubelet_switch

# What the probe reads, one exec each: the baseline a per-command fact gathering pays.
NAIVE_COMMANDS: list[list[str]] = [
    ["cat", "/etc/os-release"],
    ["uname", "-r"],
    ["docker", "info", "--format", "{{json .}}"],
    ["docker", "image", "ls", "-q", "--no-trunc"],
    ["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"],
    ["containerd", "--version"],
    ["ctr", "plugins", "ls"],
    ["ctr", "-n", "k8s.io", "images", "ls", "-q"],
    ["kubelet", "--version"],
    *[["systemctl", "is-active", u] for u in ("docker", "containerd", "kubelet", "cri-docker")],
    ["df", "-P", "-B1", "/var/lib/containerd"],
    *[
        ["cat", f]
        for f in (
            "/etc/containerd/config.toml",
            "/etc/docker/daemon.json",
            "/var/lib/kubelet/kubeadm-flags.env",
            "/etc/default/kubelet",
            "/etc/sysconfig/kubelet",
            "/etc/kubernetes/kubelet.env",
            "/var/lib/kubelet/instance-config.yaml",
            "/etc/systemd/system/kubelet.service",
            "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
            "/var/lib/kubelet/config.yaml",
            "/etc/systemd/system/cri-docker.service",
        )
    ],
    ["find", "/etc/docker/certs.d", "-type", "f"],
]


def connect(cluster: Cluster, node: Node) -> NodeConnection:
    return NodeConnection(
        SshTarget(node.name, node.ssh_host, node.ssh_port),
        SshOptions(known_hosts=cluster.known_hosts.read_text(), private_key=cluster.private_key.read_text()),
    )


def bench_facts(cluster: Cluster, node: Node, rounds: int) -> None:
    probe_times, naive_times = [], []
    probe_trips = naive_trips = 0
    for _ in range(rounds):
        with connect(cluster, node) as conn:
            conn.connect()
            start = time.perf_counter()
            NodeSteps(conn).facts(kubelet_version="v" + node.profile.kubelet_version)
            probe_times.append(time.perf_counter() - start)
            probe_trips = conn.round_trips
        with connect(cluster, node) as conn:
            conn.connect()
            start = time.perf_counter()
            for argv in NAIVE_COMMANDS:
                conn.run(argv)
            naive_times.append(time.perf_counter() - start)
            naive_trips = conn.round_trips
    p, n = statistics.median(probe_times), statistics.median(naive_times)
    print(
        f"facts, shimshift probe: {probe_trips} round trip,  median {p:.2f}s (best {min(probe_times):.2f}s)"
    )
    print(
        f"facts, per-command    : {naive_trips} round trips, median {n:.2f}s (best {min(naive_times):.2f}s)"
    )
    print(
        f"ratio naive/shimshift : time {n / p:.1f}x (median), "
        f"{min(naive_times) / min(probe_times):.1f}x (best);"
        f" round trips {naive_trips / probe_trips:.0f}x"
    )


def bench_sequence(cluster: Cluster, node: Node) -> None:
    spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [node.name]})
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        total_start = time.perf_counter()
        start, trips = time.perf_counter(), conn.round_trips
        facts = steps.facts(kubelet_version="v" + node.profile.kubelet_version)
        rows = [("facts", conn.round_trips - trips, time.perf_counter() - start)]
        switch = plan_kubelet_switch(node.name, facts.kubelet, endpoint=spec.kubelet.runtime_endpoint)
        plan = NodeRunPlan.build("bench", render_node_config(spec, facts).files, switch, stop_grace_seconds=1)
        rendered = render_node_config(spec, facts)
        sandbox = rendered.report.sandbox_image
        for step in (
            StepId.BACKUP,
            StepId.CONFIGURE,
            StepId.IMAGES,
            StepId.RECHECK,
            StepId.SWITCH,
            StepId.VERIFY,
        ):
            start, trips = time.perf_counter(), conn.round_trips
            if step in (StepId.IMAGES, StepId.RECHECK):  # the images step runs its own commands
                images.run_images_step(
                    conn, facts, spec, sandbox_image=sandbox, fresh_inventory=step is StepId.RECHECK
                )
            else:
                steps.run(step, plan)
            rows.append((step.value, conn.round_trips - trips, time.perf_counter() - start))
        forward = conn.round_trips
        forward_time = time.perf_counter() - total_start
        start, trips = time.perf_counter(), conn.round_trips
        steps.rollback(plan)
        images.undo_images(conn, node.name)
        rows.append(("rollback", conn.round_trips - trips, time.perf_counter() - start))
        for name, n, seconds in rows:
            print(f"  {name:<9} {n:>2} round trips  {seconds:5.2f}s")
        print(
            f"node sequence facts..verify: {forward} round trips over {conn.connects} SSH handshake(s), "
            f"{forward_time:.1f}s; rollback {rows[-1][1]} round trips"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="kubeadm-systemd")
    parser.add_argument("--name", default="bench-ssh", help="the testbed cluster's name (unique per run)")
    args = parser.parse_args()
    api = EmulatorThread(EmulatorConfig(controllers=False))
    api.start()
    try:
        kubeconfig = write_kubeconfig(
            Path(tempfile.mkdtemp(prefix="bench-ssh-")) / "kubeconfig", api.emulator.url
        )
        with Cluster.up(args.name, [args.profile]) as cluster:
            cluster.attach_api(api.emulator.url, kubeconfig)
            node = cluster.nodes[0]
            bench_facts(cluster, node, args.rounds)
            bench_sequence(cluster, node)
    finally:
        api.stop()


if __name__ == "__main__":
    main()
