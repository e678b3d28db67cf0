"""The pod-lifecycle stand-in for Nodes that have no kubelet: what a kubelet would do for them, in short.

A real API server leaves a pod Pending until a kubelet reports it, and an evicted or deleted pod
Terminating until a kubelet confirms its containers stopped; the node lifecycle controller marks a Node
whose heartbeats stop Unknown and taints it. Nodes that a test creates as plain objects have no
kubelet, so for every Node *without* the annotation ``testbed.shimshift.io/external-kubelet: "true"``
(the fake nodes' model kubelet sets it when it registers, and reports its own pods) and without the
taint ``node.cloudprovider.kubernetes.io/uninitialized`` (a real kubelet's Node before the cloud node
controller's stand-in annotates it) this controller:

- heartbeats the Node's conditions (keeps their status, adds ``Ready=True`` when the Node has none)
  and gives it capacity and allocatable when it has none, so the scheduler can place pods on it;
- marks each pod bound to it Running and Ready (containers running, an IP from 10.244.0.0/16), except
  the two kinds of pod it runs as a kubelet would (``pod_step``): a pod with an image from a registry
  under ``.invalid`` (RFC 6761: never resolves) is not pulled (Pending, ErrImagePull then
  ImagePullBackOff, with kubelet's Warning Events), and a ``restartPolicy: Never`` pod whose every
  container's command is ``echo`` (the verify step's canary) runs (Running), then completes
  (Succeeded, exit 0) with the echoed words as its container's log;
- serves that log as a kubelet does (``GET /containerLogs/<namespace>/<pod>/<container>``, HTTPS, the
  API server's client certificate required), the Node's ``daemonEndpoints.kubeletEndpoint`` pointing
  at it and its address ``127.0.0.1`` (InternalIP) when it has none, so ``pods/log`` on the real API
  server answers as it would for a kubelet's pod;

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
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.nodes.cloud import UNINITIALIZED_TAINT
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
    """Whether this controller stands in for the Node's kubelet: not when a model kubelet registered it
    (annotated) nor when a real kubelet did and the cloud has not initialized it yet (tainted with
    UNINITIALIZED_TAINT, which `testbed.nodes.cloud` lifts in the write that annotates it). Taking
    such a Node for a kubelet-less one even once would heartbeat it from a stale read and give it
    ``127.0.0.1`` as its address, over the cloud's."""
    annotations = node.get("metadata", {}).get("annotations") or {}
    taints = (node.get("spec") or {}).get("taints") or ()
    return annotations.get(EXTERNAL_KUBELET) != "true" and not any(
        t.get("key") == UNINITIALIZED_TAINT for t in taints
    )


def finishes_deletions(node: dict[str, Any]) -> bool:
    """Whether this controller finishes the graceful deletions of the Node's pods (not a real kubelet's)."""
    annotations = node.get("metadata", {}).get("annotations") or {}
    return annotations.get(REAL_KUBELET) != "true"


def node_status_patch(node: dict[str, Any], kubelet_port: int | None = None) -> dict[str, Any]:
    """The heartbeat: every condition's lastHeartbeatTime now (statuses kept), Ready added if absent,
    capacity/allocatable if absent; with ``kubelet_port``, the kubelet endpoint the API server reaches
    for logs (this process's) and, when the Node has no address, ``127.0.0.1`` as its InternalIP."""
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
    if kubelet_port is not None:
        patch["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
        if not status.get("addresses"):
            patch["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"}]
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


def registry_host(image: str) -> str:
    """The registry of an image reference ("" for Docker Hub's short names)."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else ""


def unpullable(pod: dict[str, Any]) -> str:
    """The first of the pod's images from a registry under ``.invalid`` ("" when none is)."""
    for c in pod.get("spec", {}).get("containers") or []:
        if registry_host(str(c.get("image", ""))).endswith(".invalid"):
            return str(c.get("image", ""))
    return ""


