"""The fake kubelet's view of its container runtime, through the runtime's real API.

``probe`` asks the configured endpoint what a kubelet would ask at start-up and at every sync:
Docker's Engine API (dockershim, or the cri-dockerd socket), or CRI v1 over gRPC (containerd).
Errors are worded as kubelet words them, because tests and the operator match on them.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass, field
from typing import Any, Protocol

from testbed.nodes.docker_api import DockerClient, DockerError
from testbed.nodes.kubelet_config import RuntimeChoice

CRI_TIMEOUT = 5.0
PULL_TIMEOUT = 30.0


class Runtime(Protocol):
    def has_image(self, ref: str) -> bool: ...
    def pull(self, ref: str) -> str | None:
        """Pull ``ref``; return None on success or the runtime's error text."""


@dataclass
class RuntimeReport:
    version: str = ""  # e.g. docker://20.10.24 or containerd://1.6.20~ds1
    error: str = ""  # why the kubelet cannot use the runtime (node NotReady)
    sandbox_image: str = ""
    sandbox_error: str = ""  # why no pod sandbox can be created (pods stuck ContainerCreating)
    images: list[dict[str, Any]] = field(default_factory=list)
    runtime: Runtime | None = None

    @property
    def ready(self) -> bool:
        return not self.error


def _normalise(ref: str) -> str:
    name = ref if "/" in ref.split(":")[0] or "." in ref.split("/")[0] else f"library/{ref}"
    first = name.split("/")[0]
    if "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name if ":" in name.rsplit("/", 1)[-1] or "@" in name else f"{name}:latest"


class DockerRuntime:
    def __init__(self, client: DockerClient) -> None:
        self.client = client

    def has_image(self, ref: str) -> bool:
        return self.client.inspect_image(ref) is not None

    def pull(self, ref: str) -> str | None:
        try:
            self.client.pull(ref)
        except (DockerError, OSError) as e:
            return f"rpc error: code = Unknown desc = Error response from daemon: {getattr(e, 'message', e)}"
        return None


def probe_docker(choice: RuntimeChoice, sandbox_image: str, cgroup_driver: str) -> RuntimeReport:
    client = DockerClient(choice.socket_path, timeout=PULL_TIMEOUT)
    report = RuntimeReport(sandbox_image=sandbox_image)
    try:
        version = client.version()
        info = client.info()
    except (OSError, DockerError) as e:
        if choice.via == "cri-dockerd":
            report.error = (
                f'validate service connection: validate CRI v1 runtime API for endpoint "{choice.endpoint}": '
                f"rpc error: code = Unavailable desc = connection error: "
                f'desc = "transport: Error while dialing dial unix {choice.socket_path}: {e}"'
            )
        else:
            report.error = (
                "container runtime is down: Cannot connect to the Docker daemon at "
                f"{choice.endpoint}. Is the docker daemon running?"
            )
        return report
    report.version = f"docker://{version.get('Version', '')}"
    docker_driver = info.get("CgroupDriver", "")
    if docker_driver != cgroup_driver:
        report.error = (
            f'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "{cgroup_driver}" '
            f'is different from docker cgroup driver: "{docker_driver}"'
        )
        return report
    report.runtime = DockerRuntime(client)
    report.images = [
        {"names": [*(i.get("RepoDigests") or []), *(i.get("RepoTags") or [])], "sizeBytes": i["Size"]}
        for i in client.images()
    ]
    return report


class CriRuntime:
    def __init__(self, channel: Any) -> None:
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self.pb = api_pb2
        self.images = api_pb2_grpc.ImageServiceStub(channel)

    def has_image(self, ref: str) -> bool:
        status = self.images.ImageStatus(
            self.pb.ImageStatusRequest(image=self.pb.ImageSpec(image=ref)), timeout=CRI_TIMEOUT
        )
        return bool(status.image.id)

    def pull(self, ref: str) -> str | None:
        import grpc

        try:
            request = self.pb.PullImageRequest(image=self.pb.ImageSpec(image=ref))
            self.images.PullImage(request, timeout=PULL_TIMEOUT)
        except grpc.RpcError as e:
            return f"rpc error: code = {e.code().name.title().replace('_', '')} desc = {e.details()}"
        return None


