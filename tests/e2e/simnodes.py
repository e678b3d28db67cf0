"""A simulated NodePort for end-to-end runs of the real operator process against the API emulator.

It stands in for SSH + playbooks where no fake node is wanted: each operation is idempotent and
counts the changes it really makes in a JSON file per node (so a test can prove that nothing was
changed twice across operator crashes), and the switch reports the new runtime on the Node's status
as the kubelet would. Handed to the operator by its test launcher, tests/e2e/run_operator.py.

Environment: SHIMSHIFT_SIM_DIR (state files), SHIMSHIFT_SIM_STEP_SECONDS (how long each changing
step takes, so a test can kill the operator inside one), SHIMSHIFT_SIM_BREAK (comma-separated nodes
whose containerd never comes up after the switch), SHIMSHIFT_SIM_NOT_READY (comma-separated nodes whose
kubelet reports NotReady on containerd after the switch, with `NOT_READY_MESSAGE`, until the undo),
SHIMSHIFT_SIM_CRASH (`node:op`: the operator process
SIGKILLs itself once inside that node operation: for an operation that changes the node, right after
the change is made and before the operator could record it; for facts and verify, while they run),
SHIMSHIFT_SIM_HOLD (`node:op:file`: that node operation waits, at most `HOLD_SECONDS`, until the
file exists before it does anything, so a test decides when it happens),
SHIMSHIFT_SIM_RAISE (`node:op:n`: that node operation raises an OverflowError, an error no port
promises, the first n times it is called: a bug's stand-in for the operator's unexpected-error path),
SHIMSHIFT_SIM_KUBELET_KUBECONFIG (the credentials the simulated kubelet reports the runtime with; by
default the operator's own, which only the emulator, enforcing no RBAC, accepts).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shimshift.kube.api import MERGE_PATCH, Kube
from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.migration import NodeMigration
from shimshift.model.status import ImageCounts
from shimshift.ports import NodePort
from shimshift.rendering import RegistryMaterial
from shimshift.steps.base import ImagesProgress

DOCKER = "docker://20.10.24"
CONTAINERD = "containerd://1.6.20"
#: what kubelet reports when containerd finds no CNI network configuration
NOT_READY_MESSAGE = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


#: The longest a held operation waits for its release file (SHIMSHIFT_SIM_HOLD).
HOLD_SECONDS = 120.0


def read_state(state_dir: Path, node: str) -> dict[str, Any]:
    path = state_dir / f"{node}.json"
    if not path.exists():
        return {"done": [], "changes": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class SimNodes:
    def __init__(
        self, kube: Kube, state_dir: Path, step_seconds: float, broken: set[str], crash: str = ""
    ) -> None:
        self.kube = kube
        self.dir = state_dir
        self.step_seconds = step_seconds
        self.broken = broken
        self.crash = crash
        self.not_ready = {n for n in os.environ.get("SHIMSHIFT_SIM_NOT_READY", "").split(",") if n}
        self.lock = threading.Lock()
        self.raise_at, _, times = os.environ.get("SHIMSHIFT_SIM_RAISE", "").rpartition(":")
        self.raise_times = int(times or 0)
        hold_node, _, rest = os.environ.get("SHIMSHIFT_SIM_HOLD", "").partition(":")
        hold_op, _, release = rest.partition(":")
        self.hold_at, self.release = f"{hold_node}:{hold_op}", Path(release) if release else None

    def _maybe_hold(self, node: str, op: str) -> None:
        """Wait until the release file exists when `node:op` is the held operation (at most HOLD_SECONDS)."""
        if self.release is None or self.hold_at != f"{node}:{op}":
            return
        deadline = time.monotonic() + HOLD_SECONDS
        while not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _maybe_raise(self, node: str, op: str) -> None:
        """Raise an unexpected error (no ShimshiftError) the first `raise_times` calls of `node:op`."""
        if self.raise_at != f"{node}:{op}":
            return
        with self.lock:
            counter = self.dir / f"raised-{node}-{op}"
            raised = int(counter.read_text()) if counter.exists() else 0
            if raised >= self.raise_times:
                return
            counter.write_text(str(raised + 1))
        raise OverflowError("cannot convert float infinity to integer (injected)")

    def _maybe_crash(self, node: str, op: str) -> None:
        """SIGKILL this process the first time `node:op` is the crash point (a marker file remembers)."""
        if self.crash != f"{node}:{op}":
            return
        marker = self.dir / f"crashed-{node}-{op}"
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def _write(self, node: str, state: dict[str, Any]) -> None:
        tmp = self.dir / f".{node}.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.dir / f"{node}.json")

    def _change(self, node: str, op: str) -> None:
        self._maybe_hold(node, op)
        time.sleep(self.step_seconds)  # the node is busy; a test may kill the operator meanwhile
        with self.lock:
            state = read_state(self.dir, node)
            if op not in state["done"]:
                state["done"].append(op)
                state["changes"][op] = state["changes"].get(op, 0) + 1
                state.setdefault("by", {})[op] = os.environ.get("SHIMSHIFT_IDENTITY", "")
                self._write(node, state)
        self._maybe_crash(node, op)

    def _runtime(self, node: str, version: str) -> None:
        body: dict[str, Any] = {"status": {"nodeInfo": {"containerRuntimeVersion": version}}}
        if node in self.not_ready:  # a merge patch replaces the whole list of conditions
            ready = {"type": "Ready", "status": "True", "reason": "KubeletReady"}
            if version == CONTAINERD:
                ready = {
                    "type": "Ready",
                    "status": "False",
                    "reason": "KubeletNotReady",
                    "message": NOT_READY_MESSAGE,
                }
            body["status"]["conditions"] = [ready]
        kubelet = os.environ.get("SHIMSHIFT_SIM_KUBELET_KUBECONFIG")
        if kubelet:  # the kubelet's own credentials, not the operator's (a real server tells them apart)
            from testbed.nodes.kube_http import KubeHttp

            KubeHttp(kubelet).merge_patch(f"/api/v1/nodes/{node}/status", body)
            return
        self.kube.request("PATCH", f"/api/v1/nodes/{node}/status", body=body, content_type=MERGE_PATCH)

    def facts(self, node: str) -> NodeFacts:
        time.sleep(self.step_seconds)
        self._maybe_raise(node, "facts")
        self._maybe_crash(node, "facts")
        return NodeFacts(
            node=node, docker_version="20.10.24", containerd_version="1.6.20", docker_running=True
        )

    def prepare(self, node: str, facts: NodeFacts) -> None:
        pass

    def registry_material(self) -> RegistryMaterial | None:
        return None

    def backup(self, node: str, facts: NodeFacts) -> str:
        self._change(node, "backup")
        return "/var/lib/shimshift/backup"

    def configure(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "configure")

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        self._change(node, "images")
        return ImageCounts(transferred=2, bytes=2048)

    def recheck_images(
        self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None
    ) -> ImageCounts:
        self._change(node, "recheck")
        return ImageCounts(transferred=2, bytes=2048)

    def switch(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "switch")
        if node not in self.broken:
            self._runtime(node, CONTAINERD)

    def verify(self, node: str, facts: NodeFacts) -> None:
        time.sleep(self.step_seconds)
        self._maybe_crash(node, "verify")
        if node in self.broken:
            raise NodeError(node, "containerd CRI plugin is not ok after the new config (injected fault)")

    def finish(self, node: str, facts: NodeFacts) -> None:
        # the real finish changes nothing on the node (Docker waits for the commit); counted all the
        # same, so the crash tests see that the call completed once
        self._change(node, "finish")

    def commit(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "commit")

    def undo(self, node: str, facts: NodeFacts | None) -> None:
        with self.lock:
            state = read_state(self.dir, node)
            undone = [op for op in state["done"] if op in ("configure", "images", "switch")]
            if (
                undone
            ):  # an undo of what is already undone changes nothing; images' undo is the re-check's too
                state["done"] = [op for op in state["done"] if op not in (*undone, "recheck")]
                state["changes"]["undo"] = state["changes"].get("undo", 0) + 1
                steps = state.setdefault("undone", {})  # each step's own undo, as really made
                for op in undone:
                    steps[op] = steps.get(op, 0) + 1
            state["undo-calls"] = state.get("undo-calls", 0) + 1
            self._write(node, state)
        self._runtime(node, DOCKER)
        self._maybe_crash(node, "undo")

    def host_key_fingerprint(self, node: str) -> str:
        return ""  # no SSH: no host key

    def close(self) -> None:
        pass


def node_ports(kube: Kube) -> Callable[[NodeMigration], NodePort]:
    state_dir = Path(os.environ["SHIMSHIFT_SIM_DIR"])
    state_dir.mkdir(parents=True, exist_ok=True)
    nodes = SimNodes(
        kube,
        state_dir,
        float(os.environ.get("SHIMSHIFT_SIM_STEP_SECONDS", "0")),
        {n for n in os.environ.get("SHIMSHIFT_SIM_BREAK", "").split(",") if n},
        os.environ.get("SHIMSHIFT_SIM_CRASH", ""),
    )
    return lambda migration: nodes
