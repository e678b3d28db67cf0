"""The fake kubelet: runs inside a node, reports the node and its pods to the Kubernetes API.

It reads its flags and KubeletConfiguration as kubelet does (``kubelet_config``), asks the
configured runtime endpoint through the runtime's real API (``kubelet_runtime``), registers its
Node, heartbeats the Ready condition, its capacity and ``nodeInfo`` (``containerRuntimeVersion`` docker://… or
containerd://…), and sets the status of the pods bound to the node: Running when the runtime is
healthy, the sandbox can be made and the images are present or pullable through the runtime's own
registry configuration; otherwise ContainerCreating / ImagePullBackOff with the reason a real
kubelet gives. It creates no containers: it models what kubelet would observe.

Started by the node's fake systemctl (unit ``kubelet``); settings that a real kubelet binary
carries inside itself come from the unit's environment: FAKE_KUBELET_VERSION, FAKE_KUBELET_NODE_IP,
FAKE_KUBELET_ANNOTATIONS (JSON, applied at registration, as kubeadm would), FAKE_KUBELET_INTERVAL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.nodes.kubelet_config import (
    KubeletFlagError,
    RuntimeChoice,
    choose_runtime,
    parse_flags,
    sandbox_image_from_flags,
)
from testbed.nodes.kubelet_runtime import Runtime, RuntimeReport, probe_cri, probe_docker

log = logging.getLogger("fake-kubelet")

STATUS_FILE = Path("/var/lib/kubelet/fake-status.json")
READY_FILE = Path("/var/lib/kubelet/fake-kubelet.ready")
PULL_BACKOFF = 10.0
#: the machine the model kubelet reports (a real kubelet reads it from cAdvisor)
CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
EXTERNAL_KUBELET = "testbed.shimshift.io/external-kubelet"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Settings:
    node_name: str
    node_ip: str
    version: str
    kubeconfig: str
    cgroup_driver: str
    runtime: RuntimeChoice
    sandbox_flag: str
    annotations: dict[str, str] = field(default_factory=dict)
    interval: float = 2.0

    @classmethod
    def from_argv(cls, argv: list[str], env: dict[str, str]) -> Settings:
        version = env.get("FAKE_KUBELET_VERSION", "1.23.17")
        flags = parse_flags(argv, version)
        config: dict[str, Any] = {}
        if "--config" in flags:
            try:
                config = yaml.safe_load(Path(flags["--config"]).read_text()) or {}
            except OSError as e:
                path = flags["--config"]
                raise KubeletFlagError(
                    f"failed to load Kubelet config file {path}, error failed to read "
                    f'kubelet config file "{path}", error: {e}'
                ) from e
        return cls(
            node_name=flags.get("--hostname-override") or socket.gethostname(),
            node_ip=flags.get("--node-ip") or env.get("FAKE_KUBELET_NODE_IP", "127.0.0.1"),
            version=version,
            kubeconfig=flags.get("--kubeconfig", "/etc/kubernetes/kubelet.conf"),
            cgroup_driver=config.get("cgroupDriver") or flags.get("--cgroup-driver", "cgroupfs"),
            runtime=choose_runtime(flags, config, version),
            sandbox_flag=sandbox_image_from_flags(flags, version),
            annotations=json.loads(env.get("FAKE_KUBELET_ANNOTATIONS", "{}")),
            interval=float(env.get("FAKE_KUBELET_INTERVAL", "2")),
        )


class Puller:
    """Pulls through the runtime with kubelet's back-off: a failed image is retried only later."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures: dict[str, tuple[float, str]] = {}
        self.clock = clock

    def ensure(self, runtime: Runtime, ref: str) -> str | None:
        """None if ``ref`` is present (pulling it if needed), else the pull error."""
        if runtime.has_image(ref):
            self.failures.pop(ref, None)
            return None
        failed = self.failures.get(ref)
        if failed and self.clock() - failed[0] < PULL_BACKOFF:
            return failed[1]
        error = runtime.pull(ref)
        if error:
            self.failures[ref] = (self.clock(), error)
        return error


