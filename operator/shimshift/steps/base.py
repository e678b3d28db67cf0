"""What every step is made of, and what a step may ask of the engine: the `Step` record the step table
holds, its `Outcome`, `StepFailed`, and the Protocols of its ports (`NodePort`, `StepCluster`,
`Observer`) and settings (`EngineConfig`).

A step's engine half is `Step.run(ctx, migration, port, record)`; `ctx` is the `StepContext` the
step executor (`shimshift.stepexec`) hands it: the ports, the settings, the clock and the facts
cache. Its node half (`node_run` / `node_undo`) runs over a `CommandRunner`
(`shimshift.steps.runner`). Pure: Protocols and values only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shimshift.model.canary import CanaryImage, CanaryPod
from shimshift.model.errors import ShimshiftError
from shimshift.model.facts import NodeFacts
from shimshift.model.gpuoperator import GpuOperator
from shimshift.model.hooks import HookJob
from shimshift.model.keys import StepId
from shimshift.model.migration import MigrationRef, NodeMigration
from shimshift.model.spec import Drain
from shimshift.model.status import EventReason, ImageCounts, NodeRecord
from shimshift.model.timestamps import parse_iso
from shimshift.playbooks import shipped_playbook
from shimshift.rendering import RegistryMaterial
from shimshift.steps.execute import PlaybookResult, run_playbook, undo_playbook
from shimshift.steps.nodeplan import NodeRunPlan
from shimshift.steps.runner import CommandRunner


class StepFailed(ShimshiftError):
    """A step failed for good (not a hiccup worth retrying): the node rolls back."""

    transient = False


@dataclass(frozen=True)
class Outcome:
    done: bool
    record: NodeRecord
    message: str = ""
    #: set by a drain pass: the PodDisruptionBudgets its node waits on now (empty: none); None from
    #: every other step
    waits_on_budgets: tuple[str, ...] | None = None


#: Told by a node port's images step how far it is: (bytes moved, bytes to move), in Docker's sizes of
#: the images the step moves; once before anything moves, then as each transfer or pull ends.
ImagesProgress = Callable[[int, int], None]


class NodePort(Protocol):
    """What the engine asks of a node (SSH + playbooks in production). Every call is idempotent."""

    def facts(self, node: str) -> NodeFacts: ...
    def prepare(self, node: str, facts: NodeFacts) -> None:
        """Decide, before any change, what the changing steps write; raises what would stop them."""
        ...

    def registry_material(self) -> RegistryMaterial | None:
        """The registry Secrets' material for a plan (None: the port reads no Secrets)."""
        ...

    def backup(self, node: str, facts: NodeFacts) -> str: ...
    def configure(self, node: str, facts: NodeFacts) -> None: ...
    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts: ...
    def recheck_images(
        self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None
    ) -> ImageCounts:
        """List Docker's images again and move those not in containerd yet (after `images`); the
        counts are the migration's totals, the staged images included."""
        ...

    def switch(self, node: str, facts: NodeFacts) -> None: ...
    def verify(self, node: str, facts: NodeFacts) -> None: ...
    def finish(self, node: str, facts: NodeFacts) -> None:
        """The node is done (nothing changes on it; a port may close its connection)."""
        ...

    def commit(self, node: str, facts: NodeFacts) -> None:
        """End the node's rollback window: Docker per `spec.docker`, the backups removed."""
        ...

    def undo(self, node: str, facts: NodeFacts | None) -> None: ...
    def host_key_fingerprint(self, node: str) -> str:
        """The node's host key as last verified (`<type> SHA256:<fingerprint>`), "" if none yet."""
        ...

    def close(self) -> None:
        """Close every connection the port holds (nothing is in flight); the next call reconnects."""
        ...


class DrainPass(Protocol):
    """How one drain pass went (`shimshift.kube.drain.DrainProgress` is one)."""

    @property
    def refused(self) -> tuple[str, ...]: ...
    @property
    def blocked(self) -> Sequence[object]: ...
    @property
    def budgets(self) -> tuple[str, ...]: ...
    @property
    def done(self) -> bool: ...
    def describe(self) -> str: ...


