"""Fakes of the engine's ports: an in-memory cluster and nodes that remember what was changed.

They implement `ClusterPort` and `NodePort` as the real adapters do (idempotent, check-before-change),
and count only real changes, so a test can tell "ran again safely" from "changed twice".
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shimshift.kube.drain import DrainProgress
from shimshift.kube.lock import NodeLocked
from shimshift.kube.pods import Eviction, EvictionResult
from shimshift.model import keys
from shimshift.model.canary import CanaryPod, canary_name
from shimshift.model.errors import KubeError, NodeError, RenderError
from shimshift.model.facts import NodeFacts
from shimshift.model.gpuoperator import GpuOperator
from shimshift.model.hooks import HookJob
from shimshift.model.keys import StepId
from shimshift.model.migration import MigrationRef, NodeMigration, parse_nodemigration
from shimshift.model.nodelock import lock_patch, unlock_patch
from shimshift.model.nodestate import child_name
from shimshift.model.selectors import parse_label_selector
from shimshift.model.spec import Drain
from shimshift.model.status import EventReason, ImageCounts, MigrationStatus, NodeRecord, StepState
from shimshift.model.timestamps import iso
from shimshift.planning.apiserver import ApiServers
from shimshift.planning.cluster import Cluster, Node, Pod
from shimshift.planning.rollout import reconcile_selection
from shimshift.rendering import RegistryMaterial
from shimshift.resources import load_crd
from shimshift.steps.base import ImagesProgress

CRD = load_crd()
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Crash(BaseException):
    """The operator process dies here (SIGKILL): nothing after this point runs."""


def manifest(name: str = "m", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "mode": "Migrate",
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "known-hosts"}},
        },
    }
    body["spec"].update(spec)
    return body


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class FakeNode:
    name: str
    labels: dict[str, str] = field(default_factory=lambda: {"pool": "workers"})
    annotations: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    runtime: str = "docker://20.10.24"
    operating_system: str = "linux"  # status.nodeInfo.operatingSystem
    pod_cidrs: tuple[str, ...] = ()  # spec.podCIDRs
    ready: bool = True
    #: the Ready condition's reason and message while not `ready` (what kubelet says)
    ready_reason: str = ""
    ready_message: str = ""
    pods: list[str] = field(default_factory=list)  # namespace/name
    #: CNI conf dir -> the DaemonSets whose pod here mounts it from the host
    cni_writers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocked_pods: dict[str, str] = field(default_factory=dict)  # pod -> the PDB that blocks it
    #: DaemonSet (as the engine names it) -> watch-waits before its pod is Running and Ready again
    daemonsets_down: dict[str, int] = field(default_factory=dict)
    #: DaemonSets ("namespace/name") with a pod on the node, as daemonsets_on reads them
    daemonsets: tuple[str, ...] = ()
    #: pods as read_blocking_pods sees them: "namespace/name" -> (labels, phase)
    labelled_pods: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)

    def view(self) -> Node:
        return Node(
            name=self.name,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            unschedulable=self.unschedulable,
            ready=self.ready,
            runtime_version=self.runtime,
            operating_system=self.operating_system,
            pod_cidrs=self.pod_cidrs,
            ready_status="True" if self.ready else "False",
            ready_reason="KubeletReady" if self.ready else self.ready_reason,
            ready_message="kubelet is posting ready status" if self.ready else self.ready_message,
        )


class FakeCluster:
    """ClusterPort over dicts; `crash_on_write` kills the 'process' at the Nth durable write (of the
    NodeMigration's status or of a node's record in its NodeMigrationNode)."""

    def __init__(self, nodes: list[FakeNode], clock: Clock) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.clock = clock
        self.objects: dict[str, dict[str, Any]] = {}
        #: NodeMigrationNode name -> (NodeMigration name, the stored record)
        self.children: dict[str, tuple[str, dict[str, Any]]] = {}
        self.status_writes: list[dict[str, Any]] = []  # every NodeMigration status patch, in order
        self.events: list[tuple[str, str | None, bool, str, str]] = []
        self.writes = 0
        self.crash_on_write: int | None = None
        self.crash_after_lock: str | None = None  # node: die right after its lock patch, before the record
        self.max_cordoned_by_us = 0
        self.changes: Counter[str] = Counter()
        self.reports: dict[str, dict[str, str]] = {}
        self.leases: dict[str, tuple[str, dt.datetime]] = {}
        self.daemonset_waits: Counter[str] = Counter()
        self.daemonsets_expected: dict[str, tuple[str, ...]] = {}  # node -> `expected` of the last wait
        self.daemonset_runtimes: dict[str, str] = {}  # node -> `runtime` of the last wait
        self.blocking_reads = 0  # read_blocking_pods calls (one LIST each in production)
        #: the GPU operator's Deployments as gpu_operators answers, and how often it was asked
        self.gpu_operator_deployments: tuple[GpuOperator, ...] = ()
        self.gpu_operator_reads = 0
        #: the operator's own pods as read_operator_pods answers
        self.operator_pods: tuple[Pod, ...] = ()
        #: where the API servers run, as read_api_servers answers
        self.api_servers = ApiServers()
        #: (node, step, seconds): the API goes down for that long right after the record of that node's
        #: step Started is written (the switch: its Done write fails; verify: its reads fail)
        self.api_outage: tuple[str, StepId, float] | None = None
        self.api_down_until: dt.datetime | None = None
        self.api_refused = 0  # requests refused while the API was down
        self.api_waits: list[float] = []  # seconds each wait_api_ready waited
        self.fail_label: dict[str, int] = {}  # node -> how many completion-label writes fail
        #: node -> how its canary pods behave: "pass" (default: exits 0 echoing its token), "hang"
        #: (Running, never exits), "pull" (ImagePullBackOff), "exit" (exits 1), "silent" (exits 0, empty log)
        self.canary_behaviour: dict[str, str] = {}
        self.canaries: dict[str, CanaryPod] = {}  # node -> its canary pod now
        self.canary_images: list[tuple[str, str]] = []  # (node, image) of every canary created
        self.canary_deletes: Counter[str] = Counter()
        #: "<node>-<hook>" -> how its hook Job behaves: "pass" (default: completes), "fail" (fails,
        #: BackoffLimitExceeded, its pod exited 3 saying "precheck failed"), "hang" (never finishes)
        self.hook_behaviour: dict[str, str] = {}
        self.jobs: dict[str, tuple[dict[str, Any], HookJob]] = {}  # "<ns>/<name>" -> (manifest, state)
        self.jobs_created: list[str] = []  # "<ns>/<name>" of every Job created, in order
        self.jobs_deleted: Counter[str] = Counter()

    def create(self, body: dict[str, Any]) -> NodeMigration:
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)
        return self.get(body["metadata"]["name"])

    def get(self, name: str) -> NodeMigration:
        return parse_nodemigration(copy.deepcopy(self.objects[name]), CRD)

    def set_spec(self, name: str, **fields: Any) -> None:
        self.objects[name]["spec"].update(fields)

    def stored_status(self, name: str = "m") -> MigrationStatus:
        """The NodeMigration's status as stored (bounded: no per-node records)."""
        return MigrationStatus.from_storage(self.objects[name].get("status") or {})

    def status(self, name: str = "m") -> MigrationStatus:
        """The stored status with every selected node's record, as the operator sees the fleet: the
        NodeMigrationNode records, and the Pending and Skipped nodes its selection derives."""
        stored = self.stored_status(name)
        if stored.nodes:  # written by a previous version, not yet moved into children
            return stored
        records = [NodeRecord.from_storage(r) for owner, r in self.children.values() if owner == name]
        nodes = reconcile_selection(self.get(name).spec, records, self.read_nodes(), self.api_servers)
        return replace(stored, nodes=nodes)

    # --- ClusterPort
    def read_nodes(self) -> tuple[Node, ...]:
        return tuple(n.view() for n in self.nodes.values())

    def read_migration(self, name: str) -> NodeMigration | None:
        return self.get(name) if name in self.objects else None

    def read_blocking_pods(self, label_selector: str) -> dict[str, tuple[str, ...]]:
        self.blocking_reads += 1
        selector = parse_label_selector(label_selector)
        out = {
            n.name: tuple(
                sorted(
                    pod
                    for pod, (labels, phase) in n.labelled_pods.items()
                    if selector.matches(labels) and phase not in ("Succeeded", "Failed")
                )
            )
            for n in self.nodes.values()
        }
        return {node: pods for node, pods in out.items() if pods}

    def acquire_lock(self, node: str, owner: str) -> None:
        current = self.nodes[node].annotations
        holder = current.get(keys.LOCK_ANNOTATION)
        if holder and holder != owner and holder in self.objects:
            raise NodeLocked(node, holder)
        patch = lock_patch(current, owner)
        if keys.LOCK_ANNOTATION in patch:
            self.changes[f"{node}:lock"] += 1
        if keys.SCALE_DOWN_DISABLED_ANNOTATION in patch:
            self.changes[f"{node}:scale-down-disabled"] += 1
        self._annotate(node, patch)
        if patch and self.crash_after_lock == node:
            raise Crash(f"after the lock patch of {node}")

    def release_lock(self, node: str, owner: str) -> None:
        self._annotate(node, unlock_patch(self.nodes[node].annotations, owner))

    def _annotate(self, node: str, patch: Mapping[str, str | None]) -> None:
        for key, value in patch.items():
            if value is None:
                self.nodes[node].annotations.pop(key, None)
            else:
                self.nodes[node].annotations[key] = value

    def cordon(self, node: str, owner: str) -> bool:
        n = self.nodes[node]
        if n.annotations.get(keys.CORDONED_BY_ANNOTATION) == owner:
            return False
        if n.unschedulable:
            return True
        n.unschedulable = True
        n.annotations[keys.CORDONED_BY_ANNOTATION] = owner
        self.changes[f"{node}:cordon"] += 1
        ours = sum(1 for x in self.nodes.values() if keys.CORDONED_BY_ANNOTATION in x.annotations)
        self.max_cordoned_by_us = max(self.max_cordoned_by_us, ours)
        return False

    def uncordon(self, node: str, owner: str) -> None:
        n = self.nodes[node]
        if n.annotations.get(keys.CORDONED_BY_ANNOTATION) == owner:
            n.unschedulable = False
            del n.annotations[keys.CORDONED_BY_ANNOTATION]

    def drain_pass(self, node: str, drain: Drain, *, wait: float, escalate: bool) -> DrainProgress:
        n = self.nodes[node]
        blocked = []
        for pod in list(n.pods):
            if pod in n.blocked_pods and not escalate:
                blocked.append(
                    Eviction(pod, EvictionResult.BLOCKED, (n.blocked_pods[pod],), "Cannot evict pod")
                )
            else:
                n.pods.remove(pod)
        self.clock.advance(wait)
        return DrainProgress(node, tuple(n.pods), tuple(blocked))

    def wait_node(self, node: str, *, runtime: str, timeout: float) -> bool:
        n = self.nodes[node]
        ok = n.ready and n.runtime.startswith(f"{runtime}://")
        if not ok:
            self.clock.advance(timeout)
        return ok

    def read_node(self, node: str) -> Node | None:
        n = self.nodes.get(node)
        return None if n is None else n.view()

    def daemonsets_on(self, node: str) -> tuple[str, ...]:
        return self.nodes[node].daemonsets

    def cni_config_writers(self, node: str, conf_dir: str) -> tuple[str, ...]:
        return self.nodes[node].cni_writers.get(conf_dir, ())

    def read_operator_pods(self) -> tuple[Pod, ...]:
        return self.operator_pods

    def gpu_operators(self) -> tuple[GpuOperator, ...]:
        self.gpu_operator_reads += 1
        return self.gpu_operator_deployments

    def wait_daemonset_pods(
        self, node: str, *, expected: Sequence[str], timeout: float, runtime: str = ""
    ) -> tuple[str, ...]:
        self._api()
        n = self.nodes[node]
        self.daemonset_runtimes[node] = runtime
        self.daemonset_waits[node] += 1
        self.daemonsets_expected[node] = tuple(expected)
        for ds, left in n.daemonsets_down.items():
            n.daemonsets_down[ds] = max(0, left - 1)
        missing = tuple(ds for ds, left in sorted(n.daemonsets_down.items()) if left > 0)
        if missing:
            self.clock.advance(timeout)
        return missing

    def mark_migrated(self, node: str, cri_endpoint: str | None) -> None:
        n = self.nodes[node]
        current = n.annotations.get(keys.CRI_SOCKET_ANNOTATION)
        if cri_endpoint and current is not None and current != cri_endpoint:
            n.annotations[keys.CRI_SOCKET_ANNOTATION] = cri_endpoint
            n.annotations[keys.CRI_SOCKET_BEFORE_ANNOTATION] = current
        if self.fail_label.get(node):
            self.fail_label[node] -= 1
            raise NodeError(node, "labelling failed (injected)")
        n.labels[keys.RUNTIME_LABEL] = keys.RUNTIME_LABEL_VALUE

    def restore_cri_socket(self, node: str) -> None:
        n = self.nodes[node]
        before = n.annotations.pop(keys.CRI_SOCKET_BEFORE_ANNOTATION, None)
        if before is not None:
            n.annotations[keys.CRI_SOCKET_ANNOTATION] = before

    def forget_cri_socket(self, node: str) -> None:
        self.nodes[node].annotations.pop(keys.CRI_SOCKET_BEFORE_ANNOTATION, None)

    def unmark_migrated(self, node: str) -> None:
        self.nodes[node].labels.pop(keys.RUNTIME_LABEL, None)

    def clear_undo_request(self, node: str, value: str) -> None:
        annotations = self.nodes[node].annotations
        if annotations.get(keys.UNDO_ANNOTATION) == value:
            del annotations[keys.UNDO_ANNOTATION]
            self.changes[f"{node}:undo-request-cleared"] += 1

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
        pod = self.canaries.get(node)
        if pod is None or pod.token != token:
            self.canary_images.append((node, image))
            behaviour = self.canary_behaviour.get(node, "pass")
            base = CanaryPod(canary_name(node), token, iso(self.clock.now))
            pod = {
                "pass": replace(base, phase="Succeeded", exit_code=0, terminated_reason="Completed"),
                "silent": replace(base, phase="Succeeded", exit_code=0, terminated_reason="Completed"),
                "exit": replace(base, phase="Failed", exit_code=1, terminated_reason="Error"),
                "pull": replace(
                    base,
                    waiting_reason="ImagePullBackOff",
                    waiting_message=f'Back-off pulling image "{image}"',
                ),
                "hang": replace(base, phase="Running"),
            }[behaviour]
            self.canaries[node] = pod
        if not settled(pod):
            self.clock.advance(wait)
        return pod

    def read_canary_log(self, node: str) -> str | None:
        pod = self.canaries.get(node)
        if pod is None or self.canary_behaviour.get(node) == "silent":
            return ""
        return pod.token + "\n"

    def read_canary_events(self, node: str) -> tuple[str, ...]:
        if self.canary_behaviour.get(node) == "pull":
            return (
                "Warning Failed: Failed to pull image: not found",
                "Normal BackOff: Back-off pulling image",
            )
        return ()

    def delete_canary(self, node: str) -> None:
        self.delete_canaries(node)

    def delete_canaries(self, node: str) -> int:
        if self.canaries.pop(node, None) is None:
            return 0
        self.canary_deletes[node] += 1
        return 1

    def run_hook_job(self, manifest: dict[str, Any], *, wait: float) -> tuple[HookJob, bool]:
        meta = manifest["metadata"]
        ref = f"{meta['namespace']}/{meta['name']}"
        created = ref not in self.jobs
        if created:
            node = meta["annotations"][keys.HOOK_NODE_ANNOTATION]
            behaviour = self.hook_behaviour.get(f"{node}-{meta['labels'][keys.HOOK_LABEL]}", "pass")
            base = HookJob(
                meta["name"], meta["namespace"], uid=f"uid-{meta['name']}", created_at=iso(self.clock.now)
            )
            job = {
                "pass": replace(base, complete=True),
                "fail": replace(
                    base,
                    failed=True,
                    reason="BackoffLimitExceeded",
                    message="Job has reached the specified backoff limit",
                ),
                "hang": replace(base, active=1),
            }[behaviour]
            self.jobs[ref] = (copy.deepcopy(manifest), job)
            self.jobs_created.append(ref)
        job = self.jobs[ref][1]
        if not job.finished:
            self.clock.advance(wait)
        return job, created

    def hook_last_pod(self, job: HookJob) -> str:
        return f"pod {job.name}-x: container hook exited 3 (Error: precheck failed)" if job.failed else ""

    def delete_hook_job(self, namespace: str, name: str) -> None:
        if self.jobs.pop(f"{namespace}/{name}", None) is not None:
            self.jobs_deleted[f"{namespace}/{name}"] += 1

    def _api(self) -> None:
        """Refuse the request while the API is down (as a connection refused is seen by the engine)."""
        if self.api_down_until is not None and self.clock.now < self.api_down_until:
            self.api_refused += 1
            raise ApiDown("GET /readyz: no answer from the API server: Connection refused")

    def read_api_servers(self) -> ApiServers:
        return self.api_servers

    def wait_api_ready(self, timeout: float) -> tuple[bool, str]:
        if self.api_down_until is None or self.clock.now >= self.api_down_until:
            self.api_waits.append(0.0)
            return True, "ok"
        waited = min(timeout, (self.api_down_until - self.clock.now).total_seconds())
        self.clock.advance(waited)
        self.api_waits.append(waited)
        return self.clock.now >= self.api_down_until, "HTTP 503 ServiceUnavailable"

    def _durable_write(self) -> None:
        self._api()
        self.writes += 1
        if self.crash_on_write is not None and self.writes == self.crash_on_write:
            raise Crash(f"durable write {self.writes}")

    def write_status(self, name: str, status: Mapping[str, Any]) -> None:
        """A JSON merge patch of the status (null removes a field), as the real status subresource."""
        self._durable_write()
        self.status_writes.append(copy.deepcopy(dict(status)))
        stored = self.objects[name].setdefault("status", {})
        for key, value in copy.deepcopy(dict(status)).items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value

    def read_node_records(self, migration: NodeMigration) -> tuple[NodeRecord, ...]:
        records = [NodeRecord.from_storage(r) for o, r in self.children.values() if o == migration.name]
        return tuple(sorted(records, key=lambda r: r.name))

    def write_node_record(self, migration: NodeMigration, record: NodeRecord) -> None:
        self._durable_write()
        self.children[child_name(migration.name, record.name)] = (migration.name, record.for_storage())
        if (
            self.api_outage is not None
            and self.api_outage[0] == record.name
            and record.step == self.api_outage[1]
            and record.step_state == StepState.STARTED
        ):
            self.api_down_until = self.clock.now + dt.timedelta(seconds=self.api_outage[2])
            self.api_outage = None

    def event(
        self,
        migration: NodeMigration | MigrationRef,
        node: str | None,
        warning: bool,
        reason: EventReason,
        message: str,
    ) -> None:
        self.events.append((migration.name, node, warning, reason, message))

    def claim(self, migration: str, identity: str, ttl: float) -> bool:
        holder, until = self.leases.get(migration, ("", self.clock.now))
        if holder and holder != identity and until > self.clock.now:
            return False
        self.leases[migration] = (identity, self.clock.now + dt.timedelta(seconds=ttl))
        return True

    def read_cluster(self) -> Cluster:
        return Cluster(nodes=self.read_nodes(), pods=(), pdbs=(), controllers=())

    def write_report(self, migration: NodeMigration, data: Mapping[str, str]) -> str:
        self.reports[migration.name] = dict(data)
        return f"shimshift-system/{migration.name}-plan"


