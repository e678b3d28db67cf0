"""The engine's node port over SSH: `facts`, `backup`, `configure`, `images`, `switch`, `verify`,
`finish`, `undo` for a node name, each idempotent (shimshift.engine.NodePort, matched structurally).

One connection per node, opened on first use and reused across steps. What a step writes is decided
from the node's facts: the containerd files by `shimshift.rendering.render_node_config`, the kubelet
edit by `shimshift.planning.kubelet.plan_kubelet_switch`. The images step is a hook (issue 7 fills it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ImageCounts
from shimshift.planning.kubelet import plan_kubelet_switch
from shimshift.playbooks import Playbook, load_playbooks
from shimshift.remote.connection import NodeConnection
from shimshift.remote.steps import ROLLBACK_ORDER, NodePlan, NodeSteps
from shimshift.rendering import RegistryMaterial, render_node_config

ImagesHook = Callable[[NodeSteps, NodeFacts, NodePlan], ImageCounts]


def _no_images(steps: NodeSteps, facts: NodeFacts, plan: NodePlan) -> ImageCounts:
    steps.run(StepId.IMAGES, plan)
    return ImageCounts()


@dataclass
class SshNodePort:
    """Node steps of one NodeMigration over SSH. `connect(node)` opens a (not yet connected)
    NodeConnection for a node name; `kubelet_version(node)` gives the Node's nodeInfo.kubeletVersion."""

    migration: str
    spec: NodeMigrationSpec
    connect: Callable[[str], NodeConnection]
    material: RegistryMaterial | None = None
    kubelet_version: Callable[[str], str | None] = lambda _node: None
    images_hook: ImagesHook = _no_images
    wait_seconds: int = 60
    stop_grace_seconds: int = 10
    playbooks: Mapping[str, Playbook] = field(default_factory=load_playbooks)
    _conns: dict[str, NodeConnection] = field(default_factory=dict, init=False)
    _plans: dict[str, NodePlan] = field(default_factory=dict, init=False)

    # ---- plumbing ---------------------------------------------------------------------------------
    def steps(self, node: str) -> NodeSteps:
        if node not in self._conns:
            self._conns[node] = self.connect(node)
        return NodeSteps(self._conns[node], self.playbooks)

    def round_trips(self, node: str) -> int:
        """SSH round trips spent on `node` so far (for status and metrics)."""
        conn = self._conns.get(node)
        return conn.round_trips if conn else 0

    def plan(self, node: str, facts: NodeFacts) -> NodePlan:
        """What the changing steps write on `node`, decided once from its (pre-migration) facts."""
        if node not in self._plans:
            rendered = render_node_config(self.spec, facts, self.material)
            switch = plan_kubelet_switch(
                node,
                facts.kubelet,
                endpoint=self.spec.kubelet.runtime_endpoint,
                method=self.spec.kubelet.config_method,
                kubelet_version=self.kubelet_version(node),
            )
            self._plans[node] = NodePlan.build(
                self.migration,
                rendered.files,
                switch,
                docker_policy=self.spec.docker,
                wait_seconds=self.wait_seconds,
                stop_grace_seconds=self.stop_grace_seconds,
            )
        return self._plans[node]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # ---- the port ---------------------------------------------------------------------------------
    def facts(self, node: str) -> NodeFacts:
        return self.steps(node).facts(kubelet_version=self.kubelet_version(node))

    def backup(self, node: str, facts: NodeFacts) -> str:
        """Refuses a node that is not a Docker node (NotDockershimNode) before anything changes."""
        NodeSteps.preflight(facts)
        plan = self.plan(node, facts)
        self.steps(node).run(StepId.BACKUP, plan)
        return f"{plan.state_dir}/backup"

    def configure(self, node: str, facts: NodeFacts) -> None:
        self.steps(node).run(StepId.CONFIGURE, self.plan(node, facts))

    def images(self, node: str, facts: NodeFacts) -> ImageCounts:
        return self.images_hook(self.steps(node), facts, self.plan(node, facts))

    def switch(self, node: str, facts: NodeFacts) -> None:
        self.steps(node).run(StepId.SWITCH, self.plan(node, facts))

    def verify(self, node: str, facts: NodeFacts) -> None:
        self.steps(node).run(StepId.VERIFY, self.plan(node, facts))

    def finish(self, node: str, facts: NodeFacts) -> None:
        self.steps(node).run(StepId.FINISH, self.plan(node, facts))

    def undo(self, node: str, facts: NodeFacts | None) -> None:
        """Roll the node back to Docker from its backups; safe at any point (each undo is idempotent).

        Without facts (e.g. after a restart before they were recorded) they are probed again; the undo
        restores from the backups on the node, so later facts plan the same rollback."""
        plan = self.plan(node, facts if facts is not None else self.facts(node))
        self.steps(node).rollback(plan, ROLLBACK_ORDER)