def probe(settings: Settings, channel: Any) -> RuntimeReport:
    if settings.runtime.kind == "docker":
        return probe_docker(settings.runtime, settings.sandbox_flag, settings.cgroup_driver)
    return probe_cri(settings.runtime, channel, settings.sandbox_flag, settings.cgroup_driver)


def sandbox_failure(report: RuntimeReport, puller: Puller, via: str) -> str:
    if report.sandbox_error or report.runtime is None:
        return report.sandbox_error
    error = puller.ensure(report.runtime, report.sandbox_image)
    if not error:
        return ""
    if via == "cri":
        return (
            f"Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image "
            f'"{report.sandbox_image}": failed to pull image "{report.sandbox_image}": {error}'
        )
    return (
        f"Failed to create pod sandbox: rpc error: code = Unknown desc = failed pulling image "
        f'"{report.sandbox_image}": {error}'
    )


def _condition(
    kind: str, ok: bool, reason: str, message: str, previous: dict[str, Any] | None
) -> dict[str, Any]:
    status = "True" if ok else "False"
    heartbeat = now_iso()
    if previous is not None and previous.get("status") == status:
        transition = previous["lastTransitionTime"]
    else:
        transition = now_iso()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": transition,
    }


def node_status(
    settings: Settings, report: RuntimeReport, previous: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    ready = report.ready
    conditions = [
        _condition(kind, False, reason, message, previous.get(kind))
        for kind, reason, message in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    message = "kubelet is posting ready status" if ready else report.error
    conditions.append(
        _condition(
            "Ready", ready, "KubeletReady" if ready else "KubeletNotReady", message, previous.get("Ready")
        )
    )
    uname = platform.uname()
    return {
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": settings.node_ip},
            {"type": "Hostname", "address": settings.node_name},
        ],
        # what a kubelet reports of its machine: without it a real scheduler places no pod here
        "capacity": CAPACITY,
        "allocatable": CAPACITY,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": hashlib.md5(settings.node_name.encode()).hexdigest(),  # noqa: S324 - an id, not security
            "systemUUID": hashlib.md5(settings.node_name.encode()).hexdigest(),  # noqa: S324
            "bootID": hashlib.md5(f"{settings.node_name}{os.getpid()}".encode()).hexdigest(),  # noqa: S324
            "kernelVersion": uname.release,
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": report.version,
            "kubeletVersion": f"v{settings.version}",
            "kubeProxyVersion": f"v{settings.version}",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": report.images[:50],
    }


def pod_status(
    pod: dict[str, Any],
    report: RuntimeReport,
    sandbox_error: str,
    image_errors: dict[str, str],
    previous: dict[str, Any],
) -> dict[str, Any]:
    """The status kubelet would post for ``pod`` given what the runtime said."""
    containers = pod.get("spec", {}).get("containers") or []
    uid = pod.get("metadata", {}).get("uid", "")
    prefix = report.version.split("://")[0] or "docker"
    old_conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    started = previous.get("startTime") or now_iso()
    statuses = []
    for c in containers:
        name, image = c.get("name", ""), c.get("image", "")
        base = {"name": name, "image": image, "imageID": "", "restartCount": 0}
        if not report.ready:
            state = {"waiting": {"reason": "ContainerCreating", "message": report.error}}
        elif sandbox_error:
            state = {"waiting": {"reason": "ContainerCreating", "message": sandbox_error}}
        elif image in image_errors:
            state = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}": {image_errors[image]}',
                }
            }
        else:
            cid = hashlib.sha256(f"{uid}/{name}/{prefix}".encode()).hexdigest()
            state = {"running": {"startedAt": started}}
            base |= {"containerID": f"{prefix}://{cid}", "started": True}
        statuses.append({**base, "state": state, "ready": "running" in state})
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)

    def cond(kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
        c = _condition(kind, ok, reason, "", old_conditions.get(kind))
        c.pop("lastHeartbeatTime")
        if not reason:
            c.pop("reason")
        c.pop("message")
        return c

    not_ready = "" if all_ready else ("ContainersNotReady" if report.ready else "KubeletNotReady")
    return {
        "phase": "Running" if all_ready else "Pending",
        "hostIP": previous.get("hostIP") or "",
        "startTime": started,
        "conditions": [
            cond("Initialized", True),
            cond("Ready", all_ready, not_ready),
            cond("ContainersReady", all_ready, not_ready),
            cond("PodScheduled", True),
        ],
        "containerStatuses": statuses,
    }


def _comparable(status: dict[str, Any]) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip(v) for k, v in value.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(status), sort_keys=True)