class ApiDown(KubeError):
    """No answer from the API server (its only instance is down): what ApiUnreachable is in production."""

    transient = True
    api_down = True


class ConnectionReset(KubeError):
    """What a dropped connection looks like to the engine: it heals, so the step is retried."""

    transient = True


class FakeNodes:
    """NodePort: each operation checks whether it is already done, and counts only real changes."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.state: dict[str, set[str]] = {}  # node -> operations whose change is in place
        self.changes: Counter[str] = Counter()  # "node:op" -> times the change was really made
        self.fail: dict[str, str] = {}  # node -> op that fails for good
        self.transient: Counter[str] = Counter()  # "node:op" -> transient failures still to serve
        self.crash_after: str | None = None  # "node:op": die right after making this change
        self.host_keys: dict[str, str] = {}  # node -> the host key fingerprint its connection verified
        self.closed = 0  # times the engine closed the port's connections
        self.material: RegistryMaterial | None = None  # what registry_material() answers
        self.node_facts: dict[str, NodeFacts] = {}  # node -> what its probe finds, instead of the default

    def _change(self, node: str, op: str) -> None:
        key = f"{node}:{op}"
        if self.transient[key] > 0:
            self.transient[key] -= 1
            raise ConnectionReset(f"node {node}: connection reset during {op}")
        if self.fail.get(node) == op:
            raise NodeError(node, f"{op} failed: containerd did not start (injected)")
        done = self.state.setdefault(node, set())
        if op not in done:
            done.add(op)
            self.changes[key] += 1
        if self.crash_after == key:
            self.crash_after = None
            raise Crash(key)

    def facts(self, node: str) -> NodeFacts:
        self._change(node, "facts")
        default = NodeFacts(node=node, docker_version="20.10.24", containerd_version="1.6.20")
        return self.node_facts.get(node, default)

    def prepare(self, node: str, facts: NodeFacts) -> None:
        if self.fail.get(node) == "prepare":
            raise RenderError(f"node {node}: the registry CA is refused (injected)")

    def registry_material(self) -> RegistryMaterial | None:
        return self.material

    def backup(self, node: str, facts: NodeFacts) -> str:
        self._change(node, "backup")
        return f"{keys.NODE_STATE_DIR}/backup"

    def configure(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "configure")

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        self._change(node, "images")
        return ImageCounts(transferred=3, bytes=3000)

    def recheck_images(
        self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None
    ) -> ImageCounts:
        self._change(node, "recheck")
        return ImageCounts(transferred=4, bytes=4000)  # one image the kubelet pulled after staging

    def switch(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "switch")
        self.cluster.nodes[node].runtime = "containerd://1.6.20"

    def verify(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "verify")

    def finish(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "finish")

    def commit(self, node: str, facts: NodeFacts) -> None:
        self._change(node, "commit")

    def undo(self, node: str, facts: NodeFacts | None) -> None:
        done = self.state.get(node, set())
        for op in sorted(done & {"configure", "images", "switch"}):  # one real undo per step
            self.changes[f"{node}:undo-{op}"] += 1
        done.difference_update({"configure", "images", "recheck", "switch"})
        self.changes[f"{node}:undo"] += 1
        if self.crash_after == f"{node}:undo":
            self.crash_after = None
            self.cluster.nodes[node].runtime = "docker://20.10.24"
            raise Crash(f"{node}:undo")
        self.cluster.nodes[node].runtime = "docker://20.10.24"

    def host_key_fingerprint(self, node: str) -> str:
        return self.host_keys.get(node, "")

    def close(self) -> None:
        self.closed += 1


def workers(count: int, **kw: Any) -> list[FakeNode]:
    return [FakeNode(f"w{i}", **kw) for i in range(1, count + 1)]


def with_phase(status: MigrationStatus, name: str) -> str:
    record = status.node(name)
    return str(record.phase) if record else "absent"


__all__ = [
    "Clock",
    "Crash",
    "FakeCluster",
    "FakeNode",
    "FakeNodes",
    "manifest",
    "replace",
    "with_phase",
    "workers",
]