def pinned_sandbox_image() -> str | None:
    """containerd 2.x's sandbox image: its CRI status no longer carries the image service's config, so
    the one containerd itself uses is read from its effective config (`containerd config dump`)."""
    try:
        dump = subprocess.run(
            ["containerd", "--config", "/etc/containerd/config.toml", "config", "dump"],
            capture_output=True,
            text=True,
            timeout=CRI_TIMEOUT,
            check=True,
        ).stdout
        images = tomllib.loads(dump).get("plugins", {}).get("io.containerd.cri.v1.images", {})
    except (OSError, subprocess.SubprocessError, tomllib.TOMLDecodeError):
        return None
    image = (images.get("pinned_images") or {}).get("sandbox")
    return str(image) if image else None


def probe_cri(choice: RuntimeChoice, channel: Any, sandbox_flag: str, cgroup_driver: str) -> RuntimeReport:
    import grpc
    from cri_api.v1 import api_pb2, api_pb2_grpc

    report = RuntimeReport()
    runtime_stub = api_pb2_grpc.RuntimeServiceStub(channel)
    try:
        version = runtime_stub.Version(api_pb2.VersionRequest(version="v1"), timeout=CRI_TIMEOUT)
        status = runtime_stub.Status(api_pb2.StatusRequest(verbose=True), timeout=CRI_TIMEOUT)
    except grpc.RpcError as e:
        code = e.code()
        if code == grpc.StatusCode.UNIMPLEMENTED:
            report.error = (
                f"validate service connection: CRI v1 runtime API is not implemented for endpoint "
                f'"{choice.endpoint}": rpc error: code = Unimplemented desc = {e.details()}'
            )
        else:
            report.error = (
                f'validate service connection: validate CRI v1 runtime API for endpoint "{choice.endpoint}": '
                f"rpc error: code = {code.name.title()} desc = {e.details()}"
            )
        return report
    report.version = f"{version.runtime_name}://{version.runtime_version}"
    # kubelet requires these two and nothing else: containerd 2.2 adds a false
    # ContainerdHasNoDeprecationWarnings on a cgroup v1 host, which leaves the node Ready
    not_ready = [
        c for c in status.status.conditions if c.type in ("RuntimeReady", "NetworkReady") and not c.status
    ]
    if not_ready:
        c = not_ready[0]
        report.error = (
            f"container runtime network not ready: {c.type}=false reason:{c.reason} message:{c.message}"
            if c.type == "NetworkReady"
            else f"container runtime status check may not have completed yet: {c.type}=false "
            f"reason:{c.reason} message:{c.message}"
        )
        return report
    config = json.loads(status.info.get("config", "{}"))
    # containerd's CRI decides the sandbox image (kubelet's --pod-infra-container-image is only a
    # garbage-collection hint for remote runtimes)
    report.sandbox_image = config.get("sandboxImage") or pinned_sandbox_image() or sandbox_flag
    runc = ((config.get("containerd") or {}).get("runtimes") or {}).get("runc") or {}
    systemd_cgroup = bool((runc.get("options") or {}).get("SystemdCgroup"))
    runtime = CriRuntime(channel)
    report.runtime = runtime
    listed = runtime.images.ListImages(api_pb2.ListImagesRequest(), timeout=CRI_TIMEOUT).images
    report.images = [{"names": [*i.repo_digests, *i.repo_tags], "sizeBytes": i.size} for i in listed]
    if systemd_cgroup != (cgroup_driver == "systemd"):
        # what runc answers when kubelet's cgroupDriver and containerd's SystemdCgroup disagree
        if systemd_cgroup:
            cause = (
                'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                'got "/kubepods/besteffort/pod.../..." instead'
            )
        else:
            cause = 'invalid cgroups path "kubepods-besteffort-pod....slice:cri-containerd:..." for cgroupfs'
        report.sandbox_error = (
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create containerd "
            "task: failed to create shim task: OCI runtime create failed: "
            f"runc create failed: {cause}: unknown"
        )
    return report
