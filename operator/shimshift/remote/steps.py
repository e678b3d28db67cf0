"""The node half of the step machine: facts, backup, configure, images (hook), switch, verify, cleanup,
and the undo of each, as playbook runs over one reused SSH connection.

The engine calls `NodeSteps(conn).run(step, plan)` / `.undo(step, plan)` / `.rollback(plan)`. What
the steps write comes in as values: the rendered containerd files (any objects with path, content and
mode, e.g. `shimshift.rendering.RenderedFile`) and the planned kubelet edit
(`shimshift.planning.kubelet.plan_kubelet_switch`). Backups and step state live on the node under
/var/lib/shimshift/<migration>/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.model import keys
from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.spec import DockerPolicy
from shimshift.planning.facts_parse import parse_facts
from shimshift.planning.kubelet import KubeletSwitch
from shimshift.playbooks import FileLike, NodeFile, Playbook, load_playbooks
from shimshift.remote.connection import NodeConnection
from shimshift.remote.executor import PlaybookResult, run_playbook, undo_playbook

#: `containerd --config <tmp> config dump` catches malformed TOML before the file replaces the live one.
CONTAINERD_VALIDATE = ("containerd", "--config", "{tmp}", "config", "dump")
STAGED_SUFFIX = ".shimshift-new"

_PLAYBOOK_OF_STEP = {
    StepId.FACTS: "facts",
    StepId.BACKUP: "backup",
    StepId.CONFIGURE: "configure",
    StepId.IMAGES: "images",
    StepId.SWITCH: "switch",
    StepId.VERIFY: "verify",
    StepId.FINISH: "cleanup",
}
#: Steps whose undo changes the node, in the order a rollback runs them.
ROLLBACK_ORDER = (StepId.FINISH, StepId.SWITCH, StepId.IMAGES, StepId.CONFIGURE)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class NotDockershimNode(NodeError):
    """The node does not run its pods through Docker; shimshift leaves it untouched."""


@dataclass(frozen=True)
class NodeRunPlan:
    """Everything the changing steps need for one node, decided before the first change."""

    migration: str  # the NodeMigration's name: backups go under /var/lib/shimshift/<migration>/
    containerd_files: tuple[NodeFile, ...]
    kubelet: KubeletSwitch
    docker_policy: DockerPolicy = DockerPolicy.KEEP
    wait_seconds: int = 60  # how long a restarted daemon gets to come up
    stop_grace_seconds: int = 10  # how long Docker's remaining pod containers get to stop at the switch

    @classmethod
    def build(
        cls,
        migration: str,
        rendered: Iterable[FileLike],
        kubelet: KubeletSwitch,
        *,
        docker_policy: DockerPolicy = DockerPolicy.KEEP,
        wait_seconds: int = 60,
        stop_grace_seconds: int = 10,
    ) -> NodeRunPlan:
        """From the renderer's files: config.toml gets validated by containerd before it is installed."""
        files = tuple(
            NodeFile.from_rendered(f, CONTAINERD_VALIDATE if f.path == keys.CONTAINERD_CONFIG else ())
            for f in rendered
        )
        return cls(migration, files, kubelet, docker_policy, wait_seconds, stop_grace_seconds)

    @property
    def state_dir(self) -> str:
        if not _NAME.match(self.migration):
            raise NodeError("-", f"migration name {self.migration!r} is not a Kubernetes object name")
        return f"{keys.NODE_STATE_DIR}/{self.migration}"

    def backup_dir(self, what: str) -> str:
        return f"{self.state_dir}/backup/{what}"

    def variables(self) -> dict[str, Any]:
        edits = [e for e in self.kubelet.edits if e.before != e.after]
        containerd_paths = list(
            dict.fromkeys([keys.CONTAINERD_CONFIG, *(f.path for f in self.containerd_files)])
        )
        staged = [NodeFile(e.path + STAGED_SUFFIX, e.after.encode(), 0o644, done_if=e.path) for e in edits]
        pairs: list[str] = []
        for e, f in zip(edits, staged, strict=True):
            pairs += [e.path, f.sha256]
        for path in [*containerd_paths, *(e.path for e in edits)]:
            if not path.startswith("/") or "\n" in path or "\x00" in path:
                raise NodeError("-", f"refusing to touch {path!r}: not an absolute single-line path")
        return {
            "state_dir": self.state_dir,
            "containerd_backup": self.backup_dir("containerd"),
            "containerd_paths": containerd_paths,
            "kubelet_backup": self.backup_dir("kubelet"),
            "kubelet_paths": list(dict.fromkeys(self.kubelet.paths)),
            "files": list(self.containerd_files),
            "config_path": keys.CONTAINERD_CONFIG,
            "staged_files": staged,
            "switch_pairs": pairs,
            "targets": [e.path for e in edits],
            "wait_seconds": str(self.wait_seconds),
            "stop_grace_seconds": str(self.stop_grace_seconds),
            "docker_policy": self.docker_policy.value,
        }


class NodeSteps:
    """The node steps for one node over one connection (round trips accumulate on `conn`)."""

    def __init__(self, conn: NodeConnection, playbooks: Mapping[str, Playbook] | None = None) -> None:
        self.conn = conn
        self.playbooks = dict(playbooks) if playbooks is not None else load_playbooks()

    def facts(self, *, kubelet_version: str | None = None) -> NodeFacts:
        """The read-only probe: one round trip. `kubelet_version` (the Node's nodeInfo) fills in when the
        node has no `kubelet` binary on PATH."""
        result = run_playbook(self.conn, self.playbooks["facts"], {})
        return parse_facts(self.conn.node, result.output, kubelet_version=kubelet_version)

    @staticmethod
    def preflight(facts: NodeFacts) -> None:
        """Refuse, before any change, a node that is not a Docker/dockershim node."""
        if facts.on_containerd:
            raise NotDockershimNode(
                facts.node,
                f"the kubelet already uses containerd ({facts.runtime_endpoint}); "
                "nothing to migrate, the node is left untouched",
            )
        if not facts.dockershim_node:
            endpoint = facts.runtime_endpoint or "unknown"
            raise NotDockershimNode(
                facts.node,
                f"not a dockershim node (Docker {facts.docker_version or 'not found'}, "
                f"kubelet runtime endpoint {endpoint}); only Docker nodes are migrated, node left untouched",
            )

    def run(self, step: StepId, plan: NodeRunPlan) -> PlaybookResult:
        return run_playbook(self.conn, self._playbook(step), plan.variables())

    def undo(self, step: StepId, plan: NodeRunPlan) -> PlaybookResult:
        return undo_playbook(self.conn, self._playbook(step), plan.variables())

    def rollback(self, plan: NodeRunPlan, steps: Iterable[StepId] = ROLLBACK_ORDER) -> list[PlaybookResult]:
        """Undo the changing steps in reverse: the node is back on Docker, its files byte-identical."""
        return [self.undo(step, plan) for step in steps]

    def _playbook(self, step: StepId) -> Playbook:
        name = _PLAYBOOK_OF_STEP.get(step)
        if name is None:
            raise NodeError(self.conn.node, f"step {step} has no node playbook (it runs through the API)")
        return self.playbooks[name]
