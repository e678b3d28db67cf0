"""Scale benchmark for the API emulator: 5,000 nodes, 150,000 pods.

Prints, each against a baseline measured in the same run:
- LIST pods by ``fieldSelector=spec.nodeName=X`` (served from the store's index) vs a full unfiltered
  LIST of all pods, and vs a filtered LIST the index cannot serve (``status.phase=Failed``, a scan);
- a WATCH streaming 10,000 changes: live (writes made while the watch is open, timed until the client
  has read every event) and resumed from history (``resourceVersion`` before the changes), vs the
  same 10,000 writes with no watch open.

Run: ``python3 bench/kubeapi_scale.py [--nodes 5000 --pods 150000 --changes 10000]``. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.kubeapi import EmulatorConfig, EmulatorThread
from testbed.kubeapi.store import Store

PODS = ("", "pods")
NODES = ("", "nodes")


def make_node(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"node-{i:05d}",
            "uid": f"node-uid-{i}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/hostname": f"node-{i:05d}", "node-role.kubernetes.io/worker": ""},
        },
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.23.17", "containerRuntimeVersion": "docker://20.10.24"},
        },
    }


def make_pod(i: int, nodes: int) -> dict[str, Any]:
    ns = f"team-{i % 50:02d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{i:06d}",
            "namespace": ns,
            "uid": f"pod-uid-{i}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": f"app-{i % 500}"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"app-{i % 500}",
                    "uid": f"rs-uid-{i % 500}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{i % nodes:05d}",
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example/app-{i % 500}:1.0",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def seed(store: Store, nodes: int, pods: int) -> None:
    for i in range(nodes):
        store.put(NODES, make_node(i))
    for i in range(pods):
        store.put(PODS, make_pod(i, nodes))


def get(port: int, path: str) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Accept": "application/json"})
    body = conn.getresponse().read()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, len(body)


def read_events(port: int, path: str, expected: int, opened: threading.Event, done: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path)
    response = conn.getresponse()
    opened.set()
    count = 0
    while count < expected:
        line = response.fp.readline()
        if not line:
            break
        if line.strip() and b'"BOOKMARK"' not in line[:20]:
            count += 1
    done.append(time.perf_counter())
    conn.close()


def change_pods(store: Store, changes: int, generation: int) -> None:
    for i in range(changes):
        key = (f"team-{i % 50:02d}", f"pod-{i:06d}")
        old = store.get(PODS, *key)
        assert old is not None
        labels = {**old.meta["labels"], "bench-generation": str(generation)}
        store.put(PODS, {**old.obj, "metadata": {**old.meta, "labels": labels}})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--pods", type=int, default=150_000)
    p.add_argument("--changes", type=int, default=10_000)
    p.add_argument("--samples", type=int, default=20, help="LISTs by spec.nodeName to average")
    args = p.parse_args(argv)

    thread = EmulatorThread(
        EmulatorConfig(controllers=False, kopf_peering=False, history_size=max(50_000, 2 * args.changes))
    )
    url = thread.start()
    port = int(url.rsplit(":", 1)[1])
    store = thread.emulator.store
    started = time.perf_counter()
    thread.call(seed, store, args.nodes, args.pods, timeout=600)
    gc.collect()
    gc.freeze()  # the seeded heap is long-lived; keep the cyclic GC from rescanning it during timings
    print(f"seeded {args.nodes:,} nodes and {args.pods:,} pods in {time.perf_counter() - started:.1f} s")

    get(port, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-00000")  # warm-up
    by_node = [
        get(port, f"/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-{(i * 97) % args.nodes:05d}")
        for i in range(args.samples)
    ]
    full = [get(port, "/api/v1/pods") for _ in range(3)]
    scan = [get(port, "/api/v1/pods?fieldSelector=status.phase%3DFailed") for _ in range(3)]
    t_node = statistics.median(t for t, _ in by_node)
    t_full = statistics.median(t for t, _ in full)
    t_scan = statistics.median(t for t, _ in scan)
    print(
        f"LIST pods spec.nodeName=X (indexed, {by_node[0][1]:,} bytes): median {t_node * 1000:.2f} ms "
        f"over {args.samples}"
    )
    print(f"LIST pods, all (baseline, {full[0][1] / 1e6:.0f} MB): median {t_full * 1000:.0f} ms")
    print(f"LIST pods status.phase=Failed (unindexed scan): median {t_scan * 1000:.0f} ms")
    print(
        f"ratio full LIST / LIST by node: {t_full / t_node:.0f}x; scan / LIST by node: {t_scan / t_node:.0f}x"
    )

    # baseline: the same writes with no watch open
    started = time.perf_counter()
    thread.call(change_pods, store, args.changes, 1, timeout=600)
    t_writes = time.perf_counter() - started

    rv_before = store.rv
    opened = threading.Event()
    done: list[float] = []
    reader = threading.Thread(
        target=read_events,
        args=(port, f"/api/v1/pods?watch=1&resourceVersion={rv_before}", args.changes, opened, done),
    )
    reader.start()
    opened.wait(30)
    started = time.perf_counter()
    thread.call(change_pods, store, args.changes, 2, timeout=600)
    reader.join(600)
    t_live = done[0] - started

    done2: list[float] = []
    started = time.perf_counter()
    read_events(
        port, f"/api/v1/pods?watch=1&resourceVersion={rv_before}", args.changes, threading.Event(), done2
    )
    t_resume = done2[0] - started

    print(f"{args.changes:,} writes, no watch open (baseline): {t_writes * 1000:.0f} ms")
    print(
        f"WATCH live, {args.changes:,} changes written and streamed: {t_live * 1000:.0f} ms "
        f"({args.changes / t_live:,.0f} events/s); ratio to baseline {t_live / t_writes:.1f}x"
    )
    print(
        f"WATCH resumed from resourceVersion, {args.changes:,} events replayed: {t_resume * 1000:.0f} ms "
        f"({args.changes / t_resume:,.0f} events/s); ratio to baseline {t_resume / t_writes:.1f}x"
    )
    thread.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
