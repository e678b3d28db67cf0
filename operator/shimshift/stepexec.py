"""Executing one step of one node: the step table's entry for each `StepId`, and nothing about status.

`StepExecutor.run` runs one step (facts, lock, cordon, drain, backup, configure, images, switch, verify,
finish, rollback) from `shimshift.steps.table.STEPS`, each step's home module holding what it does through the
ports, and says how it went as an `Outcome`: done, or still waiting (a drain pass that left pods behind, a
node not yet Ready), with the node record to keep and a message for its step. The executor is the steps'
`StepContext`: the ports, the settings, the clock, the facts cache. Recording steps in status, retries,
rollout order and leases are the engine's (`shimshift.engine`), which owns the ports, the config and the facts
cache this is given.

Must not: import kubernetes, paramiko or kopf; sleep (waits are bounded watches inside the ports); write
status (the engine records what a step did; a running step's progress, `progress`, goes to the node's
own record only).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection

from shimshift.model.canary import CanaryImage
from shimshift.model.errors import ShimshiftError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.ports import ClusterPort, EngineConfig, NodePort, Observer
from shimshift.steps.base import Outcome, StepFailed, elapsed_since_start, started_at
from shimshift.steps.images.canary import canary_image
from shimshift.steps.table import STEPS

__all__ = ["MAX_CACHED_FACTS", "Outcome", "StepExecutor", "StepFailed", "started_at"]

log = logging.getLogger(__name__)

#: Facts of nodes in flight across every NodeMigration; far above any rollout's maxUnavailable.
MAX_CACHED_FACTS = 1024


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
        self._said: set[tuple[str, str]] = set()
        self._said_lock = threading.Lock()
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

    # ---- what a step's engine half is given (shimshift.steps.base.StepContext) --------------------
    def elapsed(self, record: NodeRecord, step: StepId) -> float:
        return elapsed_since_start(record, step, self.clock())

    def facts_of(self, migration: NodeMigration, port: NodePort, node: str) -> NodeFacts:
        key = (migration.uid or migration.name, node)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = port.facts(node)
        return facts

    def cached_facts(self, migration: NodeMigration, node: str) -> NodeFacts | None:
        return self._facts.get((migration.uid or migration.name, node))

    def remember_facts(self, migration: NodeMigration, node: str, facts: NodeFacts) -> None:
        self._facts[(migration.uid or migration.name, node)] = facts

    def canary_image(self, migration: NodeMigration, facts: NodeFacts | None) -> CanaryImage | None:
        return canary_image(migration.spec, facts)

    def first_time(self, migration: NodeMigration, what: str) -> bool:
        key = (migration.uid or migration.name, what)
        with self._said_lock:
            if key in self._said:
                return False
            if len(self._said) >= MAX_CACHED_FACTS:
                self._said.clear()  # bounded: at worst something is said once more
            self._said.add(key)
            return True

    def progress(self, migration: NodeMigration, record: NodeRecord) -> None:
        try:
            self.cluster.write_node_record(migration, record)
        except ShimshiftError as e:
            log.warning("node %s: could not record the progress of step %s: %s", record.name, record.step, e)

    def run(
        self, migration: NodeMigration, port: NodePort, record: NodeRecord, step: StepId, stopping: bool
    ) -> Outcome:
        """Run `step` of `record`'s node: the step table's entry for it (`shimshift.steps.table`)."""
        return STEPS[step].run(self, migration, port, record)
