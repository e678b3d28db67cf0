"""The engine: one level-triggered pass over a NodeMigration, driven by its status.

`Engine.reconcile` reads the object fresh, applies the fleet rules (`planning.rollout.decide`), and
advances every node in flight through its step machine (`planning.steps.next_step`), recording each
step before it runs (`Started`) and after (`Done`/`Failed`) in the node's own NodeMigrationNode
(`model.nodestate`); the NodeMigration's status holds the bounded rest (counts, nodes in flight).
Those records are the only memory, so a crash anywhere resumes at the recorded step; every step is
idempotent, so running an interrupted step again is safe. Node-side work goes through the `NodePort`
Protocol (SSH playbooks in production, a fake in tests), cluster-side work through `ClusterPort`
(`shimshift.kube.cluster.KubeCluster`). What each step does is `shimshift.stepexec.StepExecutor`'s;
this module decides which step runs and records it.

Must not: import kubernetes, paramiko or kopf; sleep (waits are bounded watches inside the ports);
hold a node in flight without a durable record (its NodeMigrationNode) saying so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from shimshift.model import keys
from shimshift.model.cordoned import with_cordon_times
from shimshift.model.errors import KubeError, ShimshiftError
from shimshift.model.facts import NodeFacts
from shimshift.model.gates import GateReading, GateState
from shimshift.model.keys import StepId
from shimshift.model.migration import MigrationRef, NodeMigration
from shimshift.model.spec import Mode, NotificationEvent
from shimshift.model.status import (
    Condition,
    ConditionReason,
    ConditionType,
    EventReason,
    LastError,
    MigrationStatus,
    NodePhase,
    NodeRecord,
    Phase,
    StepRecord,
    StepState,
)
from shimshift.model.timestamps import iso
from shimshift.planning.apiserver import ApiServers, sole_api_nodes
from shimshift.planning.build import build_plan
from shimshift.planning.healthgates import gate_conditions, gate_events
from shimshift.planning.notifications import (
    Notification,
    finished_event,
    render_notification,
    starts_rollout,
)
from shimshift.planning.operatorpod import stranded
from shimshift.planning.report_formats import report_files
from shimshift.planning.rollout import (
    IN_FLIGHT,
    Decision,
    condition_updates,
    decide,
    drain_blocked_condition,
    may_start,
    with_condition,
)
from shimshift.planning.undo import refused_condition, window_condition
from shimshift.ports import (
    ClusterPort,
    EngineConfig,
    GatePort,
    NodePort,
    Notifier,
    NullNotifier,
    NullObserver,
    Observer,
)
from shimshift.stepexec import StepExecutor, started_at
from shimshift.steps.facts.refuse import node_kind
from shimshift.steps.machine import MAX_ATTEMPTS, next_step

log = logging.getLogger(__name__)


class Busy(ShimshiftError):
    """Another pass over the same NodeMigration is still running in this process; try again shortly."""

    transient = True
    retry_after = 1.0


class InternalError(ShimshiftError):
    """A pass failed with an error no part of shimshift raises on purpose (a bug, or an input no check
    foresaw); recorded in the ReconcileError condition and a Warning Event, retried with backoff."""

    transient = True


#: The longest condition message the engine writes.
CONDITION_MESSAGE_MAX = 2000


def internal_error_message(error: BaseException) -> str:
    """One short line for status and Events: the error's type and the first line of its message, never
    a traceback, and nothing of a message that quotes key or certificate material."""
    text = str(error).strip()
    if "-----BEGIN" in text or "PRIVATE KEY" in text:
        text = "(message withheld: it quotes key or certificate material)"
    first = text.splitlines()[0][:200] if text else "(no message)"
    return (
        f"unexpected {type(error).__name__}: {first}; retried with backoff, the operator's log has the "
        "traceback (a shimshift bug: please report it)"
    )


def clear_reconcile_error(
    conditions: tuple[Condition, ...], now: dt.datetime, generation: int
) -> tuple[Condition, ...]:
    """`conditions` with a true ReconcileError turned false: this pass went through."""
    return tuple(
        Condition(
            ConditionType.RECONCILE_ERROR, "False", ConditionReason.RECONCILED, "", iso(now), generation
        )
        if c.type == ConditionType.RECONCILE_ERROR and c.status == "True"
        else c
        for c in conditions
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Result:
    phase: Phase
    in_flight: int
    delay: float  # when the next pass is useful


def is_transient(error: BaseException) -> bool:
    """Whether trying the same step again later can succeed: what the error's class (for an API answer,
    its status) declares. Anything else is not: an error no part of shimshift raises on purpose is a bug,
    which `Engine.reconcile` records (ReconcileError, an Event) and the handlers retry with backoff."""
    return isinstance(error, ShimshiftError) and error.transient is True


class _Tracker:
    """The status being built during one pass. Every node update is written through at once to the
    node's own record; the NodeMigration's bounded status when its stored form changes (compared
    with the status as read at the pass's start, so a status left stale by a crash is corrected).

    A node's record is written by the one thread that advances it, outside the tracker's lock, so the
    writes of a wave's nodes go to the API server side by side (under the lock they queued behind
    each other, one request in flight for the whole wave). The lock guards only the records in memory,
    kept by name so that reading or replacing one costs the same in a fleet of any size."""

    def __init__(
        self,
        migration: NodeMigration,
        status: MigrationStatus,
        cluster: ClusterPort,
        written: dict[str, Any] | None = None,
    ) -> None:
        self.migration = migration
        self.cluster = cluster
        self.lock = threading.Lock()
        self.written = written
        #: node -> the PodDisruptionBudgets its last drain pass of this pass waits on (DrainBlocked)
        self.drain_waits: dict[str, tuple[str, ...]] = {}
        self._base = status
        self._records = {r.name: r for r in status.nodes}
        self._current: MigrationStatus | None = status

    @property
    def status(self) -> MigrationStatus:
        """The status with every record put so far (built again only after a put)."""
        with self.lock:
            if self._current is None:
                nodes = tuple(self._records.get(n.name, n) for n in self._base.nodes)
                self._current = replace(self._base, nodes=nodes)
            return self._current

    @status.setter
    def status(self, status: MigrationStatus) -> None:
        with self.lock:
            self._base, self._current = status, status
            self._records = {r.name: r for r in status.nodes}

    def note_drain(self, name: str, budgets: tuple[str, ...]) -> None:
        with self.lock:
            self.drain_waits[name] = budgets

    def node(self, name: str) -> NodeRecord:
        with self.lock:
            record = self._records.get(name)
        assert record is not None
        return record

    def put(self, record: NodeRecord) -> None:
        """Write `record` to its node's own object, then keep it as this pass's record of that node;
        a failed write leaves the record in memory as stored (the pass fails, the next one re-reads)."""
        self.cluster.write_node_record(self.migration, record)
        with self.lock:
            if record.name in self._records:  # a record of a node not in this status is written only
                self._records[record.name] = record
                self._current = None

    def settle(self, status: MigrationStatus) -> None:
        self.status = status
        stored = status.for_storage()
        if stored != self.written:
            self.cluster.write_status(self.migration.name, stored)
            self.written = stored


def _as_read(status: MigrationStatus) -> dict[str, Any] | None:
    return None if status.stored is None else dict(status.stored)


def adopt_records(cluster: ClusterPort, migration: NodeMigration) -> tuple[NodeRecord, ...]:
    """The records of `migration`'s started nodes: its NodeMigrationNode objects, after moving into
    them any record a previous version of shimshift kept in `status.nodes[]` (an upgrade mid-rollout).
    A child that exists wins over the old list; the list is removed from status only once every
    record it held is in a child, so a crash here loses nothing and the next pass finishes the move."""
    records = {r.name: r for r in cluster.read_node_records(migration)}
    legacy = migration.status.nodes
    if not legacy:
        return tuple(records[n] for n in sorted(records))
    moved = 0
    for record in legacy:
        if record.phase in (NodePhase.PENDING, NodePhase.SKIPPED) or record.name in records:
            continue  # a Pending or Skipped node is derived again from the selection every pass
        cluster.write_node_record(migration, record)
        records[record.name] = record
        moved += 1
    cluster.write_status(migration.name, {"nodes": None})
    log.info(
        "NodeMigration %s: moved %d node record(s) from status.nodes[] into NodeMigrationNode objects",
        migration.name,
        moved,
    )
    return tuple(records[n] for n in sorted(records))


class Engine:
    """Drives NodeMigrations; one pass at a time per object (a pass may overlap kopf's delete handler)."""

    def __init__(
        self,
        cluster: ClusterPort,
        node_ports: Callable[[NodeMigration], NodePort],
        *,
        config: EngineConfig | None = None,
        observer: Observer | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        identity: str | None = None,
        notifier: Notifier | None = None,
        gates: GatePort | None = None,
        own_node: str = "",
    ) -> None:
        self.cluster = cluster
        self.notifier: Notifier = notifier or NullNotifier()
        self.gates = gates  # None: spec.rollout.gates cannot be read (a NodeMigration with gates waits)
        self.identity = identity  # None: a single replica that needs no lease (tests, standalone)
        #: the node this operator runs on ("": unknown); a pass acts only while this replica holds the
        #: lease, so it is the acting replica's node, planned and migrated last
        self.own_node = own_node
        self.node_ports = node_ports
        self.config = config or EngineConfig()
        self.observer: Observer = observer or NullObserver()
        self.clock = clock
        self.monotonic = monotonic
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._preempt: dict[str, threading.Event] = {}
        self._facts: dict[tuple[str, str], NodeFacts] = {}
        self._steps = StepExecutor(
            cluster, self.observer, self.config, self._facts, clock=clock, monotonic=monotonic
        )
        #: the nodes that run the cluster's only API server, as last read (`planning.apiserver`)
        self._api_nodes: frozenset[str] = frozenset()
        #: node -> seconds this process has waited for the API on its behalf (bounded per node)
        self._api_waited: dict[str, float] = {}

    def _object_lock(self, name: str) -> tuple[threading.Lock, threading.Event]:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock()), self._preempt.setdefault(
                name, threading.Event()
            )

    def reconcile(self, migration: NodeMigration, *, stopping: bool = False) -> Result:
        """One pass: decide, start what may start, advance nodes in flight, record everything.

        A stopping pass (deletion) preempts a running pass at its next step boundary or drain wait.
        """
        lock, preempt = self._object_lock(migration.name)
        if stopping:
            preempt.set()
        if not lock.acquire(timeout=1.0):
            raise Busy(f"NodeMigration {migration.name}: a previous pass is still running; retrying")
        try:
            if stopping:
                preempt.clear()
            if self.identity is not None and not self.cluster.claim(
                migration.name, self.identity, self.config.lease_ttl
            ):
                log.info("NodeMigration %s: another replica is acting on it; waiting", migration.name)
                records = (*self.cluster.read_node_records(migration), *migration.status.nodes)
                flying = sum(1 for r in records if r.phase in IN_FLIGHT)  # deletion waits for them
                return Result(migration.status.phase or Phase.PENDING, flying, self.config.retry_delay)
            with self._heartbeat(migration.name, preempt):
                try:
                    return self._reconcile(migration, stopping, preempt)
                except ShimshiftError:
                    raise
                except Exception as e:  # a bug: say so where users look, not only in the log
                    raise self._record_internal_error(migration, e) from e
        finally:
            lock.release()

    def _record_internal_error(self, migration: NodeMigration, error: Exception) -> InternalError:
        """Put an unexpected error in the ReconcileError condition and a Warning Event (once per message)."""
        name = migration.name
        log.error("NodeMigration %s: unexpected error in a pass", name, exc_info=error)
        message = internal_error_message(error)
        try:
            current = self.cluster.read_migration(name)
        except Exception as e:  # the record is best effort; the retry comes anyway
            log.warning("NodeMigration %s: could not re-read it to record the error: %s", name, e)
            current = None
        if current is None:  # never write a status older than the one this pass may have written
            return InternalError(f"NodeMigration {name}: {message}")
        previous = current.status.conditions
        old = next((c for c in previous if c.type == ConditionType.RECONCILE_ERROR), None)
        if old is None or old.status != "True" or old.message != message:
            now = iso(self.clock())
            since = old.last_transition_time if old is not None and old.status == "True" else now
            condition = Condition(
                ConditionType.RECONCILE_ERROR,
                "True",
                ConditionReason.INTERNAL_ERROR,
                message,
                since,
                migration.generation,
            )
            conditions = (*(c for c in previous if c.type != ConditionType.RECONCILE_ERROR), condition)
            try:  # only the conditions: the rest of the stored status stays as the last pass left it
                self.cluster.write_status(name, {"conditions": [c.for_storage() for c in conditions]})
                self.cluster.event(migration, None, True, EventReason.INTERNAL_ERROR, message)
            except Exception as e:  # as above
                log.warning("NodeMigration %s: could not record the error in status: %s", name, e)
        return InternalError(f"NodeMigration {name}: {message}")

    @contextlib.contextmanager
    def _heartbeat(self, name: str, preempt: threading.Event) -> Iterator[None]:
        """Renew this replica's claim while a pass runs; a lost claim preempts the pass."""
        if self.identity is None:
            yield
            return
        identity = self.identity
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.config.lease_ttl / 3):
                try:
                    held = self.cluster.claim(name, identity, self.config.lease_ttl)
                except ShimshiftError as e:
                    log.warning("NodeMigration %s: renewing the claim failed: %s", name, e)
                    continue
                if not held:
                    log.error("NodeMigration %s: another replica took over; stopping this pass", name)
                    preempt.set()
                    return

        thread = threading.Thread(target=renew, name=f"shimshift-lease-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _settled(
        self,
        migration: NodeMigration,
        status: MigrationStatus,
        stopping: bool,
        *,
        passed: bool = False,
        drain_waits: dict[str, tuple[str, ...]] | None = None,
        gates_read: dict[str, tuple[GateReading, ...]] | None = None,
    ) -> tuple[MigrationStatus, Decision]:
        """The status after the fleet rules; `passed` (the end of a pass that went through) also turns
        a true ReconcileError condition false; `drain_waits`, what the pass's drains waited on, sets
        DrainBlocked; `gates_read` keeps this pass's reading of the gates until a wave starts (each
        wave is gated once, and a pass that waits reads them once)."""
        now = self.clock()
        spec = migration.spec
        nodes = self.cluster.read_nodes()
        api = self._read_api_servers()
        blocked = None
        readings: tuple[GateReading, ...] | None = None
        if may_start(spec, status, nodes, now, stopping=stopping, generation=migration.generation, api=api):
            if spec.rollout.blocking_pod_selector:
                blocked = self.cluster.read_blocking_pods(spec.rollout.blocking_pod_selector)
            if spec.rollout.gates.configured:
                memo = gates_read if gates_read is not None else {}
                if "gates" not in memo:
                    memo["gates"] = self._read_gates(migration)
                readings = memo["gates"]
        decided = functools.partial(
            decide,
            spec,
            status,
            nodes,
            now,
            stopping=stopping,
            blocked=blocked,
            gates=readings,
            generation=migration.generation,
            name=migration.name,
            operator_node=self.own_node,
            api=api,
        )
        decision = decided()
        if self.own_node in decision.start:  # only then: would its drain strand the operator?
            found = stranded(self.cluster.read_operator_pods(), nodes, self.own_node)
            if found is not None:
                decision = decided(operator_stranded=found)
        settled = replace(
            status,
            phase=decision.phase,
            observed_generation=migration.generation,
            nodes=decision.nodes,
            message=decision.message[:CONDITION_MESSAGE_MAX],
            conditions=condition_updates(
                status.conditions,
                decision.phase,
                decision.reason,
                decision.message,
                now,
                migration.generation,
            ),
        )
        drain_blocked = drain_blocked_condition(
            status.conditions, decision.nodes, drain_waits, now, migration.generation
        )
        settled = replace(settled, conditions=with_condition(settled.conditions, drain_blocked))
        if readings is not None:
            updated = gate_conditions(status.conditions, readings, now, migration.generation)
            for condition in updated:
                settled = replace(settled, conditions=with_condition(settled.conditions, condition))
            for warning, reason, message in gate_events(status.conditions, updated):
                self.cluster.event(migration, None, warning, reason, message[:1000])
        if spec.mode == Mode.MIGRATE:
            settled = self._window(migration, status, settled, decision, now)
        if passed:
            settled = replace(
                settled, conditions=clear_reconcile_error(settled.conditions, now, migration.generation)
            )
        return settled, decision

    def _window(
        self,
        migration: NodeMigration,
        before: MigrationStatus,
        settled: MigrationStatus,
        decision: Decision,
        now: dt.datetime,
    ) -> MigrationStatus:
        """`settled` with the RollbackWindow and UndoRefused conditions; a Warning Event each time the
        refusals change (not every pass)."""
        generation = migration.generation
        window = window_condition(
            migration.spec, migration.name, decision.nodes, before.conditions, now, generation
        )
        refused = refused_condition(decision.refused, before.conditions, now, generation)
        old = next((c for c in before.conditions if c.type == ConditionType.UNDO_REFUSED), None)
        if refused.status == "True" and (old is None or old.message != refused.message):
            self.cluster.event(migration, None, True, EventReason.UNDO_REFUSED, refused.message[:1000])
        conditions = with_condition(with_condition(settled.conditions, window), refused)
        return replace(settled, conditions=conditions)

    def _reconcile(self, migration: NodeMigration, stopping: bool, preempt: threading.Event) -> Result:
        fresh = self.cluster.read_migration(migration.name)
        if fresh is not None:
            migration = fresh
        if migration.spec.mode == Mode.PLAN and not stopping:
            return self._plan(migration)
        before = replace(migration.status, nodes=adopt_records(self.cluster, migration))
        tracker = _Tracker(migration, before, self.cluster, written=_as_read(migration.status))
        gates_read: dict[str, tuple[GateReading, ...]] = {}
        status, decision = self._settled(migration, before, stopping, gates_read=gates_read)
        self._start(tracker, status, decision)
        if decision.start:
            gates_read.clear()  # the next wave is gated again
        if before.phase != status.phase:
            self.cluster.event(
                migration,
                None,
                status.phase == Phase.PAUSED,
                EventReason.for_phase(decision.phase),  # the phase `status` was settled to
                decision.message,
            )
            self._phase_notified(migration, before.phase, status, decision)
        port: NodePort | None = None
        deadline = self.monotonic() + self.config.budget
        while True:
            flying = [r.name for r in tracker.status.nodes if r.phase in IN_FLIGHT]
            if flying:
                port = port or self.node_ports(migration)
                with ThreadPoolExecutor(max_workers=len(flying), thread_name_prefix="shimshift-node") as pool:
                    futures = [
                        pool.submit(self._advance, tracker, port, n, deadline, stopping, preempt)
                        for n in flying
                    ]
                    for future in futures:
                        future.result()
            with tracker.lock:
                waits = dict(tracker.drain_waits)
            prior = tracker.status.phase
            status, decision = self._settled(
                migration, tracker.status, stopping, passed=True, drain_waits=waits, gates_read=gates_read
            )
            self._start(tracker, status, decision)
            self._phase_notified(migration, prior, status, decision)
            if decision.start:
                gates_read.clear()
            # a wave that ended inside the budget starts the next one in the same pass (no tick lost)
            if not decision.start or self.monotonic() >= deadline or preempt.is_set():
                break
        self.observer.nodes_by_phase(migration.name, status)
        still = {r.name for r in status.nodes if r.phase in IN_FLIGHT}
        self._steps.keep_facts(migration, still)
        if port is not None and not still:
            port.close()  # nothing in flight: no SSH connection (and its keep-alives) stays open
        in_flight = len(still)
        if in_flight or decision.start:
            delay = 0.0
        elif decision.wait_seconds is not None:
            delay = decision.wait_seconds
        elif status.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.PAUSED):
            delay = self.config.idle_delay
        else:
            delay = self.config.retry_delay
        return Result(status.phase or Phase.PROGRESSING, in_flight, delay)

    def _read_api_servers(self) -> ApiServers:
        """Where the API servers run (the cluster port keeps its last reading when a read fails), and
        the nodes running the only one remembered for `_advance`."""
        api = self.cluster.read_api_servers()
        self._api_nodes = sole_api_nodes(api)
        return api

    def _wait_out_api(self, migration: NodeMigration, node: str, error: KubeError) -> bool:
        """The API is down while `node`, which runs the cluster's only API server, switches: wait for
        its /readyz, at most spec.verify.timeout in all for this node. True once it answers ok."""
        bound = migration.spec.verify.timeout
        left = bound - self._api_waited.get(node, 0.0)
        if left <= 0:
            return False
        log.warning(
            "node %s runs the only API server and the API is down (%s); waiting up to %.0fs for /readyz",
            node,
            error,
            left,
        )
        began = self.monotonic()
        ready, said = self.cluster.wait_api_ready(left)
        waited = self.monotonic() - began
        self._api_waited[node] = self._api_waited.get(node, 0.0) + waited
        if ready:
            log.info("node %s: the API is ready again after %.1fs; going on", node, waited)
        else:
            log.error(
                "node %s: the API was not ready within %.0fs in all (spec.verify.timeout): %s",
                node,
                bound,
                said,
            )
        return ready

    def _put(self, tracker: _Tracker, record: NodeRecord) -> None:
        """`tracker.put(record)`; for a node running the only API server, an API that is down is waited
        out (`_wait_out_api`) and the record written again once /readyz answers ok."""
        try:
            tracker.put(record)
        except KubeError as e:
            if not e.api_down or record.name not in self._api_nodes:
                raise
            if not self._wait_out_api(tracker.migration, record.name, e):
                raise
            tracker.put(record)

    def _read_gates(self, migration: NodeMigration) -> tuple[GateReading, ...]:
        """This instant's reading of the gates, each counted in the metric; without a gate port every
        gate is an error (it cannot be read), never open."""
        gates = migration.spec.rollout.gates
        if self.gates is None:
            names = [
                *([gates.prometheus.name] if gates.prometheus else []),
                *(c.gate_name for c in gates.conditions),
            ]
            readings = tuple(
                GateReading(n, GateState.ERROR, "this operator was started without a gate reader")
                for n in names
            )
        else:
            readings = self.gates.read_gates(gates)
        for reading in readings:
            self.observer.gate_evaluated(reading.gate, str(reading.state).lower())
            log.info("NodeMigration %s: gate %s", migration.name, reading)
        return readings

    def _start(self, tracker: _Tracker, status: MigrationStatus, decision: Decision) -> None:
        """Record the nodes `decision` starts, each in its own record before the status says so, then
        the status; an Event for each (and the Started notification when these are the first)."""
        first = starts_rollout(tracker.status.nodes, decision.start)
        tracker.status = status
        for name in (*decision.start, *decision.undo, *decision.commit):
            started = status.node(name)
            assert started is not None
            tracker.put(started)
        tracker.settle(status)
        for name in decision.start:
            self.cluster.event(
                tracker.migration,
                name,
                False,
                EventReason.NODE_STARTED,
                f"migration of node {name} to containerd started",
            )
        if first:
            self._notify(
                tracker.migration,
                render_notification(
                    tracker.migration.spec.notifications,
                    NotificationEvent.STARTED,
                    tracker.migration.name,
                    phase=status.phase,
                    nodes=status.nodes,
                ),
            )

        for name in decision.undo:
            record = status.node(name)
            how = record.undo_request if record is not None else ""
            self.cluster.event(
                tracker.migration,
                name,
                False,
                EventReason.NODE_UNDO_STARTED,
                f"rollback of node {name} to Docker on request ({how}) started: cordon, drain, undo",
            )

    def _phase_notified(
        self, migration: NodeMigration, before: Phase | None, status: MigrationStatus, decision: Decision
    ) -> None:
        """Hand over the notification the phase change `before` -> `status.phase` is due, if any; called
        once the status saying so is written, so a restart never finds the change again."""
        event = finished_event(before, status.phase)
        if event is not None:
            self._notify(
                migration,
                render_notification(
                    migration.spec.notifications,
                    event,
                    migration.name,
                    reason=decision.message,
                    phase=status.phase,
                    nodes=status.nodes,
                ),
            )

    def _notify(self, migration: NodeMigration, notification: Notification | None) -> None:
        if notification is None:
            return

        def failed(message: str) -> None:
            self.cluster.event(migration, None, True, EventReason.NOTIFICATION_FAILED, message[:1000])

        try:
            self.notifier.send(notification, failed)
        except Exception:  # a notification never fails the rollout, whatever the notifier does
            log.exception("NodeMigration %s: queueing notification %s", migration.name, notification.event)

    def forget(self, migration: NodeMigration) -> None:
        """`migration` is gone (its finalizer is about to be removed): drop what was kept for it, and
        the node ports' too when the factory can (`shimshift.entry.nodeport.SshNodePortPool.forget`)."""
        self._steps.keep_facts(migration, ())
        forget = getattr(self.node_ports, "forget", None)
        if callable(forget):
            forget(migration.uid or migration.name)

    def report_invalid(
        self,
        name: str,
        generation: int,
        message: str,
        *,
        reason: ConditionReason = ConditionReason.INVALID_SPEC,
        uid: str = "",
    ) -> None:
        """A NodeMigration the CRD schema accepted but the operator's checks refuse (or cannot read):
        say why in its status and in a Warning Event (the caller does this once per generation), act
        never."""
        now = iso(self.clock())
        condition = Condition(
            ConditionType.VALID, "False", reason, message[:CONDITION_MESSAGE_MAX], now, generation
        )
        self.cluster.write_status(
            name,
            {
                "phase": str(Phase.FAILED),
                "observedGeneration": generation,
                "conditions": [condition.for_storage()],
                "message": message[:CONDITION_MESSAGE_MAX],
            },
        )
        # the Event names the condition's reason (InvalidSpec, InternalError): both are EventReason members
        self.cluster.event(MigrationRef(name, uid), None, True, EventReason(reason.value), message[:1000])

    # --- Plan mode ---------------------------------------------------------------------------------

    def _plan(self, migration: NodeMigration) -> Result:
        """Plan mode: read-only facts of the selected nodes, the plan report in a ConfigMap, phase Planned.

        Done once per generation: editing the spec plans again; nothing on a node or the cluster changes
        (the node port's facts probe is read-only; the only writes are the report and the status).
        """
        status = migration.status
        if (
            status.phase == Phase.PLANNED
            and status.observed_generation == migration.generation
            and status.report_config_map
        ):
            cleared = clear_reconcile_error(status.conditions, self.clock(), migration.generation)
            if cleared != status.conditions:
                self.cluster.write_status(migration.name, {"conditions": [c.for_storage() for c in cleared]})
            return Result(Phase.PLANNED, 0, self.config.idle_delay)
        now = self.clock()
        cluster = self.cluster.read_cluster()
        settled, _ = self._settled(migration, status, False)
        port = self.node_ports(migration)
        # Windows and OpenShift nodes are refused from their Node object: never probed over SSH
        refused = {n.name for n in cluster.nodes if node_kind(n.labels, n.annotations, n.operating_system)}
        selected = [r.name for r in settled.nodes if r.phase == NodePhase.PENDING and r.name not in refused]
        facts: dict[str, NodeFacts] = {}

        def probe(node: str) -> None:
            try:
                facts[node] = port.facts(node)
            except ShimshiftError as e:  # the report says what is unknown; one node never stops a plan
                log.warning("plan %s: facts of node %s: %s", migration.name, node, e)

        if selected:
            try:
                with ThreadPoolExecutor(
                    max_workers=min(8, len(selected)), thread_name_prefix="shimshift-facts"
                ) as pool:
                    list(pool.map(probe, selected))
            finally:
                port.close()  # a plan is done with its nodes: no connection stays open after it
        report = build_plan(
            migration.spec,
            cluster,
            facts,
            now,
            name=migration.name,
            facts_taken_at=iso(now),
            material=port.registry_material(),
            # read only: Prometheus queries and GETs of the named objects
            gate_readings=self._read_gates(migration) if migration.spec.rollout.gates.configured else None,
            operator_node=self.own_node,
            api_servers=self._read_api_servers(),
        )
        # every format, as `shimshift plan` renders it; the cluster port stores them at any size
        where = self.cluster.write_report(migration, report_files(report))
        message = f"plan report in ConfigMap {where}: {len(selected)} node(s) selected, {len(facts)} probed"
        planned = replace(
            settled,
            report_config_map=where,
            message=message,
            conditions=clear_reconcile_error(
                condition_updates(
                    settled.conditions,
                    Phase.PLANNED,
                    ConditionReason.PLANNED,
                    message,
                    now,
                    migration.generation,
                ),
                now,
                migration.generation,
            ),
        )
        _Tracker(migration, status, self.cluster, written=_as_read(status)).settle(planned)
        if status.phase != Phase.PLANNED:
            self.cluster.event(migration, None, False, EventReason.PLANNED, message)
        return Result(Phase.PLANNED, 0, self.config.idle_delay)

    # --- one node ----------------------------------------------------------------------------------

    def _advance(
        self,
        tracker: _Tracker,
        port: NodePort,
        name: str,
        deadline: float,
        stopping: bool,
        preempt: threading.Event,
    ) -> None:
        migration = tracker.migration
        while self.monotonic() < deadline and not preempt.is_set():
            record = tracker.node(name)
            nxt = next_step(
                record,
                migration.spec.rollback,
                stopping=stopping,
                staging=migration.spec.staging,
                hooks=migration.spec.rollout.hooks.steps,
            )
            now = iso(self.clock())
            if nxt.step is None:
                self._api_waited.pop(name, None)
                if record.phase != nxt.phase:
                    self._put(tracker, replace(record, phase=nxt.phase, finished_at=now))
                    self._announce(migration, record, nxt.phase)
                return
            if record.step != nxt.step or record.step_state != StepState.STARTED:
                record = replace(record, phase=nxt.phase, attempts=0).with_step(
                    StepRecord(nxt.step, StepState.STARTED, started_at=now)
                )
                self._put(tracker, record)
            step = nxt.step
            began = self.monotonic()
            try:
                outcome = self._steps.run(migration, port, record, step, stopping)
                if outcome.waits_on_budgets is not None:
                    tracker.note_drain(name, outcome.waits_on_budgets)
            except ShimshiftError as e:
                self.observer.step_finished(step, self.monotonic() - began, False)
                if (
                    isinstance(e, KubeError)
                    and e.api_down
                    and name in self._api_nodes
                    and self._wait_out_api(migration, name, e)
                ):
                    continue  # the API is back: the same step again, no attempt counted
                attempts = record.attempts + 1
                error = LastError(step=str(step), message=str(e))
                if is_transient(e) and attempts < MAX_ATTEMPTS:
                    log.warning("node %s: step %s: %s (attempt %d, will retry)", name, step, e, attempts)
                    self._put(tracker, replace(record, attempts=attempts, last_error=error))
                    return
                log.error("node %s: step %s failed: %s", name, step, e)
                started = started_at(record, step)
                failed = replace(record, attempts=attempts, last_error=error).with_step(
                    StepRecord(step, StepState.FAILED, started, iso(self.clock()), str(e)[:1000])
                )
                self._put(tracker, failed)
                # an error may name its own reason (HostKeyMismatch), so an admin can alert on it
                named = getattr(e, "event_reason", None)
                reason = named if isinstance(named, EventReason) else EventReason.STEP_FAILED
                self.cluster.event(migration, name, True, reason, f"node {name}: step {step} failed: {e}")
                continue
            if outcome.done:
                self.observer.step_finished(step, self.monotonic() - began, True)
                done = with_cordon_times(
                    replace(outcome.record, attempts=0).with_step(
                        StepRecord(
                            step, StepState.DONE, started_at(record, step), iso(self.clock()), outcome.message
                        )
                    )
                )
                after = next_step(
                    done,
                    migration.spec.rollback,
                    stopping=stopping,
                    staging=migration.spec.staging,
                    hooks=migration.spec.rollout.hooks.steps,
                )
                if after.step is None and after.phase != done.phase:  # the last step: the end, one write
                    done = replace(done, phase=after.phase, finished_at=iso(self.clock()))
                    self._put(tracker, done)
                    self._uncordoned(migration, record, done)
                    self._announce(migration, done, after.phase)
                    return
                if after.step is not None and self.monotonic() < deadline and not preempt.is_set():
                    # the next step runs right away: its Started goes in the same write as this Done
                    # (one request per step, not two; a crash after it resumes at the next step, as
                    # after a Started record of its own)
                    done = replace(done, phase=after.phase).with_step(
                        StepRecord(after.step, StepState.STARTED, started_at=iso(self.clock()))
                    )
                self._put(tracker, done)
                self._uncordoned(migration, record, done)
                continue
            # Progress resets the count of transient failures: only failures in a row fail a step.
            waiting = replace(outcome.record, attempts=0).with_step(
                StepRecord(step, StepState.STARTED, started_at(record, step), "", outcome.message)
            )
            if waiting != record:
                self._put(tracker, waiting)

    def _uncordoned(self, migration: NodeMigration, before: NodeRecord, after: NodeRecord) -> None:
        """Observe the node's time cordoned when its record first holds it, after that record is
        written: a crash before the write leaves it to the re-run, which observes it; a crash right
        after it loses the sample, never the record."""
        if before.cordoned_seconds is None and after.cordoned_seconds is not None:
            self.observer.node_uncordoned(migration.name, after.cordoned_seconds)

    def _announce(self, migration: NodeMigration, record: NodeRecord, phase: NodePhase) -> None:
        name = record.name
        if phase == NodePhase.SUCCEEDED and record.step == StepId.COMMIT:
            if record.step_state == StepState.DONE:
                self.observer.committed()
                self.cluster.event(
                    migration,
                    name,
                    False,
                    EventReason.NODE_COMMITTED,
                    f"node {name} committed: Docker per spec.docker ({migration.spec.docker}), backups "
                    "removed; it can no longer be rolled back",
                )
            return  # a failed commit: its StepFailed Event says why
        if phase == NodePhase.SUCCEEDED and record.undo_failed:
            why = record.last_error.message if record.last_error else "its undo step failed"
            self.cluster.event(
                migration,
                name,
                True,
                EventReason.NODE_UNDO_FAILED,
                f"node {name} was not rolled back (it still runs containerd, uncordoned): {why}; "
                f"set the {keys.UNDO_ANNOTATION} annotation again to retry",
            )
            return
        if phase == NodePhase.ROLLED_BACK and record.undone_on_request:
            self.observer.undone()
            self.cluster.event(
                migration,
                name,
                False,
                EventReason.NODE_UNDONE,
                f"node {name} rolled back to Docker on request ({record.undo_request})",
            )
            return
        if phase == NodePhase.SUCCEEDED:
            self.cluster.event(
                migration, name, False, EventReason.NODE_MIGRATED, f"node {name} runs containerd"
            )
        elif phase == NodePhase.ROLLED_BACK:
            self.observer.rolled_back()
            why = record.last_error.message if record.last_error else "a step failed"
            self._node_failed(migration, name, "was rolled back to Docker", why)
            self.cluster.event(
                migration,
                name,
                True,
                EventReason.NODE_ROLLED_BACK,
                f"node {name} rolled back to Docker: {why}",
            )
        elif phase == NodePhase.FAILED:
            why = record.last_error.message if record.last_error else "a step failed"
            self.cluster.event(migration, name, True, EventReason.NODE_FAILED, f"node {name} failed: {why}")
            self._node_failed(migration, name, "failed", why)

    def _node_failed(self, migration: NodeMigration, node: str, outcome: str, why: str) -> None:
        """The NodeFailed notification; called once the node's record holds its final phase."""
        self._notify(
            migration,
            render_notification(
                migration.spec.notifications,
                NotificationEvent.NODE_FAILED,
                migration.name,
                node=node,
                reason=why,
                outcome=outcome,
            ),
        )