def runs_to_completion(pod: dict[str, Any]) -> bool:
    """A ``restartPolicy: Never`` pod whose every container's command is ``echo``."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    return (
        bool(containers)
        and spec.get("restartPolicy") == "Never"
        and all((c.get("command") or [])[:1] == ["echo"] for c in containers)
    )


def echoed(pod: dict[str, Any]) -> dict[str, str]:
    """Each container's log once it ran: the words its ``echo`` printed, one line."""
    return {
        str(c.get("name", "")): " ".join(map(str, (c.get("command") or [])[1:])) + "\n"
        for c in pod.get("spec", {}).get("containers") or []
    }


def _with_containers(status: dict[str, Any], ready: bool, state: dict[str, Any], reason: str = "") -> None:
    """``status`` (a running_status's) with every container in ``state`` and Ready as ``ready``."""
    for c in status["conditions"]:
        if c["type"] in ("Ready", "ContainersReady") and not ready:
            c["status"] = "False"
            if reason:
                c["reason"] = reason
    for cs in status["containerStatuses"]:
        cs.update(ready=ready, started="running" in state, state=state)


def pod_step(pod: dict[str, Any], pod_ip: str, host_ip: str) -> dict[str, Any] | None:
    """The pod's next status as a kubelet would post it (a merge patch), or None when it is where it
    stays: Running and Ready; for an unpullable image ErrImagePull, then ImagePullBackOff; for an
    ``echo`` pod Running, then Succeeded (exit 0)."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return None
    image = unpullable(pod)
    if image:
        waiting = next(
            (
                (cs.get("state") or {}).get("waiting", {}).get("reason")
                for cs in status.get("containerStatuses") or []
            ),
            None,
        )
        if waiting == "ImagePullBackOff":
            return None
        patch = running_status(pod, pod_ip, host_ip)
        patch["status"].update(phase="Pending")
        patch["status"].pop("podIP")
        patch["status"].pop("podIPs")
        if waiting == "ErrImagePull":
            state = {
                "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            }
        else:
            state = {"waiting": {"reason": "ErrImagePull", "message": pull_error(image)}}
        _with_containers(patch["status"], False, state, "ContainersNotReady")
        return patch
    if runs_to_completion(pod):
        if phase != "Running":
            return running_status(pod, pod_ip, host_ip)
        patch = {"status": {k: status[k] for k in ("conditions", "containerStatuses") if k in status}}
        patch["status"]["phase"] = "Succeeded"
        started = (
            ((status.get("containerStatuses") or [{}])[0].get("state") or {})
            .get("running", {})
            .get("startedAt")
        )
        done = {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": started or now_iso(),
            "finishedAt": now_iso(),
        }
        _with_containers(patch["status"], False, {"terminated": done}, "PodCompleted")
        return patch
    return None if pod_running(pod) else running_status(pod, pod_ip, host_ip)


def pull_error(image: str) -> str:
    """What containerd's CRI says of a pull from a registry whose name does not resolve."""
    host = registry_host(image)
    return (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed to resolve '
        f'reference "{image}": failed to do request: Head "https://{host}/v2/": dial tcp: lookup {host}: '
        "no such host"
    )


def kubelet_event(pod: dict[str, Any], kind: str, reason: str, message: str) -> dict[str, Any]:
    """An Event about ``pod`` as kubelet posts it (source kubelet, the pod's node as host)."""
    meta, now = pod["metadata"], now_iso()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": pod.get("spec", {}).get("nodeName", "")},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def pod_events(pod: dict[str, Any], patch: dict[str, Any]) -> list[dict[str, Any]]:
    """The Events kubelet posts as the pod takes the status of ``patch``."""
    image = unpullable(pod)
    statuses = patch["status"].get("containerStatuses") or [{}]
    waiting = (statuses[0].get("state") or {}).get("waiting", {}).get("reason")
    if image and waiting == "ErrImagePull":
        return [
            kubelet_event(pod, "Normal", "Pulling", f'Pulling image "{image}"'),
            kubelet_event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {pull_error(image)}'),
            kubelet_event(pod, "Warning", "Failed", "Error: ErrImagePull"),
        ]
    if image and waiting == "ImagePullBackOff":
        return [
            kubelet_event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"'),
            kubelet_event(pod, "Warning", "Failed", "Error: ImagePullBackOff"),
        ]
    return []


