"""Executing one step of one node: the side effects behind each `StepId`, and nothing about status.

`StepExecutor.run` does the work of one step (facts, lock, cordon, drain, backup, configure, images,
switch, verify, finish, rollback) through the ports and says how it went as an `Outcome`: done, or
still waiting (a drain pass that left pods behind, a node not yet Ready), with the node record to keep
and a message for its step. Recording steps in status, retries, rollout order and leases are the
engine's (`shimshift.engine`), which owns the ports, the config and the facts cache this is given.

Must not: import kubernetes, paramiko or kopf; sleep (waits are bounded watches inside the ports);
write status (the engine records what a step did).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from shimshift.model.errors import ShimshiftError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.spec import DrainTimeoutAction
from shimshift.model.status import EventReason, NodeRecord
from shimshift.model.timestamps import parse_iso
from shimshift.planning.steps import needs_node_undo
from shimshift.ports import ClusterPort, EngineConfig, NodePort, Observer

log = logging.getLogger(__name__)

#: Facts of nodes in flight across every NodeMigration; far above any rollout's maxUnavailable.
MAX_CACHED_FACTS = 1024


class StepFailed(ShimshiftError):
    """A step failed for good (not a hiccup worth retrying): the node rolls back."""

    transient = False


@dataclass(frozen=True)
class Outcome:
    done: bool
    record: NodeRecord
    message: str = ""


class StepExecutor:
    """Runs the steps of nodes of any NodeMigration; the facts cache is keyed by (uid or name, node)."""

    def __init__(
        self,
        cluster: ClusterPort,
        observer: Observer,
        config: EngineConfig,
        facts: dict[tuple[str, str], NodeFacts],
        *,
        clock: Callable[[], dt.datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.observer = observer
        self.config = config
        self._facts = facts
        self.clock = clock
        self.monotonic = monotonic

    def keep_facts(self, migration: NodeMigration, in_flight: Collection[str]) -> None:
        """Drop the cached facts of `migration`'s nodes that are not in flight (finished, rolled back,
        failed, deselected); with nothing in flight (or the object deleted) none of its entries stay.
        The cache is also capped overall (oldest first): facts are re-probed when missing."""
        uid = migration.uid or migration.name
        for key in [k for k in self._facts if k[0] == uid and k[1] not in in_flight]:
            del self._facts[key]
        while len(self._facts) > MAX_CACHED_FACTS:
            del self._facts[next(iter(self._facts))]

    def _facts_of(self, migration: NodeMigration, port: NodePort, node: str) -> NodeFacts:
        key = (migration.uid or migration.name, node)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = port.facts(node)
        return facts

    def _elapsed(self, record: NodeRecord, step: StepId) -> float:
        started = parse_iso(started_at(record, step))
        return (self.clock() - started).total_seconds() if started else 0.0

    def run(
        self, migration: NodeMigration, port: NodePort, record: NodeRecord, step: StepId, stopping: bool
    ) -> Outcome:
        name, owner, spec = record.name, migration.name, migration.spec
        if step == StepId.FACTS:
            facts = port.facts(name)
            # what the changing steps will write is decided now, before the lock, cordon and drain: a
            # spec this node cannot take (a refused registry CA, a missing Secret) fails here, untouched
            port.prepare(name, facts)
            self._facts[(migration.uid or migration.name, name)] = facts
            host_key = port.host_key_fingerprint(name) or record.host_key_fingerprint
            return Outcome(True, replace(record, host_key_fingerprint=host_key), _facts_summary(facts))
        if step == StepId.LOCK:
            self.cluster.acquire_lock(name, owner)
            return Outcome(True, record)
        if step == StepId.CORDON:
            was = self.cluster.cordon(name, owner)
            if record.was_unschedulable is not None:
                was = record.was_unschedulable  # the first answer is the truth; ours hides it on resume
            note = "already cordoned by someone else; it stays cordoned" if was else "cordoned"
            return Outcome(True, replace(record, was_unschedulable=was), note)
        if step == StepId.DRAIN:
            outcome = self._drain(migration, record)
            if not outcome.done:
                return outcome
            # what must run here again after the switch, recorded with the drain's Done (one write)
            daemonsets = self.cluster.daemonsets_on(name)
            return Outcome(True, replace(outcome.record, daemonsets=daemonsets), outcome.message)
        if step == StepId.ROLLBACK:
            return self._rollback(migration, port, record)
        facts = self._facts_of(migration, port, name)
        if step == StepId.BACKUP:
            return Outcome(True, replace(record, backup_dir=port.backup(name, facts)))
        if step == StepId.CONFIGURE:
            port.configure(name, facts)
            return Outcome(True, record)
        if step == StepId.IMAGES:
            counts = port.images(name, facts)
            self.observer.images_migrated(counts)
            return Outcome(True, replace(record, images=counts))
        if step == StepId.SWITCH:
            port.switch(name, facts)
            return Outcome(True, record)
        if step == StepId.VERIFY:
            port.verify(name, facts)
            elapsed = self._elapsed(record, step)
            wait = max(1.0, min(self.config.wait_slice, self.config.verify_timeout - elapsed))
            out_of_time = elapsed + wait >= self.config.verify_timeout
            if not self.cluster.wait_node(name, runtime="containerd", timeout=wait):
                if out_of_time:
                    raise StepFailed(
                        f"node {name} did not report Ready with a containerd:// runtime within "
                        f"{self.config.verify_timeout:.0f}s after the switch"
                    )
                return Outcome(False, record, "waiting for the kubelet to report Ready on containerd")
            # the DaemonSet pods on the node (CNI, proxy, log shippers...) must run again on containerd
            missing = self.cluster.wait_daemonset_pods(name, expected=record.daemonsets, timeout=wait)
            if not missing:
                return Outcome(True, record, "Ready on containerd, its DaemonSet pods Running and Ready")
            if out_of_time:
                raise StepFailed(
                    f"node {name}: DaemonSet pods not Running and Ready on containerd within "
                    f"{self.config.verify_timeout:.0f}s after the switch: {'; '.join(missing)}"
                )
            return Outcome(
                False, record, f"waiting for DaemonSet pods to be Running and Ready: {'; '.join(missing)}"
            )
        if step == StepId.FINISH:
            port.finish(name, facts)
            endpoint = spec.kubelet.runtime_endpoint if spec.kubelet.update_cri_socket_annotation else None
            self.cluster.mark_migrated(name, endpoint)
            self.cluster.uncordon(name, owner)
            self.cluster.release_lock(name, owner)
            return Outcome(True, record, "labelled, uncordoned (if shimshift cordoned it), lock released")
        raise AssertionError(f"no executor for step {step}")  # pragma: no cover

    def _drain(self, migration: NodeMigration, record: NodeRecord) -> Outcome:
        drain, name = migration.spec.drain, record.name
        elapsed = self._elapsed(record, StepId.DRAIN)
        previous = next((s.message for s in record.steps if s.id == StepId.DRAIN), "")
        escalate = False
        if elapsed >= drain.timeout:
            if drain.on_timeout != DrainTimeoutAction.DELETE_PODS:
                raise StepFailed(
                    f"drain of node {name} timed out after {drain.timeout:.0f}s (spec.drain.timeout): "
                    f"{previous or 'pods did not leave'}"
                )
            escalate = True
            self.cluster.event(
                migration,
                name,
                True,
                EventReason.DRAIN_ESCALATED,
                f"node {name}: drain timed out; deleting remaining pods bypassing PodDisruptionBudgets "
                "(spec.drain.onTimeout: DeletePods)",
            )
        wait = max(1.0, min(self.config.drain_pass_wait, drain.timeout - elapsed))
        began = self.monotonic()
        progress = self.cluster.drain_pass(name, drain, wait=wait, escalate=escalate)
        self.observer.drain_waited(self.monotonic() - began, bool(progress.blocked))
        if progress.refused:
            raise StepFailed(progress.describe())
        message = progress.describe()
        if progress.done:
            return Outcome(True, record, message)
        if progress.blocked and message != previous:
            self.cluster.event(migration, name, True, EventReason.EVICTION_BLOCKED, message)
        return Outcome(False, record, message)

    def _rollback(self, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
        name, owner = record.name, migration.name
        if needs_node_undo(record):
            facts = self._facts.get((migration.uid or migration.name, name))
            port.undo(name, facts)
            elapsed = self._elapsed(record, StepId.ROLLBACK)
            wait = max(1.0, min(self.config.wait_slice, self.config.rollback_wait - elapsed))
            if not self.cluster.wait_node(name, runtime="docker", timeout=wait):
                if elapsed + wait < self.config.rollback_wait:
                    return Outcome(False, record, "waiting for the kubelet to report Ready on Docker again")
                log.error(
                    "node %s: not Ready on Docker %.0fs after rollback; uncordoning anyway", name, elapsed
                )
        self.cluster.uncordon(name, owner)
        self.cluster.release_lock(name, owner)
        return Outcome(
            True, record, "node changes undone, uncordoned (if shimshift cordoned it), lock released"
        )


def started_at(record: NodeRecord, step: StepId) -> str:
    return next((s.started_at for s in record.steps if s.id == step), "")


def _facts_summary(facts: NodeFacts) -> str:
    return (
        f"docker {facts.docker_version or '?'}, containerd {facts.containerd_version or '?'}, "
        f"kubelet {facts.kubelet.version or '?'}, {len(facts.images)} image(s)"
    )
