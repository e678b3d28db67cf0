"""The pod-lifecycle stand-in for Nodes that have no kubelet: what a kubelet would do for them, in short.

A real API server leaves a pod Pending until a kubelet reports it, and an evicted or deleted pod
Terminating until a kubelet confirms its containers stopped; the node lifecycle controller marks a Node
whose heartbeats stop Unknown and taints it. Nodes that a test creates as plain objects have no
kubelet, so for every Node *without* the annotation ``testbed.shimshift.io/external-kubelet: "true"``
(the fake nodes' model kubelet sets it when it registers, and reports its own pods) this controller:

- heartbeats the Node's conditions (keeps their status, adds ``Ready=True`` when the Node has none)
  and gives it capacity and allocatable when it has none, so the scheduler can place pods on it;
- marks each pod bound to it Running and Ready (containers running, an IP from 10.244.0.0/16);

and on every Node but a real kubelet's (annotated ``testbed.shimshift.io/real-kubelet: "true"`` by the
cloud node controller's stand-in, ``testbed.nodes.cloud``), the model kubelet's too (it runs no
containers, so it has none to stop), it finishes a pod's graceful deletion ``TERMINATION_SECONDS`` after
it began, deleting the pod with grace period 0 as a kubelet does once the containers stopped. A real
kubelet does that itself when it has stopped them.

It polls (pods and nodes every ``INTERVAL`` seconds) and runs as a process of the control plane
(``python -m testbed.controlplane.podlife --kubeconfig FILE``), logging under its run directory.
kwok (``sigs.k8s.io/kwok``) is the upstream tool for this; testbed/README.md says why this one is used.
"""

from __future__ import annotations

import argparse
import calendar
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.nodes.kube_http import ApiError, KubeHttp

if TYPE_CHECKING:
    from testbed.controlplane.cluster import ControlPlane

log = logging.getLogger("podlife")

EXTERNAL_KUBELET = "testbed.shimshift.io/external-kubelet"
REAL_KUBELET = "testbed.shimshift.io/real-kubelet"
INTERVAL = 0.25
HEARTBEAT_SECONDS = 10.0
TERMINATION_SECONDS = 0.5
CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_time(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def managed(node: dict[str, Any]) -> bool:
    annotations = node.get("metadata", {}).get("annotations") or {}
    return annotations.get(EXTERNAL_KUBELET) != "true"


def finishes_deletions(node: dict[str, Any]) -> bool:
    """Whether this controller finishes the graceful deletions of the Node's pods (not a real kubelet's)."""
    annotations = node.get("metadata", {}).get("annotations") or {}
    return annotations.get(REAL_KUBELET) != "true"


def node_status_patch(node: dict[str, Any]) -> dict[str, Any]:
    """The heartbeat: every condition's lastHeartbeatTime now (statuses kept), Ready added if absent,
    capacity/allocatable if absent."""
    status = node.get("status") or {}
    now = now_iso()
    conditions = [dict(c, lastHeartbeatTime=now) for c in status.get("conditions") or []]
    if not any(c.get("type") == "Ready" for c in conditions):
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "the testbed's pod-lifecycle stand-in is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
    for c in conditions:
        c.setdefault("lastTransitionTime", now)
    patch: dict[str, Any] = {"conditions": conditions}
    if not status.get("capacity"):
        patch["capacity"] = CAPACITY
    if not status.get("allocatable"):
        patch["allocatable"] = CAPACITY
    return {"status": patch}


def pod_running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def running_status(pod: dict[str, Any], pod_ip: str, host_ip: str) -> dict[str, Any]:
    now = now_iso()
    containers = pod.get("spec", {}).get("containers") or []
    return {
        "status": {
            "phase": "Running",
            "hostIP": host_ip,
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": (pod.get("status") or {}).get("startTime") or now,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now, "lastProbeTime": None}
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c.get("name", ""),
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": f"containerd://{pod['metadata']['uid'].replace('-', '')}{i:02d}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for i, c in enumerate(containers)
            ],
        }
    }


class PodLife:
    def __init__(self, api: KubeHttp) -> None:
        self.api = api
        self.heartbeats: dict[str, float] = {}
        self.next_ip = 2

    def _ip(self) -> str:
        n, self.next_ip = self.next_ip, self.next_ip + 1
        return f"10.244.{(n >> 8) % 256}.{n % 256}"

    def sync(self) -> None:
        nodes = {
            n["metadata"]["name"]: n for n in self.api.request("GET", "/api/v1/nodes").get("items") or []
        }
        mine = {name: n for name, n in nodes.items() if managed(n)}
        clock = time.monotonic()
        for name, node in mine.items():
            if clock - self.heartbeats.get(name, 0.0) >= HEARTBEAT_SECONDS:
                self.api.merge_patch(f"/api/v1/nodes/{name}/status", node_status_patch(node))
                self.heartbeats[name] = clock
        for gone in set(self.heartbeats) - set(mine):
            del self.heartbeats[gone]
        if not nodes:
            return
        pods = self.api.request("GET", "/api/v1/pods").get("items") or []
        for pod in pods:
            node_name = pod.get("spec", {}).get("nodeName")
            if node_name not in nodes or (
                node_name not in mine
                and not (pod["metadata"].get("deletionTimestamp") and finishes_deletions(nodes[node_name]))
            ):
                continue
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            try:
                if meta.get("deletionTimestamp"):
                    if (
                        time.time()
                        - parse_time(meta["deletionTimestamp"])
                        + (meta.get("deletionGracePeriodSeconds") or 0)
                        >= TERMINATION_SECONDS
                    ):
                        self.api.request(
                            "DELETE",
                            path,
                            {
                                "apiVersion": "v1",
                                "kind": "DeleteOptions",
                                "gracePeriodSeconds": 0,
                                "preconditions": {"uid": meta["uid"]},
                            },
                        )
                        log.info("finished the deletion of pod %s/%s", meta["namespace"], meta["name"])
                elif not pod_running(pod):
                    addresses = mine[node_name].get("status", {}).get("addresses") or []
                    host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
                    self.api.merge_patch(
                        f"{path}/status", running_status(pod, self._ip(), host_ip or "127.0.0.1")
                    )
                    log.info("pod %s/%s is running on %s", meta["namespace"], meta["name"], node_name)
            except ApiError as e:
                if e.status not in (404, 409):
                    raise

    def run(self) -> None:
        while True:
            try:
                self.sync()
            except Exception:
                log.exception("sync failed")
            time.sleep(INTERVAL)


def start_podlife(plane: ControlPlane) -> str:
    """Start the stand-in as a process of ``plane``; returns what it is, for ``state.json``."""
    kubeconfig = plane.user_kubeconfig(
        plane.dir / "podlife.kubeconfig", "shimshift-testbed-podlife", ("system:masters",)
    )
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    plane._spawn(
        "podlife",
        [sys.executable, "-m", "testbed.controlplane.podlife", "--kubeconfig", str(kubeconfig)],
        {"PYTHONPATH": path},
    )
    return "python testbed.controlplane.podlife"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.controlplane.podlife", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    PodLife(KubeHttp(args.kubeconfig)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
