"""kopf handlers: the only place kopf is imported; each one hands a NodeMigration to the engine.

- a timer (every `TICK` s, one at a time per object) runs one engine pass: level-triggered, so a missed
  event, a restart or a lost leader costs at most one tick;
- the delete handler keeps shimshift's finalizer until no node is in flight (finished or rolled back);
- ShimshiftError is mapped here and only here: transient → kopf.TemporaryError(delay), else
  kopf.PermanentError. Handlers are sync, so kopf runs them in its thread pool and the blocking
  Kubernetes and SSH calls never block the event loop; nothing in here sleeps.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from shimshift.engine import (
    CONDITION_MESSAGE_MAX,
    Engine,
    InternalError,
    internal_error_message,
    is_transient,
    utcnow,
)
from shimshift.model import keys
from shimshift.model.errors import Problem as ValidationProblem
from shimshift.model.errors import ShimshiftError, ValidationError
from shimshift.model.migration import NodeMigration, parse_nodemigration
from shimshift.model.status import ConditionReason
from shimshift.ports import EngineConfig
from shimshift.resources import load_crd

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

    from shimshift.kube.api import Kube
    from shimshift.ports import NodePort

    #: Builds the engine's node-port factory from the operator's Kube (see `run_operator`).
    NodePortsFactory = Callable[[Kube], Callable[[NodeMigration], NodePort]]

#: Seconds between engine passes over one NodeMigration (each pass does at most `budget` s of work).
#: A pass that ends at its budget with nodes in flight goes on after one tick, mid-wave: the tick is
#: time every node of that wave waits. An object that is not due costs no API call on a tick (`due`).
TICK = 0.5
RETRY_DELAY = 2.0
MAX_IDLE = 30.0
#: Upper bound of the doubling delay after passes that failed unexpectedly (InternalError).
MAX_BACKOFF = 60.0

log = logging.getLogger(__name__)
_CRD = load_crd()


@dataclass(frozen=True)
class Runtime:
    """What the handlers need, put into kopf's memo by `shimshift run`."""

    engine: Engine
    peering_lifetime: int = 60
    #: NodeMigration uid -> (generation, monotonic time of its next useful pass: the engine's
    #: Result.delay), so a settled or soaking object costs no API calls on every tick. One entry per
    #: object (a new generation replaces it, a deletion removes it).
    due: dict[str, tuple[int, float]] = field(default_factory=dict)


def _runtime(memo: Any) -> Runtime:
    runtime = memo.get("runtime") if isinstance(memo, Mapping) else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError(
            "shimshift handlers need a Runtime in kopf's memo (start with `shimshift run`)"
        )
    return runtime


def _migration(body: Mapping[str, Any]) -> NodeMigration:
    return parse_nodemigration(dict(body), _CRD, source=f"NodeMigration {body['metadata']['name']}")


def to_kopf_error(error: ShimshiftError, retry: int = 0) -> Exception:
    """The kopf error that makes kopf retry (or not) as the shimshift error says.

    An InternalError (a bug) is retried after a delay doubling with kopf's retry count, up to
    MAX_BACKOFF: a pass that fails the same way every time costs little, one that hit a passing
    condition goes on soon.
    """
    if isinstance(error, InternalError):
        return kopf.TemporaryError(str(error), delay=min(RETRY_DELAY * 2 ** min(retry, 16), MAX_BACKOFF))
    if isinstance(error, ValidationError) or not is_transient(error):
        return kopf.PermanentError(str(error))
    return kopf.TemporaryError(str(error), delay=float(getattr(error, "retry_after", RETRY_DELAY)))


#: kopf's pauses between retries of a failed request of its own (`configure`).
KOPF_ERROR_BACKOFFS = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, *(30.0,) * 19)