class Logs:
    """The logs of the containers this process ran to completion: (namespace, pod, container) -> text."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: dict[tuple[str, str, str], str] = {}

    def put(self, namespace: str, pod: str, texts: dict[str, str]) -> None:
        with self.lock:
            for container, text in texts.items():
                self.texts[(namespace, pod, container)] = text

    def get(self, namespace: str, pod: str, container: str) -> str | None:
        with self.lock:
            return self.texts.get((namespace, pod, container))

    def forget(self, live: set[tuple[str, str]]) -> None:
        with self.lock:
            for key in [k for k in self.texts if k[:2] not in live]:
                del self.texts[key]


def serve_logs(logs: Logs, port: int, cert: Path, key: Path, client_ca: Path) -> ThreadingHTTPServer:
    """The kubelet's log endpoint on loopback ``port`` (HTTPS, a client certificate of ``client_ca``
    required, as the API server presents its kubelet client certificate), served from a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
            text = logs.get(*parts[1:4]) if len(parts) == 4 and parts[0] == "containerLogs" else None
            if text is None:
                self.send_error(404, "no such container log")
                return
            limit = urllib.parse.parse_qs(url.query).get("limitBytes")
            body = text.encode()
            if limit and limit[0].isdigit():
                body = body[: int(limit[0])]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("kubelet endpoint: " + format, *args)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(cert), str(key))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True).start()
    return server


class PodLife:
    def __init__(self, api: KubeHttp, kubelet_port: int | None = None, logs: Logs | None = None) -> None:
        self.api = api
        self.kubelet_port = kubelet_port
        self.logs = logs or Logs()
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
                self.api.merge_patch(
                    f"/api/v1/nodes/{name}/status", node_status_patch(node, self.kubelet_port)
                )
                self.heartbeats[name] = clock
        for gone in set(self.heartbeats) - set(mine):
            del self.heartbeats[gone]
        if not nodes:
            return
        pods = self.api.request("GET", "/api/v1/pods").get("items") or []
        self.logs.forget({(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods})
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
                else:
                    addresses = mine[node_name].get("status", {}).get("addresses") or []
                    host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
                    patch = pod_step(
                        pod, (pod.get("status") or {}).get("podIP") or self._ip(), host_ip or "127.0.0.1"
                    )
                    if patch is None:
                        continue
                    if patch["status"].get("phase") == "Succeeded":
                        self.logs.put(meta["namespace"], meta["name"], echoed(pod))
                    self.api.merge_patch(f"{path}/status", patch)
                    for event in pod_events(pod, patch):
                        self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
                    log.info(
                        "pod %s/%s is %s on %s",
                        meta["namespace"],
                        meta["name"],
                        patch["status"].get("phase"),
                        node_name,
                    )
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
    from testbed.ports import free_port

    kubeconfig = plane.user_kubeconfig(
        plane.dir / "podlife.kubeconfig", "shimshift-testbed-podlife", ("system:masters",)
    )
    serving = plane.pki.issue("podlife-kubelet", "podlife-kubelet", server=True, ips=("127.0.0.1",))
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    plane._spawn(
        "podlife",
        [
            sys.executable,
            "-m",
            "testbed.controlplane.podlife",
            "--kubeconfig",
            str(kubeconfig),
            "--kubelet-port",
            str(free_port()),
            "--tls-cert",
            str(serving.cert),
            "--tls-key",
            str(serving.key),
            "--client-ca",
            str(plane.pki.cert_path),
        ],
        {"PYTHONPATH": path},
    )
    return "python testbed.controlplane.podlife"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.controlplane.podlife", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--kubelet-port", type=int, help="serve the containers' logs as a kubelet, here")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument(
        "--client-ca", type=Path, help="the CA of the API server's kubelet client certificate"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logs = Logs()
    if args.kubelet_port is not None:
        if not (args.tls_cert and args.tls_key and args.client_ca):
            parser.error("--kubelet-port needs --tls-cert, --tls-key and --client-ca")
        serve_logs(logs, args.kubelet_port, args.tls_cert, args.tls_key, args.client_ca)
    PodLife(KubeHttp(args.kubeconfig), args.kubelet_port, logs).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
