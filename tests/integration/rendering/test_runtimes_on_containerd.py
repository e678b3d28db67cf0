"""Docker's nvidia default runtime, carried, is the runtime the real containerd's CRI runs a pod with:
on Debian's 1.6 (schema 2), 2.2 (schema 3) and 2.3 (schema 4).

The node's `nvidia-container-runtime` is a stand-in here: a script that records how it is called and
runs runc through the testbed's `runc_shim.py` (which raises the sandbox's oomScoreAdj to what this
host grants; plain runc fails every sandbox here with "can't get final child's PID from pipe"). The
CRI plugin's own view of its config (Status, verbose) names it as the default runtime, and a real
RunPodSandbox without a runtime handler reaches the script as the runc shim's `create`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.nodes.images import pause_image, write_archive

from shimshift.model.spec import NodeMigrationSpec
from shimshift.rendering import facts_from_json_text, render_node_config
from tests.integration.rendering.harness import (
    BUILD_IDS,
    BUILDS,
    Build,
    NodeRoot,
    config_dump,
    ignored_keys,
    node_root,
    running_containerd,
)

REPO = Path(__file__).resolve().parents[3]
#: a node whose kubelet and Docker use cgroupfs: runc's systemd cgroup manager needs systemd
FACTS = REPO / "examples" / "facts" / "kubeadm-cgroupfs.json"
RUNC_SHIM = REPO / "testbed" / "nodes" / "runc_shim.py"
SANDBOX_IMAGE = "k8s.gcr.io/pause:3.6"


def _fake_runtime(root: NodeRoot) -> tuple[Path, Path]:
    """A `nvidia-container-runtime` that logs its arguments and runs runc (as the real one does)."""
    real = root.path / "opt" / "testbed" / "runc.real"  # the harness binds root/opt over /opt
    real.parent.mkdir(parents=True)
    runc = shutil.which("runc")
    assert runc is not None, "runc is not installed"
    shutil.copy(runc, real)
    log = root.path / "nvidia-calls.log"
    wrapper = root.path / "bin" / "nvidia-container-runtime"
    wrapper.parent.mkdir()
    specs = root.path / "specs"
    specs.mkdir()
    # keeps each bundle's config.json as runc got it: what the container's process really asked for
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >>{log}\n'
        'case " $* " in *" create "*) bundle=$(echo "$*" | sed "s/.*--bundle \\([^ ]*\\).*/\\1/")\n'
        f'    cp "$bundle/config.json" "{specs}/$(basename "$bundle").json" ;;\nesac\n'
        f'exec /usr/bin/python3 -I -S {RUNC_SHIM} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, log


def _with_cri(socket: Path, call: Any, timeout: float = 30.0) -> Any:
    """`call(stub)` on the CRI runtime service, asked again while the plugin is still starting."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        while True:
            try:
                return call(stub)
            except grpc.RpcError as e:
                details = str(e.details()) if hasattr(e, "details") else str(e)
                if "not initialized yet" in details and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise


def _containing(obj: Any, key: str) -> dict[str, Any]:
    """The first mapping in `obj` (depth first) that has `key`."""
    if isinstance(obj, dict):
        if key in obj:
            return obj
        for value in obj.values():
            found = _containing(value, key)
            if found:
                return found
    return {}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("build", BUILDS, ids=BUILD_IDS)