class _QuietTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timer 'reconcile' succeeded" not in record.getMessage()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = keys.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=keys.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=keys.GROUP, key="last-handled-configuration"
    )
    # shimshift posts its own Events; kopf's per-handler "succeeded" Events every tick would bury them.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    # The timer succeeds every tick; that line would be most of the log. Failures are still logged.
    logging.getLogger("kopf.objects").addFilter(_QuietTicks())
    # A dead peer stops blocking the others after this long; the NodeMigration lease has the same bound.
    settings.peering.lifetime = _runtime(memo).peering_lifetime
    # kopf's own requests (the peering keep-alive, its patches of the objects) retry a 5xx or no
    # answer through these pauses and then fail; a failed keep-alive stops the operator. Its default
    # (54 s in all) is shorter than the API's downtime while the node running the only API server
    # switches (spec.rollout.allowApiDowntime), which the engine waits out for up to
    # spec.verify.timeout: kopf's default pauses, then 30 s ones, about 10 minutes in all.
    settings.networking.error_backoffs = KOPF_ERROR_BACKOFFS


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig (KUBECONFIG / --kubeconfig) when given, else the in-cluster service account."""
    info: kopf.ConnectionInfo | None = kopf.login_with_kubeconfig(
        **kwargs
    ) or kopf.login_with_service_account(**kwargs)
    return info


@kopf.timer(keys.GROUP, keys.VERSION, keys.PLURAL, interval=TICK, initial_delay=0)
def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    """One engine pass: start what may start, advance nodes in flight, record it all in status."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return  # the delete handler drives it from here
    runtime = _runtime(memo)
    meta = body.get("metadata", {})
    key, generation = str(meta.get("uid") or meta.get("name")), int(meta.get("generation") or 0)
    known, when = runtime.due.get(key, (generation, 0.0))
    if known == generation and time.monotonic() < when:  # a spec edit makes the object due at once
        return
    try:
        migration = _migration(body)
    except ValidationError as e:
        # Refused by the operator's own checks: recorded once per generation, never acted on.
        runtime.engine.report_invalid(
            meta["name"], generation, e.summary(CONDITION_MESSAGE_MAX), uid=str(meta.get("uid") or "")
        )
        runtime.due[key] = (generation, float("inf"))
        return
    except Exception as e:  # reading the same generation again fails the same way
        log.error("NodeMigration %s: unexpected error reading it", meta.get("name"), exc_info=e)
        message = f"the operator could not read this NodeMigration: {internal_error_message(e)}"
        runtime.engine.report_invalid(
            meta["name"],
            generation,
            message,
            reason=ConditionReason.INTERNAL_ERROR,
            uid=str(meta.get("uid") or ""),
        )
        runtime.due[key] = (generation, float("inf"))
        return
    try:
        result = runtime.engine.reconcile(migration)
    except ShimshiftError as e:
        raise to_kopf_error(e, retry) from e
    runtime.due[key] = (generation, time.monotonic() + min(result.delay, MAX_IDLE))


