"""Scale benchmark: one NodeMigration over N nodes, the operator's cost per node as the fleet grows.

For each N (500, 1,000 and 5,000 by default) a fresh API server gets N Node objects, created directly
and kept Ready (no kubelet: nothing marks them NotReady), and one NodeMigration over all of them with
rollout.maxUnavailable 10%. The real operator process (`tests/e2e/run_operator.py`: `shimshift run`
with the simulated node port of tests/e2e/simnodes.py instead of SSH, each node operation taking
`--step-seconds`) migrates them. Printed, one line per N, exactly (here wrapped):

    scale: nodes=N largest_object_kib=X bytes_written_per_node=Y requests_per_node=Z
           rss_mib=R cpu_s=C wall_s=W ideal_s=I

- largest_object_kib: the largest object the operator wrote (its write bodies, the NodeMigration
  sampled every second while it runs and every NodeMigrationNode at the end), in KiB;
- bytes_written_per_node: JSON bytes of the operator's write requests (POST/PUT/PATCH) per node;
- requests_per_node: the operator's requests (its own client and kopf's) per node; the simulated
  kubelet's Node status writes are not the operator's and are not counted;
- rss_mib, cpu_s: the operator process's peak RSS (VmHWM) and CPU seconds (user + system);
- wall_s: from the NodeMigration's creation to phase Succeeded; ideal_s: ceil(N / k) waves of k nodes
  (k = maxUnavailable) times one node's simulated step time (8 node operations of --step-seconds).

Then `scale: growth bytes_per_node 5000/500=G` (largest N over smallest). Goals: largest object <= 64 KiB
at every N, G <= 1.2, requests per node <= 40, RSS <= 400 MiB at 5,000, wall <= 1.3x ideal.

The server is the in-repo API emulator (testbed/kubeapi, which enforces a real API server's size
limits: testbed/kubeapi/limits.py) unless:

- `--real`: a fresh real control plane per N (testbed/controlplane: etcd, kube-apiserver,
  kube-controller-manager and kube-scheduler at the version of scripts/components/versions, built by
  scripts/setup), the operator talking to it through the recording proxy of testbed/apiproxy, which
  counts its requests and bytes as the emulator does. etcd keeps its real request limit (1.5 MiB) and
  the API server its body limit (3 MiB), so a write that outgrows them fails the rollout. The
  controller manager's node lifecycle controller runs with a node-monitor grace period longer than the
  run: no kubelet renews these Nodes' leases, and it would otherwise mark them NotReady after 40 s.
- `--kubeconfig` (or SHIMSHIFT_BENCH_KUBECONFIG) names a server already running: then the request
  count comes from the operator's own counter (its /metrics endpoint) and bytes are not measured
  (printed as -1).

Run: ``python3 bench/rollout_scale.py [--nodes 500,1000,5000] [--step-seconds 2] [--real]``. Not a test.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from testbed.apiproxy import FaultProxy, ProxyConfig, ProxyThread  # noqa: E402
from testbed.apirequests.faults import RequestLog  # noqa: E402
from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.kubeapi import EmulatorConfig, EmulatorThread, KubeApi  # noqa: E402
from testbed.kubeapi.faults import RequestRecord  # noqa: E402
from testbed.kubeapi.runner import write_kubeconfig  # noqa: E402
from testbed.ports import free_port  # noqa: E402
from testbed.waiting import wait_until  # noqa: E402

from shimshift.kube.api import MERGE_PATCH, Kube, NotFound, load_api_client  # noqa: E402
from shimshift.resources import load_crd, load_node_crd  # noqa: E402

#: Node operations the simulated port sleeps in per node: facts, backup, configure, images, the images'
#: re-check after the drain (the default, staged order runs it), switch, verify, finish
#: (tests/e2e/simnodes.py).
SIMULATED_OPERATIONS = 8
MAX_UNAVAILABLE_PERCENT = 10
WRITES = frozenset({"POST", "PUT", "PATCH"})
NODEMIGRATIONS = "/apis/shimshift.io/v1alpha1/nodemigrations"


@dataclass
class Tally:
    """What the operator sent, aggregated as the request log is drained (it would hold every body)."""

    requests: int = 0
    bytes_written: int = 0
    largest_body: int = 0


def operator_request(rec: RequestRecord) -> bool:
    ours = rec.user_agent.startswith(("shimshift/", "kopf/"))
    kubelet = rec.resource == "nodes" and rec.subresource == "status"  # the simulated kubelet's report
    return ours and not kubelet


def established(kube: Kube, name: str) -> bool:
    crd = kube.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def size_of(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


def make_node(i: int) -> dict[str, Any]:
    name = f"node-{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"pool": "workers", "kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.23.17", "containerRuntimeVersion": "docker://20.10.24"},
        },
    }


def nodemigration() -> dict[str, Any]:
    return {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "scale"},
        "spec": {
            "mode": "Migrate",
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
            "rollout": {"maxUnavailable": f"{MAX_UNAVAILABLE_PERCENT}%"},
        },
    }


def proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of process `pid`, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    rss = int(match.group(1)) / 1024 if match else -1.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def start_operator(
    kubeconfig: Path, workdir: Path, step_seconds: float, metrics_port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}",
        "SHIMSHIFT_SIM_DIR": str(workdir / "sim"),
        "SHIMSHIFT_SIM_STEP_SECONDS": str(step_seconds),
    }
    log = (workdir / "operator.log").open("wb")
    argv = [sys.executable, "-m", "tests.e2e.run_operator", "run", "--kubeconfig", str(kubeconfig)]
    argv += ["--namespace", "default", "--log-format", "plain", "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def metrics_requests(port: int) -> int:
    """The operator's own request count (shimshift_api_requests_total), from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("shimshift_api_requests_total{")
    )


