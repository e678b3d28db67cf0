"""The engine's node port over SSH: `facts`, `backup`, `configure`, `images`, `recheck_images`, `switch`,
`verify`, `finish`, `commit`, `undo` for a node name, each idempotent (shimshift.ports.NodePort, matched
structurally).

Each call runs the node half of one step from its home (`shimshift.steps.<step>`, by the step table's
`NodeSteps`). Free of Kubernetes: what it needs from the cluster comes in as callables (`connect` opens a
node's connection, `kubelet_version` reads the Node's nodeInfo, `material` reads the registry Secrets), which
`shimshift.entry.nodeport` builds for the operator and tests build from the testbed. One reused connection per
node, dropped after a transport error so the next attempt reconnects. What the changing steps write is decided
once per node from its pre-migration facts: the containerd files by `shimshift.rendering.render_node_config`,
the kubelet edit by `shimshift.steps.switch.plan_switch`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shimshift.model.errors import RemoteError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ImageCounts
from shimshift.remote.connection import NodeConnection
from shimshift.rendering import RegistryMaterial, render_node_config
from shimshift.rendering.values import RenderedConfig
from shimshift.steps import backup, images
from shimshift.steps.base import ImagesProgress
from shimshift.steps.nodeplan import NodeRunPlan, preflight
from shimshift.steps.switch import plan_switch
from shimshift.steps.table import NodeSteps

log = logging.getLogger(__name__)
T = TypeVar("T")


def _no_material() -> RegistryMaterial | None:
    return None


def _in_bytes(progress: ImagesProgress | None) -> Callable[[images.Progress], None] | None:
    """The images step's reports as the port's (bytes moved, bytes to move)."""
    if progress is None:
        return None
    told = progress
    return lambda p: told(p.moved, p.to_move)


@dataclass
class SshNodePort:
    """Node steps of one NodeMigration (`migration` is its name) over SSH."""

    migration: str
    spec: NodeMigrationSpec
    connect: Callable[[str], NodeConnection]
    material: Callable[[], RegistryMaterial | None] = _no_material
    kubelet_version: Callable[[str], str | None] = lambda _node: None
    wait_seconds: int = 60
    stop_grace_seconds: int = 10
    _conns: dict[str, NodeConnection] = field(default_factory=dict, init=False)
    _plans: dict[str, tuple[RenderedConfig, NodeRunPlan]] = field(default_factory=dict, init=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)
    #: nodes whose node-side verify passed since their last switch: the verify step's later passes
    #: (waiting for Ready, the DaemonSet pods, the canary through the API) do not run it again
    _verified: set[str] = field(default_factory=set, init=False)

    # ---- plumbing ---------------------------------------------------------------------------------
    def connection(self, node: str) -> NodeConnection:
        with self._guard:
            conn = self._conns.get(node)
        if conn is None:
            conn = self.connect(node)
            with self._guard:
                conn = self._conns.setdefault(node, conn)
        return conn

    def steps(self, node: str) -> NodeSteps:
        return NodeSteps(self.connection(node))

    def round_trips(self, node: str) -> int:
        """SSH round trips spent on `node` so far (for logs and metrics)."""
        with self._guard:
            conn = self._conns.get(node)
        return conn.round_trips if conn else 0

    def host_key_fingerprint(self, node: str) -> str:
        """`<type> SHA256:<fingerprint>` of `node`'s host key as last verified; "" before a handshake."""
        with self._guard:
            conn = self._conns.get(node)
        pin = conn.host_key if conn is not None else None
        return str(pin) if pin is not None else ""

    def drop(self, node: str) -> None:
        """Close `node`'s connection (the next step opens a new one)."""
        with self._guard:
            conn = self._conns.pop(node, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._guard:
            nodes = list(self._conns)
        for node in nodes:
            self.drop(node)

    def _guarded(self, node: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except RemoteError:
            self.drop(node)  # a broken transport: the next attempt reconnects
            raise

    def _planned(self, node: str, facts: NodeFacts) -> tuple[RenderedConfig, NodeRunPlan]:
        with self._guard:
            cached = self._plans.get(node)
        if cached is None:
            rendered = render_node_config(self.spec, facts, self.material())
            switch = plan_switch(self.spec, node, facts, kubelet_version=self.kubelet_version(node))
            plan = NodeRunPlan.build(
                self.migration,
                rendered.files,
                switch,
                docker_policy=self.spec.docker,
                wait_seconds=self.wait_seconds,
                stop_grace_seconds=self.stop_grace_seconds,
            )
            with self._guard:
                cached = self._plans.setdefault(node, (rendered, plan))
        return cached

    def registry_material(self) -> RegistryMaterial | None:
        """The registry Secrets' material (read once), for a plan that renders what a migration writes."""
        return self.material()

    def prepare(self, node: str, facts: NodeFacts) -> None:
        """Decide what the changing steps write on `node` (render its files, check the registry
        material, plan the kubelet edit) before anything changes: a RenderError here leaves the node,
        its cordon and its pods as they are. A node that is not a Docker node is refused here too
        (NotDockershimNode), rather than with whatever its facts make the renderer say."""
        preflight(facts)
        self._planned(node, facts)

    def plan(self, node: str, facts: NodeFacts) -> NodeRunPlan:
        """What the changing steps write on `node`, decided once from its (pre-migration) facts."""
        return self._planned(node, facts)[1]

    def _run(self, node: str, step: StepId, facts: NodeFacts) -> None:
        plan = self.plan(node, facts)
        self._guarded(node, lambda: self.steps(node).run(step, plan))

    # ---- the port ---------------------------------------------------------------------------------
    def facts(self, node: str) -> NodeFacts:
        version = self.kubelet_version(node)
        return self._guarded(node, lambda: self.steps(node).facts(kubelet_version=version))

    def backup(self, node: str, facts: NodeFacts) -> str:
        """Refuses a node that is not a Docker node (NotDockershimNode) before anything changes."""
        preflight(facts)
        self._run(node, StepId.BACKUP, facts)
        return backup.backup_root(self.plan(node, facts))

    def configure(self, node: str, facts: NodeFacts) -> None:
        self._run(node, StepId.CONFIGURE, facts)

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        return self._images(node, facts, fresh_inventory=False, progress=progress)

    def _images(
        self, node: str, facts: NodeFacts, *, fresh_inventory: bool, progress: ImagesProgress | None
    ) -> ImageCounts:
        rendered, _ = self._planned(node, facts)
        # The sandbox image the new config names must be in containerd before kubelet needs it (an
        # air-gapped node cannot pull it): migrate it first, whichever rule chose it.
        sandbox = rendered.report.sandbox_image
        planned, outcome = self._guarded(
            node,
            lambda: images.run_images_step(
                self.connection(node),
                facts,
                self.spec,
                sandbox_image=sandbox,
                fresh_inventory=fresh_inventory,
                progress=_in_bytes(progress),
            ),
        )
        return images.image_counts(planned, outcome)

    def recheck_images(
        self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None
    ) -> ImageCounts:
        """The images step again over Docker's images as they are now (read in the step's own first
        round trip): what the kubelet pulled after staging moves; what was staged is found by image
        ID and skipped. The files and kubelet edit stay decided from the pre-migration `facts`."""
        return self._images(node, facts, fresh_inventory=True, progress=progress)

    def switch(self, node: str, facts: NodeFacts) -> None:
        self._forget_verified(node)
        self._run(node, StepId.SWITCH, facts)

    def verify(self, node: str, facts: NodeFacts) -> None:
        """The node side of verify (containerd's CRI and the kubelet up), once it passed after the
        switch: the step's further passes wait on the API only."""
        with self._guard:
            if node in self._verified:
                return
        self._run(node, StepId.VERIFY, facts)
        with self._guard:
            self._verified.add(node)

    def _forget_verified(self, node: str) -> None:
        with self._guard:
            self._verified.discard(node)

    def finish(self, node: str, facts: NodeFacts) -> None:
        """Nothing changes on the node (Docker and the backups stay until the commit); its connection
        closes."""
        self._forget_verified(node)
        with self._guard:
            conn = self._conns.get(node)
        if conn is not None:
            log.info(
                "node %s: finished with %d SSH round trips (%d connects)",
                node,
                conn.round_trips,
                conn.connects,
            )
        self.drop(node)

    def commit(self, node: str, facts: NodeFacts) -> None:
        """End the node's rollback window (`steps.commit`): Docker per spec.docker, backups removed."""
        self._run(node, StepId.COMMIT, facts)
        self.drop(node)

    def undo(self, node: str, facts: NodeFacts | None) -> None:
        """Roll the node back to Docker from its backups; safe at any point (each undo is idempotent).

        Without facts (e.g. after a restart before they were recorded) they are probed again; the undo
        restores from the backups on the node, so later facts plan the same rollback."""
        self._forget_verified(node)
        plan = self.plan(node, facts if facts is not None else self.facts(node))
        self._guarded(node, lambda: self.steps(node).rollback(plan))
        self._guarded(node, lambda: images.undo_images(self.connection(node), node))
