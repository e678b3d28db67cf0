"""The node half of the step machine: facts, backup, configure, images (hook), switch, verify, commit,
and the undo of each, as playbook runs over one reused SSH connection.

The engine calls `NodeSteps(conn).run(step, plan)` / `.undo(step, plan)` / `.rollback(plan)`. What
the steps write comes in as values: the rendered containerd files (any objects with path, content and
mode, e.g. `shimshift.rendering.RenderedFile`) and the planned kubelet edit
(`shimshift.steps.switch.kubelet.plan_kubelet_switch`). Backups and step state live on the node under
/var/lib/shimshift/<migration>/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shimshift.model import keys
from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.spec import DockerPolicy
from shimshift.playbooks import FileLike, NodeFile

#: `containerd --config <tmp> config dump` catches malformed TOML before the file replaces the live one.
CONTAINERD_VALIDATE = ("containerd", "--config", "{tmp}", "config", "dump")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class FileEditLike(Protocol):
    """One kubelet file's planned edit (`steps.switch.kubelet.FileEdit` is one)."""

    @property
    def path(self) -> str: ...
    @property
    def before(self) -> str: ...
    @property
    def after(self) -> str: ...


class KubeletEditLike(Protocol):
    """The planned kubelet edit (`steps.switch.kubelet.KubeletSwitch` is one)."""

    @property
    def edits(self) -> Sequence[FileEditLike]: ...
    @property
    def paths(self) -> Sequence[str]: ...


class NotDockershimNode(NodeError):
    """The node does not run its pods through Docker; shimshift leaves it untouched."""


@dataclass(frozen=True)
class NodeRunPlan:
    """Everything the changing steps need for one node, decided before the first change."""

    migration: str  # the NodeMigration's name: backups go under /var/lib/shimshift/<migration>/
    containerd_files: tuple[NodeFile, ...]
    kubelet: KubeletEditLike
    docker_policy: DockerPolicy = DockerPolicy.KEEP
    wait_seconds: int = 60  # how long a restarted daemon gets to come up
    stop_grace_seconds: int = 10  # how long Docker's remaining pod containers get to stop at the switch

    @classmethod
    def build(
        cls,
        migration: str,
        rendered: Iterable[FileLike],
        kubelet: KubeletEditLike,
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

    @property
    def containerd_paths(self) -> list[str]:
        """config.toml and every file the configure step writes, each once."""
        return list(dict.fromkeys([keys.CONTAINERD_CONFIG, *(f.path for f in self.containerd_files)]))

    @property
    def kubelet_paths(self) -> list[str]:
        return list(dict.fromkeys(self.kubelet.paths))

    @property
    def kubelet_edits(self) -> list[FileEditLike]:
        """The kubelet files the switch changes (an edit that changes nothing is left out)."""
        return [e for e in self.kubelet.edits if e.before != e.after]

    def checked(self) -> NodeRunPlan:
        """This plan, once every path it touches is an absolute single-line path (NodeError if not):
        every step checks before its playbook runs."""
        self.state_dir  # noqa: B018 - the migration name must make a state directory
        for path in [*self.containerd_paths, *(e.path for e in self.kubelet_edits)]:
            if not path.startswith("/") or "\n" in path or "\x00" in path:
                raise NodeError("-", f"refusing to touch {path!r}: not an absolute single-line path")
        return self


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
