"""`KubeCluster`: the engine's ClusterPort on the real API, composed from the modules of this package.

Events are best effort (a failed Event is logged, never fails a step); everything else raises the
shimshift error family and the engine decides whether to retry.

Nodes, the NodeMigrationNode objects and kube-system's kube-apiserver pods are read from watch-fed
caches (`shimshift.kube.informer`), started on first use: a pass costs requests for the nodes in
flight, never a LIST of the fleet.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from shimshift.kube import (
    apiservers,
    canary,
    children,
    hooks,
    lease,
    lock,
    migrations,
    nodes,
    objects,
    pods,
    reportstore,
    secrets,
    snapshot,
)
from shimshift.kube import drain as drain_mod
from shimshift.kube.api import Kube, Object
from shimshift.kube.informer import Informer
from shimshift.kube.watching import Objects, wait_until
from shimshift.model import keys
from shimshift.model.canary import CanaryPod, canary_name
from shimshift.model.errors import KubeError
from shimshift.model.gpuoperator import GpuOperator, gpu_operators
from shimshift.model.hooks import HookJob
from shimshift.model.migration import MigrationRef, NodeMigration, parse_nodemigration
from shimshift.model.nodestate import belongs_to, child_name, migration_of, record_of
from shimshift.model.spec import Drain
from shimshift.model.status import EventReason, NodeRecord
from shimshift.planning.apiserver import ApiServers
from shimshift.planning.cluster import Cluster, Node, Pod, build_cluster, parse_node, parse_pod
from shimshift.planning.cni import cni_writers
from shimshift.planning.operatorpod import OPERATOR_NAME, OPERATOR_NAME_LABEL
from shimshift.resources import load_crd

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a pass waits for a cache's first list before it is retried.
SYNC_TIMEOUT = 30.0
#: How long a reading of where the API servers run is used before it is read again (two requests).
API_SERVERS_TTL = 30.0


class _Reading(Generic[T]):
    """A value read from the API at most every API_SERVERS_TTL seconds; when a read fails, the last
    reading (else `first`, or the error when there is neither)."""

    def __init__(self) -> None:
        self._last: tuple[float, T] | None = None  # (monotonic time read, value)
        self._lock = threading.Lock()

    def get(self, read: Callable[[], T], what: str, first: T | None = None) -> T:
        with self._lock:
            last = self._last
        if last is not None and time.monotonic() - last[0] < API_SERVERS_TTL:
            return last[1]
        try:
            value = read()
        except KubeError as e:
            if last is not None:
                log.warning("could not read %s (%s); using the last reading", what, e)
                return last[1]
            if first is None:
                raise
            log.warning("could not read %s (%s)", what, e)
            return first
        with self._lock:
            self._last = (time.monotonic(), value)
        return value


class KubeCluster:
    def __init__(self, kube: Kube, namespace: str = "default", canary_namespace: str | None = None) -> None:
        self.kube = kube
        self.namespace = namespace  # the operator's own: plan report ConfigMaps live here
        self.canary_namespace = canary_namespace or namespace  # where the verify step's canaries run
        self._crd = load_crd()
        self._node_cache: Informer[Node] | None = None
        self._child_cache: Informer[tuple[tuple[str, str], NodeRecord]] | None = None
        self._api_pod_cache: Informer[Pod] | None = None
        # Without it, two passes starting together each made a cache, and a pass could read the other's
        # before its first list: no records, so every node of a finished NodeMigration looked new.
        self._caches_lock = threading.Lock()
        #: node -> its DaemonSets as the pass that finished its drain saw them (taken by daemonsets_on)
        self._drained_daemonsets: dict[str, tuple[str, ...]] = {}
        self._discovery = objects.Discovery(kube)
        self._api_servers: _Reading[ApiServers] = _Reading()
        self._operator_pods: _Reading[tuple[Pod, ...]] = _Reading()

    def _nodes(self) -> Informer[Node]:
        with self._caches_lock:  # passes of several NodeMigrations start at once: one cache each
            if self._node_cache is None:
                kube = self.kube
                self._node_cache = Informer(
                    lambda: kube.request("GET", nodes.NODES),
                    lambda rv, seconds: kube.watch(nodes.NODES, resource_version=rv, timeout=seconds),
                    parse_node,
                    name="nodes",
                ).start()
            cache = self._node_cache
        cache.wait_synced(SYNC_TIMEOUT)
        return cache

    def _children(self) -> Informer[tuple[tuple[str, str], NodeRecord]]:
        with self._caches_lock:
            if self._child_cache is None:
                kube = self.kube
                self._child_cache = Informer(
                    lambda: kube.request("GET", children.CHILDREN),
                    lambda rv, seconds: kube.watch(children.CHILDREN, resource_version=rv, timeout=seconds),
                    lambda o: (migration_of(o), record_of(o)),
                    name="children",
                    if_missing="the NodeMigrationNode CRD is not installed: "
                    "apply it with `shimshift crd | kubectl apply -f -`, or upgrade the chart",
                ).start()
            cache = self._child_cache
        cache.wait_synced(SYNC_TIMEOUT)
        return cache

    def _api_server_pods(self) -> Informer[Pod]:
        """kube-system's kube-apiserver pods (a handful), watched: no pass lists pods."""
        with self._caches_lock:
            if self._api_pod_cache is None:
                kube = self.kube
                self._api_pod_cache = Informer(
                    lambda: apiservers.list_api_server_pods(kube),
                    lambda rv, seconds: apiservers.watch_api_server_pods(kube, rv, seconds),
                    parse_pod,
                    name="kube-apiserver pods",
                ).start()
            cache = self._api_pod_cache
        cache.wait_synced(SYNC_TIMEOUT)
        return cache

    def close(self) -> None:
        """Stop the caches' watches (their threads end within one watch timeout)."""
        for cache in (self._node_cache, self._child_cache, self._api_pod_cache):
            if cache is not None:
                cache.stop()

    def read_node_records(self, migration: NodeMigration) -> tuple[NodeRecord, ...]:
        return tuple(
            sorted(
                (
                    r
                    for owner, r in self._children().values()
                    if belongs_to(owner, migration.name, migration.uid)
                ),
                key=lambda r: r.name,
            )
        )

    def write_node_record(self, migration: NodeMigration, record: NodeRecord) -> None:
        cache = self._children()
        name = child_name(migration.name, record.name)
        known = cache.get(name)
        if known is not None and not belongs_to(known[0], migration.name, migration.uid):
            raise children.ChildOfAnother(
                f"NodeMigrationNode {name} belongs to a deleted NodeMigration {migration.name} "
                "not yet garbage-collected; retrying"
            )
        if known is None:
            created = children.create_child(
                self.kube, migration.name, migration.uid, record.name, record.started_at
            )
            if created is not None:
                cache.store(created)
                if record_of(created) == record:
                    return  # a node just started: the new child says so (no status yet), one write
        cache.store(children.patch_child_status(self.kube, migration.name, record))

    def claim(self, migration: str, identity: str, ttl: float) -> bool:
        return lease.claim_migration(self.kube, migration, identity, ttl, dt.datetime.now(dt.UTC))

    def read_cluster(self) -> Cluster:
        raw = snapshot.read_cluster(self.kube)
        controllers = [
            o for k in ("daemonsets", "replicasets", "deployments", "statefulsets", "jobs") for o in raw[k]
        ]
        return build_cluster(
            raw["nodes"], raw["pods"], raw["poddisruptionbudgets"], controllers, raw["runtimeclasses"]
        )

    def read_api_servers(self) -> ApiServers:
        return self._api_servers.get(
            lambda: apiservers.api_servers_of(self._api_server_pods().values(), self.kube),
            "where the API servers run",
        )

    def read_operator_pods(self) -> tuple[Pod, ...]:
        """The operator's pods in its namespace (the chart's label), one LIST the API server filters by
        label, at most every API_SERVERS_TTL seconds; the last reading when a read fails."""

        def read() -> tuple[Pod, ...]:
            query = [("labelSelector", f"{OPERATOR_NAME_LABEL}={OPERATOR_NAME}")]
            items = self.kube.request("GET", pods.PODS, query=query).get("items") or ()
            return tuple(p for p in map(parse_pod, items) if p.namespace == self.namespace)

        return self._operator_pods.get(read, "the operator's own pods", first=())

    def wait_api_ready(self, timeout: float) -> tuple[bool, str]:
        return apiservers.wait_api_ready(self.kube, timeout)

    def write_report(self, migration: NodeMigration, data: Mapping[str, str]) -> str:
        return reportstore.store_report(self.kube, self.namespace, migration.name, migration.uid, data)

    def read_nodes(self) -> tuple[Node, ...]:
        return tuple(sorted(self._nodes().values(), key=lambda n: n.name))

    def read_blocking_pods(self, label_selector: str) -> dict[str, tuple[str, ...]]:
        return pods.list_blocking_pods(self.kube, label_selector)

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """One object by name (for a gate's condition); `objects.ObjectUnreadable` when it cannot be."""
        return objects.read_object(self.kube, self._discovery, api_version, kind, namespace, name)

    def read_secret(self, name: str, key: str) -> str:
        """The text of `key` in Secret `name` of the operator's namespace (never logged)."""
        return secrets.read_secret_key(self.kube, self.namespace, name, key)

    def read_migration(self, name: str) -> NodeMigration | None:
        raw = migrations.get_migration(self.kube, name)
        return None if raw is None else parse_nodemigration(raw, self._crd, source=f"NodeMigration {name}")

    def _node_reads(self) -> nodes.NodeReads:
        """The Node cache as the first read of a lock, cordon or annotation change (no GET when it is
        current) and the place its write's answer goes (the next change reads that write)."""
        cache = self._nodes()

        def cached(name: str) -> Object | None:
            item = cache.get_versioned(name)
            if item is None or not item[0]:
                return None
            version, node = item
            return {
                "metadata": {"name": name, "resourceVersion": version, "annotations": dict(node.annotations)},
                "spec": {"unschedulable": node.unschedulable},
            }

        return nodes.NodeReads(cached, cache.store)

    def acquire_lock(self, node: str, owner: str) -> None:
        lock.acquire_node_lock(
            self.kube,
            node,
            owner,
            lambda holder: migrations.migration_exists(self.kube, holder),
            self._node_reads(),
        )

    def release_lock(self, node: str, owner: str) -> None:
        lock.release_node_lock(self.kube, node, owner, self._node_reads())

    def cordon(self, node: str, owner: str) -> bool:
        return nodes.cordon_node(self.kube, node, owner, self._node_reads())

    def uncordon(self, node: str, owner: str) -> None:
        nodes.uncordon_node(self.kube, node, owner, self._node_reads())

    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> drain_mod.DrainProgress:
        progress = drain_mod.drain_pass(self.kube, node, drain, wait=wait, escalate=escalate)
        if progress.done and progress.daemonsets is not None:
            self._drained_daemonsets[node] = progress.daemonsets  # the drain step asks for them next
        else:
            self._drained_daemonsets.pop(node, None)
        return progress

    def wait_node(self, node: str, *, runtime: str, timeout: float) -> bool:
        """True once `node` is Ready and reports a `<runtime>://` containerRuntimeVersion (the Node
        cache's watch wakes the wait; no request is made)."""

        def ready(parsed: Node | None) -> bool:
            return parsed is not None and parsed.ready and parsed.runtime == runtime

        return self._nodes().wait_for(node, ready, timeout)

    def read_node(self, node: str) -> Node | None:
        """`node` as the Node cache holds it (no request is made)."""
        return self._nodes().get(node)

    def daemonsets_on(self, node: str) -> tuple[str, ...]:
        """The DaemonSets ("namespace/name") with a pod bound to `node` now, sorted: as the drain pass
        that just finished the node's drain listed them, else from a LIST of the node's pods."""
        seen = self._drained_daemonsets.pop(node, None)
        if seen is not None:
            return seen
        return pods.daemonsets_of(pods.list_pods_on_node(self.kube, node))

    def cni_config_writers(self, node: str, conf_dir: str) -> tuple[str, ...]:
        """The DaemonSets whose pod bound to `node` mounts `conf_dir` from the host (a LIST of the
        node's pods), as the plan finds them."""
        return cni_writers(pods.list_pods_on_node(self.kube, node), conf_dir)

    def gpu_operators(self) -> tuple[GpuOperator, ...]:
        """The GPU operator's Deployments: one paged LIST of the cluster's Deployments (asked only for
        a GPU node, at its facts step), as the plan finds them."""
        return gpu_operators(snapshot.list_all(self.kube, "/apis/apps/v1/deployments", "Deployment"))

    def wait_daemonset_pods(
        self, node: str, *, expected: Sequence[str], timeout: float, runtime: str = ""
    ) -> tuple[str, ...]:
        """Wait (a watch, at most `timeout` seconds) until every DaemonSet in `expected`, and every other
        one with a pod bound to `node`, has one Running and Ready there (with `runtime`, on that runtime's
        containers); those still missing one (empty: all came back). An expected DaemonSet that has since
        been deleted is no longer waited for."""
        wanted: set[str] = set(expected)
        exists: dict[str, bool] = {}  # each missing DaemonSet is looked up once per wait
        missing: tuple[str, ...] = ()

        def back(objects: Objects) -> bool:
            nonlocal missing
            absent = pods.daemonset_pods_missing((parse_pod(o) for o in objects.values()), wanted, runtime)
            for ds in absent.keys() - exists.keys():
                exists[ds] = drain_mod.daemonset_exists(self.kube, *ds.split("/", 1))
                if not exists[ds]:
                    log.info("node %s: DaemonSet %s no longer exists; not waiting for its pod", node, ds)
            missing = tuple(f"DaemonSet {ds} ({why})" for ds, why in absent.items() if exists[ds])
            return not missing

        if wait_until(self.kube, pods.PODS, back, timeout=timeout, query=pods.pods_on_node_query(node)):
            return ()
        return missing

    def mark_migrated(self, node: str, cri_endpoint: str | None) -> None:
        cached = self._nodes().get(node)
        if cached is not None and keys.CRI_SOCKET_ANNOTATION not in cached.annotations:
            cri_endpoint = None  # not a kubeadm node: no annotation to update (and none is added)
        if cri_endpoint:
            nodes.update_cri_socket_annotation(self.kube, node, cri_endpoint, self._node_reads())
        # into the cache: the uncordon and the lock's release right after decide on this write
        self._nodes().store(nodes.label_node_migrated(self.kube, node))

    def unmark_migrated(self, node: str) -> None:
        nodes.unlabel_node_migrated(self.kube, node)

    def clear_undo_request(self, node: str, value: str) -> None:
        nodes.clear_undo_request(self.kube, node, value)

    def restore_cri_socket(self, node: str) -> None:
        if nodes.restore_cri_socket_annotation(self.kube, node):
            log.info(
                "node %s: kubeadm's cri-socket annotation set back to its value before the finish step", node
            )

    def forget_cri_socket(self, node: str) -> None:
        # unconditional: the cache may not show yet the value the finish step saved a moment ago
        nodes.forget_cri_socket_annotation(self.kube, node)

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
        return canary.run_canary(
            self.kube,
            self.canary_namespace,
            node,
            image=image,
            token=token,
            migration=migration,
            wait=wait,
            settled=settled,
        )

    def read_canary_log(self, node: str) -> str | None:
        return canary.read_canary_log(self.kube, self.canary_namespace, node)

    def read_canary_events(self, node: str) -> tuple[str, ...]:
        return canary.read_canary_events(self.kube, self.canary_namespace, node)

    def delete_canary(self, node: str) -> None:
        canary.delete_canary(self.kube, self.canary_namespace, canary_name(node))

    def delete_canaries(self, node: str) -> int:
        return canary.delete_canaries(self.kube, self.canary_namespace, node)

    def run_hook_job(self, manifest: dict[str, Any], *, wait: float) -> tuple[HookJob, bool]:
        return hooks.run_hook_job(self.kube, manifest, wait=wait)

    def hook_last_pod(self, job: HookJob) -> str:
        return hooks.last_pod_of(self.kube, job)

    def delete_hook_job(self, namespace: str, name: str) -> None:
        hooks.delete_job(self.kube, namespace, name)

    def write_status(self, name: str, status: Mapping[str, Any]) -> None:
        migrations.patch_migration_status(self.kube, name, status)

    def event(
        self,
        migration: NodeMigration | MigrationRef,
        node: str | None,
        warning: bool,
        reason: EventReason,
        message: str,
    ) -> None:
        type_ = migrations.EventType.WARNING if warning else migrations.EventType.NORMAL
        targets = [(keys.KIND, migration.name, migration.uid, keys.API_VERSION)]
        if node:
            targets.append(("Node", node, "", "v1"))
        for kind, name, uid, api_version in targets:
            try:
                migrations.emit_event(
                    self.kube,
                    self.namespace,
                    kind=kind,
                    name=name,
                    uid=uid,
                    api_version=api_version,
                    type_=type_,
                    reason=reason,
                    message=message,
                )
            except KubeError as e:
                log.warning("could not record Event %s on %s %s: %s", reason, kind, name, e)