class FakeKubelet:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # one gRPC channel for the kubelet's life: it reconnects by itself when containerd restarts
        self.channel: Any = None
        if settings.runtime.kind == "cri":
            import grpc

            self.channel = grpc.insecure_channel(settings.runtime.endpoint)
        self.api = KubeHttp(settings.kubeconfig)
        self.puller = Puller()
        self.posted_pods: dict[str, str] = {}
        self.node_conditions: dict[str, dict[str, Any]] = {}

    def register(self) -> None:
        name = self.settings.node_name
        try:
            self.api.request("GET", f"/api/v1/nodes/{name}")
            return
        except ApiError as e:
            if e.status != 404:
                raise
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    # this node's pods are reported here: the testbed's pod-lifecycle stand-ins
                    # (the emulator's, testbed.controlplane.podlife) leave them alone
                    EXTERNAL_KUBELET: "true",
                    **self.settings.annotations,
                },
            },
            "spec": {},
        }
        self.api.request("POST", "/api/v1/nodes", body)
        log.info("registered node %s", name)

    def sync(self) -> dict[str, Any]:
        report = probe(self.settings, self.channel)
        sandbox_error = ""
        if report.ready:
            sandbox_error = sandbox_failure(report, self.puller, self.settings.runtime.via)
        status = node_status(self.settings, report, self.node_conditions)
        self.node_conditions = {c["type"]: c for c in status["conditions"]}
        self.api.merge_patch(f"/api/v1/nodes/{self.settings.node_name}/status", {"status": status})
        pods = self.api.request(
            "GET", "/api/v1/pods" + KubeHttp.query(fieldSelector=f"spec.nodeName={self.settings.node_name}")
        )
        summary = {}
        for pod in pods.get("items") or []:
            meta = pod["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            image_errors: dict[str, str] = {}
            if report.ready and not sandbox_error and report.runtime is not None:
                for c in pod["spec"].get("containers") or []:
                    error = self.puller.ensure(report.runtime, c["image"])
                    if error:
                        image_errors[c["image"]] = error
            previous = pod.get("status") or {}
            new = pod_status(pod, report, sandbox_error, image_errors, previous)
            new["hostIP"] = self.settings.node_ip
            summary[key] = new["phase"]
            if self.posted_pods.get(key) != _comparable(new) or _comparable(previous) != _comparable(new):
                self.api.merge_patch(
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": new}
                )
                self.posted_pods[key] = _comparable(new)
        result = {
            "time": now_iso(),
            "node": self.settings.node_name,
            "runtime": report.version,
            "endpoint": self.settings.runtime.endpoint,
            "ready": report.ready,
            "error": report.error,
            "sandbox_error": sandbox_error,
            "pods": summary,
        }
        STATUS_FILE.write_text(json.dumps(result, indent=1))
        return result

    def run(self) -> None:
        self.register()
        READY_FILE.parent.mkdir(parents=True, exist_ok=True)
        READY_FILE.write_text(f"{os.getpid()}\n")
        last = ""
        while True:
            try:
                result = self.sync()
                keys = ("runtime", "ready", "error", "sandbox_error", "pods")
                line = json.dumps({k: result[k] for k in keys})
                if line != last:
                    log.info("sync: %s", line)
                    last = line
            except Exception:
                log.exception("sync failed")
            time.sleep(self.settings.interval)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_argv(args, dict(os.environ))
    except KubeletFlagError as e:
        log.error("%s", e)
        return 1
    log.info(
        "flags %s; runtime %s via %s; cgroupDriver %s",
        args,
        settings.runtime.endpoint,
        settings.runtime.via,
        settings.cgroup_driver,
    )
    FakeKubelet(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