class NodeView(Protocol):
    """A Node as the API last showed it (`shimshift.planning.cluster.Node` is one)."""

    @property
    def ready_status(self) -> str:
        """The Ready condition's status: "True", "False", "Unknown", or "" when there is none."""
        ...

    @property
    def ready_reason(self) -> str: ...
    @property
    def ready_message(self) -> str: ...
    @property
    def runtime_version(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def operating_system(self) -> str: ...
    @property
    def pod_cidrs(self) -> tuple[str, ...]: ...


class StepCluster(Protocol):
    """What the steps ask of the Kubernetes API (a part of `shimshift.ports.ClusterPort`)."""

    def acquire_lock(self, node: str, owner: str) -> None: ...
    def release_lock(self, node: str, owner: str) -> None: ...
    def cordon(self, node: str, owner: str) -> bool: ...
    def uncordon(self, node: str, owner: str) -> None: ...
    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> DrainPass: ...
    def wait_node(self, node: str, *, runtime: str, timeout: float) -> bool: ...
    def read_node(self, node: str) -> NodeView | None:
        """`node` as last seen (None: there is no such Node)."""
        ...

    def daemonsets_on(self, node: str) -> tuple[str, ...]: ...
    def cni_config_writers(self, node: str, conf_dir: str) -> tuple[str, ...]:
        """The DaemonSets whose pod bound to `node` mounts `conf_dir` (or a directory above it) from
        the host, by name, sorted: a CNI agent that writes its configuration there."""
        ...

    def gpu_operators(self) -> tuple[GpuOperator, ...]:
        """The Deployments that run NVIDIA's GPU operator (`model.gpuoperator`), read now."""
        ...

    def wait_daemonset_pods(
        self, node: str, *, expected: Sequence[str], timeout: float, runtime: str = ""
    ) -> tuple[str, ...]:
        """The DaemonSets with no Running and Ready pod on `node` (on `runtime`'s containers, if
        given) after waiting at most `timeout` seconds for them; empty when all are back."""
        ...

    def mark_migrated(self, node: str, cri_endpoint: str | None) -> None: ...
    def unmark_migrated(self, node: str) -> None:
        """Remove the completion label (the node runs Docker again)."""
        ...

    def clear_undo_request(self, node: str, value: str) -> None:
        """Remove the node's shimshift.io/undo annotation if it still holds `value`."""
        ...

    def restore_cri_socket(self, node: str) -> None:
        """Put back the cri-socket annotation `mark_migrated` changed, if it did (a rollback, or an undo
        on request before the commit)."""
        ...

    def forget_cri_socket(self, node: str) -> None:
        """Drop the record of the cri-socket annotation's old value (the rollback window is committed)."""
        ...

    def run_canary(
        self,
        node: str,
        *,
        image: str,
        token: str,
        migration: str,
        wait: float,
        settled: Callable[[CanaryPod], bool],
    ) -> CanaryPod:
        """`node`'s canary pod running `image` and echoing `token`: created unless one with that token
        exists (one with another token, left by an earlier attempt, is deleted first), then watched at
        most `wait` seconds until `settled` says waiting longer changes nothing; as last seen."""
        ...

    def read_canary_log(self, node: str) -> str | None:
        """The log of `node`'s canary pod's container ("" when there is none; None when the API server
        cannot fetch it from the node's kubelet)."""
        ...

    def read_canary_events(self, node: str) -> tuple[str, ...]:
        """What the Events about `node`'s canary pod say ("Warning Failed: ..."), oldest first."""
        ...

    def delete_canary(self, node: str) -> None:
        """Delete `node`'s canary pod by its name (gone already is fine): the one the verify step ran."""
        ...

    def delete_canaries(self, node: str) -> int:
        """Delete every canary pod of `node` (found by label; none is fine); how many there were."""
        ...

    def run_hook_job(self, manifest: dict[str, Any], *, wait: float) -> tuple[HookJob, bool]:
        """The hook Job `manifest` describes: adopted when it exists (one of an earlier NodeMigration of
        the same name is deleted first), else created (the bool: created by this call); watched at most
        `wait` seconds until it finishes; as last seen."""
        ...

    def hook_last_pod(self, job: HookJob) -> str:
        """What the newest pod of `job` says of its end ("" without pods)."""
        ...

    def delete_hook_job(self, namespace: str, name: str) -> None:
        """Delete the hook Job and its pods (one already gone is fine)."""
        ...

    def event(
        self,
        migration: NodeMigration | MigrationRef,
        node: str | None,
        warning: bool,
        reason: EventReason,
        message: str,
    ) -> None: ...


class StepObserver(Protocol):
    """What the steps report for metrics (a part of `shimshift.ports.Observer`)."""

    def drain_waited(self, seconds: float, blocked: bool) -> None: ...
    def images_migrated(self, counts: ImageCounts) -> None: ...
    def canary_finished(self, seconds: float, result: str) -> None:
        """A canary ended (`result`: passed, failed, timeout; skipped with 0 seconds)."""
        ...

    def hook_finished(self, hook: str, seconds: float, result: str) -> None:
        """A node's hook Job ended after the node waited `seconds` on it (`hook`: pre or post;
        `result`: Succeeded, Failed, TimedOut)."""
        ...


@dataclass(frozen=True)
class EngineConfig:
    budget: float = 15.0  # seconds of work per pass before yielding back to the handler
    drain_pass_wait: float = 5.0  # longest watch-wait of one drain pass (also the PDB backoff)
    rollback_wait: float = 300.0  # how long a rolled-back node may take to report Ready again
    wait_slice: float = 10.0  # longest single watch-wait for node readiness
    retry_delay: float = 5.0  # when to come back after a transient failure
    idle_delay: float = 30.0  # how often a settled NodeMigration re-checks its selection (new nodes)
    lease_ttl: float = 30.0  # how long a replica's claim on a NodeMigration lasts without renewal


class StepContext(Protocol):
    """What a step's engine half is given (the step executor is one)."""

    @property
    def cluster(self) -> StepCluster: ...
    @property
    def observer(self) -> StepObserver: ...
    @property
    def config(self) -> EngineConfig: ...
    @property
    def monotonic(self) -> Callable[[], float]: ...
    @property
    def clock(self) -> Callable[[], dt.datetime]: ...
    def elapsed(self, record: NodeRecord, step: StepId) -> float:
        """Seconds since `step` of `record` was recorded Started (0 if never)."""
        ...

    def facts_of(self, migration: NodeMigration, port: NodePort, node: str) -> NodeFacts:
        """The node's facts from the cache, probed again when missing."""
        ...

    def cached_facts(self, migration: NodeMigration, node: str) -> NodeFacts | None: ...
    def canary_image(self, migration: NodeMigration, facts: NodeFacts | None) -> CanaryImage | None:
        """The image the verify step's canary runs on the node of `facts` (None: there is none)."""
        ...

    def remember_facts(self, migration: NodeMigration, node: str, facts: NodeFacts) -> None: ...

    def first_time(self, migration: NodeMigration, what: str) -> bool:
        """True the first time `what` is asked about `migration` in this operator process (then False):
        for what is said once per NodeMigration, not once per node (an operator restart says it again)."""
        ...

    def progress(self, migration: NodeMigration, record: NodeRecord) -> None:
        """Write a running step's `record` (its progress so far) to the node's own record; a write
        that fails is logged, and the step goes on (the engine writes the step's end as always)."""
        ...


#: Seconds between two writes of a running images step's progress to the node's record (the first
#: report and the last, everything moved, are written whenever they come).
PROGRESS_EVERY = 3.0


class ProgressWriter:
    """Writes the bytes a running images (or re-check) step has moved into the node's record: the
    first report (bytes to move, nothing moved yet), then as transfers and pulls end, at most every
    PROGRESS_EVERY seconds, and the report that everything moved. Bounded: one small write per
    report at most, never one per chunk; the node's own record only, never the NodeMigration."""

    def __init__(self, ctx: StepContext, migration: NodeMigration, record: NodeRecord) -> None:
        self.ctx, self.migration, self.record = ctx, migration, record
        self.written: tuple[int, int] | None = None
        self.at = 0.0

    def __call__(self, moved: int, to_move: int) -> None:
        now = self.ctx.monotonic()
        first, last = self.written is None, moved >= to_move
        if (moved, to_move) == self.written or not (first or last or now - self.at >= PROGRESS_EVERY):
            return
        images = replace(self.record.images, bytes_to_move=to_move, bytes_moved=moved)
        self.ctx.progress(self.migration, replace(self.record, images=images))
        self.written, self.at = (moved, to_move), now


class EngineHalf(Protocol):
    def __call__(
        self, ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord
    ) -> Outcome: ...


class NodeHalf(Protocol):
    def __call__(self, runner: CommandRunner, plan: NodeRunPlan) -> PlaybookResult: ...


@dataclass(frozen=True)
class Step:
    """One row of the step table: the step, its engine half, and (for a step that runs a playbook on
    the node) its node half, the undo of that, and the node scripts both run."""

    id: StepId
    run: EngineHalf
    node_run: NodeHalf | None = None
    node_undo: NodeHalf | None = None
    scripts: tuple[str, ...] = ()  # playbooks/scripts/<name>.sh


def playbook_halves(
    playbook: str, variables: Callable[[NodeRunPlan], Mapping[str, Any]]
) -> tuple[NodeHalf, NodeHalf]:
    """The node half of a step that runs `playbooks/<playbook>.yaml` with `variables(plan)`, and its
    undo (the playbook's undo actions, last task first)."""

    def run(runner: CommandRunner, plan: NodeRunPlan) -> PlaybookResult:
        return run_playbook(runner, shipped_playbook(playbook), variables(plan))

    def undo(runner: CommandRunner, plan: NodeRunPlan) -> PlaybookResult:
        return undo_playbook(runner, shipped_playbook(playbook), variables(plan))

    return run, undo


def started_at(record: NodeRecord, step: StepId) -> str:
    return next((s.started_at for s in record.steps if s.id == step), "")


def elapsed_since_start(record: NodeRecord, step: StepId, now: dt.datetime) -> float:
    started = parse_iso(started_at(record, step))
    return (now - started).total_seconds() if started else 0.0