def test_dockers_nvidia_default_runtime_runs_the_pod_sandbox_on_the_containerd_of_each_schema(
    build: Build,
) -> None:
    with node_root() as root:
        wrapper, calls = _fake_runtime(root)
        facts = facts_from_json_text(FACTS.read_text())
        daemon = {
            **(facts.daemon_json or {}),
            "default-runtime": "nvidia",
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 4096, "Hard": 8192}},
            "runtimes": {
                "nvidia": {"path": str(wrapper), "runtimeArgs": []},
                "runsc": {"path": "/usr/local/bin/runsc"},
            },
        }
        default_spec = subprocess.run(
            [build.ctr, "oci", "spec"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
        facts = dataclasses.replace(
            facts, daemon_json=daemon, containerd_version=build.version, containerd_default_spec=default_spec
        )
        spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [facts.node]})
        rendered = render_node_config(spec, facts, None, root.layout)
        assert rendered.report.config_version == build.schema
        root.write(rendered)
        dump = config_dump(root, build)
        assert dump.returncode == 0, dump.stderr
        assert ignored_keys(rendered.config_toml.text, dump.stdout) == []

        with running_containerd(root, build) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-3000:]
            assert containerd.config_warnings() == []
            status = _with_cri(
                root.socket, lambda s: s.Status(api_pb2.StatusRequest(verbose=True), timeout=10)
            )
            cri = _containing(json.loads(status.info["config"]), "defaultRuntimeName")
            assert cri["defaultRuntimeName"] == "nvidia"
            nvidia = cri["runtimes"]["nvidia"]
            assert nvidia["runtimeType"] == "io.containerd.runc.v2"
            # 2.x shows every runc option, unset ones empty
            assert (nvidia["options"]["BinaryName"], nvidia["options"]["SystemdCgroup"]) == (
                str(wrapper),
                False,
            )
            assert cri["runtimes"]["runsc"]["options"]["BinaryName"] == "/usr/local/bin/runsc"
            runc = cri["runtimes"]["runc"]["options"]
            assert (runc.get("BinaryName", ""), runc["SystemdCgroup"]) == ("", False)

            archive = root.path / "pause.tar"
            write_archive([pause_image(SANDBOX_IMAGE)], archive)
            imported = subprocess.run(
                [build.ctr, "--address", str(root.socket), "-n", "k8s.io", "images", "import", str(archive)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert imported.returncode == 0, imported.stderr
            config = api_pb2.PodSandboxConfig(
                metadata=api_pb2.PodSandboxMetadata(name="gpu", namespace="default", uid="ss-rt-1"),
                log_directory=str(root.path / "pods"),
                linux=api_pb2.LinuxPodSandboxConfig(
                    security_context=api_pb2.LinuxSandboxSecurityContext(
                        namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)
                    )
                ),
            )
            # no runtime handler: what the kubelet asks for a pod without a RuntimeClass
            sandbox = _with_cri(
                root.socket,
                lambda s: s.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60),
            ).pod_sandbox_id
            try:
                state = _with_cri(
                    root.socket,
                    lambda s: s.PodSandboxStatus(
                        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox, verbose=True), timeout=10
                    ),
                )
                assert state.status.state == api_pb2.SANDBOX_READY
                info = json.loads(state.info["info"])
                assert info["runtimeType"] == "io.containerd.runc.v2"
                assert info["runtimeOptions"]["binary_name"] == str(wrapper)
                created = [line for line in calls.read_text().splitlines() if " create " in f" {line} "]
                assert any(sandbox in line for line in created), calls.read_text()
                # Docker's default-ulimits, through the base spec: exactly those rlimits in a pod's
                # container (the CRI plugin builds the sandbox's own spec without the base)
                container = _with_cri(
                    root.socket,
                    lambda s: s.CreateContainer(
                        api_pb2.CreateContainerRequest(
                            pod_sandbox_id=sandbox,
                            config=api_pb2.ContainerConfig(
                                metadata=api_pb2.ContainerMetadata(name="app"),
                                image=api_pb2.ImageSpec(image=SANDBOX_IMAGE),
                                command=["/bin/sleep", "60"],
                                log_path="app.log",
                            ),
                            sandbox_config=config,
                        ),
                        timeout=30,
                    ),
                ).container_id
                _with_cri(
                    root.socket,
                    lambda s: s.StartContainer(
                        api_pb2.StartContainerRequest(container_id=container), timeout=30
                    ),
                )
                spec = json.loads((root.path / "specs" / f"{container}.json").read_text())
                assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 8192, "soft": 4096}]
                status = _with_cri(
                    root.socket,
                    lambda s: s.ContainerStatus(
                        api_pb2.ContainerStatusRequest(container_id=container, verbose=True), timeout=10
                    ),
                )
                pid = json.loads(status.info["info"])["pid"]
                limits = Path(f"/proc/{pid}/limits").read_text()
                assert "Max open files            4096                 8192" in limits, limits
                _with_cri(
                    root.socket,
                    lambda s: s.StopContainer(
                        api_pb2.StopContainerRequest(container_id=container, timeout=1), timeout=30
                    ),
                )
            finally:
                _with_cri(
                    root.socket,
                    lambda s: s.StopPodSandbox(
                        api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox), timeout=30
                    ),
                )
                _with_cri(
                    root.socket,
                    lambda s: s.RemovePodSandbox(
                        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox), timeout=30
                    ),
                )
