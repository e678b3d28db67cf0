"""`KubeCluster`: the engine's ClusterPort on the real API, composed from the modules of this package.

Events are best effort (a failed Event is logged, never fails a step); everything else raises the
shimshift error family and the engine decides whether to retry.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shimshift.kube import drain as drain_mod
from shimshift.kube import lease, lock, migrations, nodes, pods, reportstore, snapshot
from shimshift.kube.api import Kube
from shimshift.kube.watching import Objects, wait_until
from shimshift.model import keys
from shimshift.model.errors import KubeError
from shimshift.model.migration import MigrationRef, NodeMigration, parse_nodemigration
from shimshift.model.spec import Drain
from shimshift.model.status import EventReason
from shimshift.planning.cluster import Cluster, Node, build_cluster, parse_node, parse_pod
from shimshift.resources import load_crd

log = logging.getLogger(__name__)


class KubeCluster:
    def __init__(self, kube: Kube, namespace: str = "default") -> None:
        self.kube = kube
        self.namespace = namespace  # the operator's own: plan report ConfigMaps live here
        self._crd = load_crd()

    def claim(self, migration: str, identity: str, ttl: float) -> bool:
        return lease.claim_migration(self.kube, migration, identity, ttl, dt.datetime.now(dt.UTC))

    def read_cluster(self) -> Cluster:
        raw = snapshot.read_cluster(self.kube)
        controllers = [
            o for k in ("daemonsets", "replicasets", "deployments", "statefulsets", "jobs") for o in raw[k]
        ]
        return build_cluster(raw["nodes"], raw["pods"], raw["poddisruptionbudgets"], controllers)

    def write_report(self, migration: NodeMigration, data: Mapping[str, str]) -> str:
        return reportstore.store_report(self.kube, self.namespace, migration.name, migration.uid, data)

    def read_nodes(self) -> tuple[Node, ...]:
        return nodes.read_nodes(self.kube)

    def read_migration(self, name: str) -> NodeMigration | None:
        raw = migrations.get_migration(self.kube, name)
        return None if raw is None else parse_nodemigration(raw, self._crd, source=f"NodeMigration {name}")

    def acquire_lock(self, node: str, owner: str) -> None:
        lock.acquire_node_lock(
            self.kube, node, owner, lambda holder: migrations.migration_exists(self.kube, holder)
        )

    def release_lock(self, node: str, owner: str) -> None:
        lock.release_node_lock(self.kube, node, owner)

    def cordon(self, node: str, owner: str) -> bool:
        return nodes.cordon_node(self.kube, node, owner)

    def uncordon(self, node: str, owner: str) -> None:
        nodes.uncordon_node(self.kube, node, owner)

    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> drain_mod.DrainProgress:
        return drain_mod.drain_pass(self.kube, node, drain, wait=wait, escalate=escalate)

    def wait_node(self, node: str, *, runtime: str, timeout: float) -> bool:
        """True once `node` is Ready and reports a `<runtime>://` containerRuntimeVersion."""

        def ready(objects: Objects) -> bool:
            raw = objects.get(node)
            if raw is None:
                return False
            parsed = parse_node(raw)
            return parsed.ready and parsed.runtime == runtime

        return wait_until(
            self.kube,
            nodes.NODES,
            ready,
            timeout=timeout,
            query=[("fieldSelector", f"metadata.name={node}")],
        )

    def daemonsets_on(self, node: str) -> tuple[str, ...]:
        """The DaemonSets ("namespace/name") with a pod bound to `node` now, sorted."""
        return pods.daemonsets_of(pods.list_pods_on_node(self.kube, node))

    def wait_daemonset_pods(self, node: str, *, expected: Sequence[str], timeout: float) -> tuple[str, ...]:
        """Wait (a watch, at most `timeout` seconds) until every DaemonSet in `expected`, and every other
        one with a pod bound to `node`, has one Running and Ready there; those still missing one (empty:
        all came back). An expected DaemonSet that has since been deleted is no longer waited for."""
        wanted: set[str] = set(expected)
        exists: dict[str, bool] = {}  # each missing DaemonSet is looked up once per wait
        missing: tuple[str, ...] = ()

        def back(objects: Objects) -> bool:
            nonlocal missing
            absent = pods.daemonset_pods_missing((parse_pod(o) for o in objects.values()), wanted)
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
        if cri_endpoint:
            nodes.update_cri_socket_annotation(self.kube, node, cri_endpoint)
        nodes.label_node_migrated(self.kube, node)

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