@kopf.on.delete(keys.GROUP, keys.VERSION, keys.PLURAL)
def stop(body: kopf.Body, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    """Keep the finalizer until every node in flight is finished or rolled back (never abandoned)."""
    runtime = _runtime(memo)
    try:
        migration = _migration(body)
        result = runtime.engine.reconcile(migration, stopping=True)
    except ShimshiftError as e:
        raise to_kopf_error(e, retry) from e
    if result.in_flight:
        raise kopf.TemporaryError(
            f"{result.in_flight} node(s) still in flight; finishing them first", delay=1
        )
    meta = body.get("metadata", {})
    runtime.due.pop(str(meta.get("uid") or meta.get("name")), None)
    runtime.engine.forget(migration)


# --- `shimshift run` ----------------------------------------------------------------------------------

#: Environment variables behind each `shimshift run` flag (the flag wins when both are given).
ENV = {
    "kubeconfig": "KUBECONFIG",
    "namespace": "SHIMSHIFT_NAMESPACE",
    "canary_namespace": "SHIMSHIFT_CANARY_NAMESPACE",
    "peering": "SHIMSHIFT_PEERING",
    "log_format": "SHIMSHIFT_LOG_FORMAT",
    "metrics_port": "SHIMSHIFT_METRICS_PORT",
    "identity": "SHIMSHIFT_IDENTITY",
    "node_name": "SHIMSHIFT_NODE_NAME",
    "lease_ttl": "SHIMSHIFT_LEASE_TTL",
    "liveness": "SHIMSHIFT_LIVENESS",
}
_SECRET_HINTS = ("token", "password", "secret", "key")


@dataclass(frozen=True)
class RunSettings:
    kubeconfig: str | None = None
    namespace: str = "shimshift-system"  # where the operator's ConfigMaps (plan reports) live
    canary_namespace: str | None = None  # where the verify step's canary pods run; None: `namespace`
    peering: str | None = None  # kopf peering name; None = standalone (a single replica)
    log_format: str = "full"  # full | plain | json
    metrics_port: int = 8080  # 0 disables the /metrics endpoint
    identity: str = ""  # this replica's name in NodeMigration leases; default $POD_NAME or the hostname
    #: the node this replica's pod runs on (the chart's downward API spec.nodeName); while this replica
    #: acts, that node is migrated last. "": not known (run outside a pod), no node is put last
    node_name: str = ""
    lease_ttl: float = 30.0  # seconds a silent replica keeps its claim (and its kopf peering record)
    liveness: str | None = (
        None  # kopf's health endpoint, e.g. http://0.0.0.0:8081/healthz (the chart's probes)
    )
    verbose: bool = False

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any], env: Mapping[str, str]) -> RunSettings:
        """Flags first, then the environment (`ENV`), then the defaults; bad values name their source."""
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            given = flags.get(name)
            if given is None and env.get(var):
                given = env[var]
            if given is not None:
                values[name] = given
        if "metrics_port" in values:
            try:
                values["metrics_port"] = int(values["metrics_port"])
            except ValueError as e:
                raise ValidationError(
                    [ValidationProblem("--metrics-port / SHIMSHIFT_METRICS_PORT", "must be a port number")]
                ) from e
        if "lease_ttl" in values:
            try:
                values["lease_ttl"] = float(values["lease_ttl"])
            except ValueError as e:
                raise ValidationError(
                    [ValidationProblem("--lease-ttl / SHIMSHIFT_LEASE_TTL", "must be a number of seconds")]
                ) from e
        if values.get("log_format", "full") not in ("full", "plain", "json"):
            raise ValidationError(
                [ValidationProblem("--log-format / SHIMSHIFT_LOG_FORMAT", "must be one of full, plain, json")]
            )
        values.setdefault(
            "identity", env.get("SHIMSHIFT_POD_NAME") or env.get("POD_NAME") or socket.gethostname()
        )
        return cls(verbose=bool(flags.get("verbose")), **values)

    def redacted(self) -> dict[str, Any]:
        """The settings as logged at start: anything that looks like a secret is masked."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            secret = any(h in name for h in _SECRET_HINTS) or (
                isinstance(value, str) and any(h in value.lower() for h in ("token=", "password="))
            )
            out[name] = "<redacted>" if secret and value else value
        return out


#: Random low digits of a replica's kopf priority, so two replicas started in the same millisecond
#: still differ (kopf pauses every replica when the highest priority is shared).
PRIORITY_TIEBREAK = 100


def peering_priority(started: float, tiebreak: int) -> int:
    """This replica's kopf peering priority: the earlier it started (`started`, Unix seconds), the
    higher, so the replica that acts keeps acting when another joins. A pod replacing an evicted
    standby (the drain of the standby's node) never pauses the active replica in the middle of its
    rollout, which would hand the rollout, and the place of the node migrated last, to the newcomer."""
    # below 2**53 until the year 2248: exact as a JSON number in the peering object
    return (2**43 - int(started * 1000)) * PRIORITY_TIEBREAK + tiebreak


def run_operator(
    settings: RunSettings,
    node_ports: NodePortsFactory | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> int:
    """Start the operator; returns when kopf stops (SIGTERM/SIGINT).

    Nodes are reached over SSH. `node_ports` replaces that with other node steps, built from the
    operator's Kube, and `clock` the engine's wall clock (maintenance windows, step timestamps): only a
    Python caller can pass them (the e2e tests' launcher, tests/e2e/run_operator.py); `shimshift run`
    never does, and no flag or environment variable names code to import or sets the clock.
    """
    from shimshift.entry.gateport import LiveGates
    from shimshift.entry.nodeport import ssh_node_ports
    from shimshift.kube.api import Kube, load_api_client
    from shimshift.kube.cluster import KubeCluster
    from shimshift.kube.secrets import read_secret_key
    from shimshift.metrics import Metrics
    from shimshift.notify import AppriseNotifier

    log_format = {"full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN, "json": kopf.LogFormat.JSON}
    kopf.configure(verbose=settings.verbose, log_format=log_format[settings.log_format])
    log.info("shimshift operator starting with settings %s", settings.redacted())
    if settings.kubeconfig:
        os.environ["KUBECONFIG"] = settings.kubeconfig  # kopf's own login reads it
    if settings.identity:
        os.environ.setdefault("POD_ID", settings.identity)  # kopf's peering identity
    kube = Kube(load_api_client(settings.kubeconfig))
    metrics = Metrics()
    metrics.count_api_requests(kube.counted)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    cluster = KubeCluster(kube, settings.namespace, settings.canary_namespace)
    # the target URLs are read per notification from the Secret in the operator's namespace, like
    # spec.ssh's Secrets, so a rotated webhook needs no restart
    notifier = AppriseNotifier(
        lambda ref: read_secret_key(kube, settings.namespace, ref.name, ref.key),
        metrics.notification_sent,
    )
    engine = Engine(
        cluster,
        node_ports(kube) if node_ports is not None else ssh_node_ports(kube, settings.namespace),
        observer=metrics,
        gates=LiveGates(cluster),
        identity=settings.identity or None,
        own_node=settings.node_name,
        config=EngineConfig(lease_ttl=settings.lease_ttl),
        notifier=notifier,
        clock=clock if clock is not None else utcnow,
    )
    try:
        kopf.run(
            clusterwide=True,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            liveness_endpoint=settings.liveness,
            priority=peering_priority(time.time(), secrets.randbelow(PRIORITY_TIEBREAK))
            if settings.peering
            else 0,
            memo=kopf.Memo(runtime=Runtime(engine, peering_lifetime=max(1, round(settings.lease_ttl)))),
        )
    finally:
        notifier.close(wait=False)  # a retry's backoff ends now; a send in flight is bounded by its timeouts
    return 0