class Recording(Protocol):
    """The emulator's handle or the proxy's: both log every request they answer."""

    @property
    def requests(self) -> RequestLog: ...


class Drain(threading.Thread):
    """Aggregates a request log (the emulator's or the proxy's) every second and empties it; samples
    the NodeMigration."""

    def __init__(self, api: Recording, sample: Callable[[], int]) -> None:
        super().__init__(name="bench-drain", daemon=True)
        self.api, self.sample = api, sample
        self.tally = Tally()
        self.largest_sampled = 0
        self.stop = threading.Event()

    def drain(self) -> None:
        log = self.api.requests
        with log._lock:  # the bench owns the log: take every record so far, leave an empty list
            records, log.records = log.records, []
        for rec in records:
            if not operator_request(rec):
                continue
            self.tally.requests += 1
            if rec.method in WRITES and rec.body is not None:
                n = size_of(rec.body)
                self.tally.bytes_written += n
                self.tally.largest_body = max(self.tally.largest_body, n)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.drain()
            self.largest_sampled = max(self.largest_sampled, self.sample())
        self.drain()


#: longer than any run: no kubelet renews the benchmark's Nodes' leases (the default is 40 s)
NODE_MONITOR_GRACE = "--node-monitor-grace-period=6h"


def run_size(
    nodes: int, step_seconds: float, kubeconfig: Path | None, timeout: float, real: bool
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        workdir = Path(tmp)
        thread: EmulatorThread | None = None
        plane: ControlPlane | None = None
        proxy: ProxyThread | None = None
        api: Recording | None = None
        operator_kubeconfig = kubeconfig
        try:
            if real:
                plane = ControlPlane.up(
                    f"scale-bench-{os.getpid()}",
                    podlife=False,
                    controller_manager_args=[NODE_MONITOR_GRACE],
                )
                proxy = ProxyThread(ProxyConfig(plane.admin_kubeconfig, workdir / "proxy"))
                proxy.start()
                recording = FaultProxy(proxy)
                kubeconfig = plane.admin_kubeconfig  # the bench's own requests: straight to the server
                operator_kubeconfig = recording.kubeconfig_for(kubeconfig, workdir / "operator.kubeconfig")
                api = recording
            elif kubeconfig is None:
                thread = EmulatorThread(
                    EmulatorConfig(controllers=False, simulate_kubelet=False, history_size=200_000)
                )
                url = thread.start()
                kubeconfig = operator_kubeconfig = write_kubeconfig(workdir / "kubeconfig", url)
                api = KubeApi(thread, kubeconfig)
            assert kubeconfig is not None and operator_kubeconfig is not None
            return measure(nodes, step_seconds, kubeconfig, operator_kubeconfig, api, workdir, timeout)
        finally:
            if proxy is not None:
                proxy.stop()
            if plane is not None:
                plane.down()
            if thread is not None:
                thread.stop()


def measure(
    nodes: int,
    step_seconds: float,
    kubeconfig: Path,
    operator_kubeconfig: Path,
    api: Recording | None,
    workdir: Path,
    timeout: float,
) -> dict[str, float]:
    client = load_api_client(str(kubeconfig))
    client.user_agent = "rollout-scale-bench"  # not the operator's: its requests are not counted
    kube = Kube(client, request_timeout=60)
    try:
        for crd in (load_crd(), load_node_crd()):
            try:
                kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
            except Exception as e:  # already there on a reused real server
                if "AlreadyExists" not in str(e) and "409" not in str(e):
                    raise
        for crd in (load_crd(), load_node_crd()):
            name = str(crd["metadata"]["name"])
            wait_until(functools.partial(established, kube, name), 60, what=f"CRD {name} established")
        for i in range(nodes):
            node = make_node(i)
            kube.request("POST", "/api/v1/nodes", body={k: v for k, v in node.items() if k != "status"})
            kube.request(
                "PATCH",
                f"/api/v1/nodes/{node['metadata']['name']}/status",
                body={"status": node["status"]},
                content_type=MERGE_PATCH,
            )

        def sample() -> int:
            try:
                return size_of(kube.request("GET", f"{NODEMIGRATIONS}/scale"))
            except NotFound:
                return 0

        drain = Drain(api, sample) if api is not None else None
        if api is not None:
            api.requests.records.clear()
        port = free_port()
        proc = start_operator(operator_kubeconfig, workdir, step_seconds, port)
        if drain is not None:
            drain.start()
        try:
            begun = time.monotonic()
            kube.request("POST", NODEMIGRATIONS, body=nodemigration())
            phase = ""
            largest_sampled = 0
            while time.monotonic() - begun < timeout:
                obj = kube.request("GET", f"{NODEMIGRATIONS}/scale")
                largest_sampled = max(largest_sampled, size_of(obj))
                phase = str((obj.get("status") or {}).get("phase", ""))
                if phase in ("Succeeded", "Failed", "Paused") or proc.poll() is not None:
                    break
                time.sleep(0.5)  # a benchmark's progress poll, not a test waiting for a watch
            wall = time.monotonic() - begun
            if phase != "Succeeded":
                tail = (workdir / "operator.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"nodes={nodes}: the rollout ended {phase or 'unfinished'}:\n{tail}")
            rss, cpu = proc_usage(proc.pid)
            requests = -1
            if drain is None:
                requests = metrics_requests(port)
        finally:
            if drain is not None:
                drain.stop.set()
                drain.join(timeout=60)
            stop_operator(proc)
        children = kube.request("GET", "/apis/shimshift.io/v1alpha1/nodemigrationnodes").get("items") or []
        largest_child = max((size_of(c) for c in children), default=0)
        largest = max(largest_sampled, largest_child)
        written = -1.0
        if drain is not None:
            largest = max(largest, drain.largest_sampled, drain.tally.largest_body)
            requests = drain.tally.requests
            written = drain.tally.bytes_written / nodes
        k = max(1, math.floor(nodes * MAX_UNAVAILABLE_PERCENT / 100))
        ideal = math.ceil(nodes / k) * SIMULATED_OPERATIONS * step_seconds
        return {
            "nodes": nodes,
            "largest_object_kib": largest / 1024,
            "bytes_written_per_node": written,
            "requests_per_node": requests / nodes,
            "rss_mib": rss,
            "cpu_s": cpu,
            "wall_s": wall,
            "ideal_s": ideal,
            "children": len(children),
        }
    finally:
        kube.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="500,1000,5000", help="comma-separated fleet sizes")
    p.add_argument(
        "--step-seconds", type=float, default=2.0, help="how long each simulated node operation takes"
    )
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("SHIMSHIFT_BENCH_KUBECONFIG"),
        help="a real API server instead of the emulator (env SHIMSHIFT_BENCH_KUBECONFIG)",
    )
    p.add_argument(
        "--real", action="store_true", help="a fresh real control plane per size (testbed/controlplane)"
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="longest rollout per size, seconds")
    args = p.parse_args(argv)
    # a SIGTERM (timeout, pkill) ends the run through its `finally`s: the control plane is taken down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sizes = [int(n) for n in args.nodes.split(",") if n]
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    results = []
    for n in sizes:
        r = run_size(n, args.step_seconds, kubeconfig, args.timeout, args.real)
        results.append(r)
        print(
            f"scale: nodes={n} largest_object_kib={r['largest_object_kib']:.1f} "
            f"bytes_written_per_node={r['bytes_written_per_node']:.0f} "
            f"requests_per_node={r['requests_per_node']:.1f} rss_mib={r['rss_mib']:.0f} "
            f"cpu_s={r['cpu_s']:.1f} wall_s={r['wall_s']:.1f} ideal_s={r['ideal_s']:.1f}",
            flush=True,
        )
        if r["children"] != n:
            print(f"scale: warning: {r['children']} NodeMigrationNode objects for {n} nodes", flush=True)
    if len(results) >= 2:
        first, last = results[0], results[-1]
        growth = last["bytes_written_per_node"] / first["bytes_written_per_node"]
        print(f"scale: growth bytes_per_node {last['nodes']}/{first['nodes']}={growth:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
