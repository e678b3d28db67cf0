"""The parts of a cluster that are not the API server: a scheduler, a kubelet-like pod lifecycle,
and tiny ReplicaSet / StatefulSet / DaemonSet / Deployment and disruption controllers.

They exist so that a drain looks as it does on a real cluster: evicted ReplicaSet and StatefulSet
pods come back on another schedulable node, become Ready after a start-up delay, and
PodDisruptionBudget status follows. Every delay is multiplied by the cluster's time factor.
Controllers react to store events (coalesced with ``call_soon``); they never write from inside a
store listener.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from .cluster import Cluster
from .errors import ApiError
from .eviction import PDB_GK, PODS_GK, compute_budget
from .objects import deep, iso, labels_of, node_is_ready, owner_ref, pod_is_ready, tolerates, utcnow
from .selectors import LabelSelector
from .store import Event, Stored

logger = logging.getLogger(__name__)

NODES_GK = ("", "nodes")
# Pods bound to a node with this annotation set to "true" are left for that node's own kubelet to
# start (testbed/nodes' fake kubelet); graceful deletions still complete after the grace period.
EXTERNAL_KUBELET = "testbed.shimshift.io/external-kubelet"
WORKLOAD_GKS = {
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "deployments"),
}


def _registry_host(image: str) -> str:
    """The registry host of an image reference ("" for Docker Hub's short names)."""
    first, sep, _ = image.partition("/")
    return first.partition(":")[0] if sep and ("." in first or ":" in first or first == "localhost") else ""


@dataclass
class Controllers:
    cluster: Cluster
    pod_startup_seconds: float = 1.0
    simulate_kubelet: bool = True
    loop: asyncio.AbstractEventLoop | None = None
    _dirty_workloads: set[tuple[tuple[str, str], str, str]] = field(default_factory=set)
    _dirty_pdb_namespaces: set[str] = field(default_factory=set)
    _unscheduled: set[tuple[str, str]] = field(default_factory=set)
    _scheduled: bool = False
    _ip_counter: int = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cluster.store.listeners.append(self._on_event)
        self.cluster.on_graceful_delete = self._on_graceful_delete

    # --- event intake (no writes here) --------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        gk, (ns, name) = event.gk, event.key
        if gk == PODS_GK:
            self._dirty_pdb_namespaces.add(ns)
            pod = event.new.obj
            ref = next((r for r in pod["metadata"].get("ownerReferences") or () if r.get("controller")), None)
            if ref is not None:
                owner_gk = ("apps", ref.get("kind", "").lower() + "s")
                if owner_gk in WORKLOAD_GKS:
                    self._dirty_workloads.add((owner_gk, ns, ref.get("name", "")))
            if event.type != "DELETED" and not pod["metadata"].get("deletionTimestamp"):
                status = pod.get("status") or {}
                spec = pod.get("spec") or {}
                if status.get("phase", "Pending") == "Pending":
                    if not spec.get("nodeName"):
                        self._unscheduled.add((ns, name))
                    elif event.old is None or not (event.old.obj.get("spec") or {}).get("nodeName"):
                        self._later(
                            self.pod_startup_seconds,
                            self._start_pod,
                            ns,
                            name,
                            pod["metadata"].get("uid", ""),
                        )
        elif gk in WORKLOAD_GKS:
            self._dirty_workloads.add((gk, ns, name))
            if gk == ("apps", "replicasets") or gk == ("apps", "statefulsets"):
                for ref in event.new.meta.get("ownerReferences") or ():
                    if ref.get("kind") == "Deployment":
                        self._dirty_workloads.add((("apps", "deployments"), ns, ref.get("name", "")))
        elif gk == PDB_GK:
            self._dirty_pdb_namespaces.add(ns)
        elif gk == NODES_GK:
            for ds in self.cluster.store.all(("apps", "daemonsets")):
                self._dirty_workloads.add((("apps", "daemonsets"), ds.meta["namespace"], ds.meta["name"]))
            if self._unscheduled:
                self._schedule_soon()
        else:
            return
        self._schedule_soon()

    def _schedule_soon(self) -> None:
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            self.loop.call_soon(self._reconcile)

    def _later(self, seconds: float, fn: Any, *args: Any) -> None:
        if self.loop is not None:
            self.loop.call_later(max(0.0, seconds * self.cluster.time_factor), self._guarded, fn, *args)

    def _guarded(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiError as e:
            logger.debug("controller action %s%r failed: %s", getattr(fn, "__name__", fn), args, e)

    def _on_graceful_delete(self, namespace: str, name: str, seconds: float) -> None:
        if self.loop is not None:
            self.loop.call_later(
                max(0.0, seconds), self._guarded, self.cluster.finish_graceful_delete, namespace, name
            )

    # --- reconcile -------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        self._scheduled = False
        for _ in range(10):
            workloads, self._dirty_workloads = self._dirty_workloads, set()
            for gk, ns, name in sorted(workloads):
                self._guarded(self._reconcile_workload, gk, ns, name)
            unscheduled, self._unscheduled = self._unscheduled, set()
            for ns, name in sorted(unscheduled):
                self._guarded(self._bind, ns, name)
            if not self._dirty_workloads and not self._unscheduled:
                break
        namespaces, self._dirty_pdb_namespaces = self._dirty_pdb_namespaces, set()
        for ns in sorted(namespaces):
            self._guarded(self._update_budgets, ns)

    def _reconcile_workload(self, gk: tuple[str, str], ns: str, name: str) -> None:
        stored = self.cluster.store.get(gk, ns, name)
        if stored is None or stored.meta.get("deletionTimestamp"):
            return
        if gk == ("apps", "replicasets"):
            self._reconcile_replicaset(stored)
        elif gk == ("apps", "statefulsets"):
            self._reconcile_statefulset(stored)
        elif gk == ("apps", "daemonsets"):
            self._reconcile_daemonset(stored)
        else:
            self._reconcile_deployment(stored)

    def _owned_pods(self, owner: Stored) -> list[Stored]:
        out = []
        for gk, (ns, name) in self.cluster.store.dependents(owner.meta["uid"]):
            if gk == PODS_GK and (pod := self.cluster.store.get(gk, ns, name)) is not None:
                out.append(pod)
        return out

    def _new_pod(
        self,
        owner: Stored,
        name: str | None,
        node: str | None = None,
        extra_labels: dict[str, str] | None = None,
    ) -> None:
        template = deep((owner.obj.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
        pod_meta: dict[str, Any] = {
            "labels": labels,
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [owner_ref(owner.obj)],
        }
        if name:
            pod_meta["name"] = name
        else:
            pod_meta["generateName"] = owner.meta["name"] + "-"
        spec = template.get("spec") or {}
        if node:
            spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        self.cluster.create(self.cluster.rt("", "v1", "pods"), owner.meta["namespace"], pod)

    def _active(self, pods: list[Stored]) -> list[Stored]:
        return [
            p
            for p in pods
            if not p.meta.get("deletionTimestamp")
            and (p.obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def _write_status(self, gk: tuple[str, str], stored: Stored, status: dict[str, Any]) -> None:
        current = stored.obj.get("status") or {}
        merged = {**current, **status, "observedGeneration": stored.meta.get("generation", 1)}
        if merged != current:
            rt = self.cluster.registry.storage_type(*gk)
            if rt is not None:
                self.cluster.store.put(gk, {**stored.obj, "metadata": dict(stored.meta), "status": merged})

    def _reconcile_replicaset(self, rs: Stored) -> None:
        want = int((rs.obj.get("spec") or {}).get("replicas", 1))
        active = self._active(self._owned_pods(rs))
        for _ in range(want - len(active)):
            self._new_pod(rs, None)
        for extra in sorted(active, key=lambda p: p.meta["creationTimestamp"], reverse=True)[
            : max(0, len(active) - want)
        ]:
            self.cluster.delete(
                self.cluster.rt("", "v1", "pods"), extra.meta["namespace"], extra.meta["name"]
            )
        active = self._active(self._owned_pods(rs))
        ready = sum(1 for p in active if pod_is_ready(p.obj))
        self._write_status(
            ("apps", "replicasets"),
            rs,
            {
                "replicas": len(active),
                "fullyLabeledReplicas": len(active),
                "readyReplicas": ready,
                "availableReplicas": ready,
            },
        )

    def _reconcile_statefulset(self, sts: Stored) -> None:
        want = int((sts.obj.get("spec") or {}).get("replicas", 1))
        name, ns = sts.meta["name"], sts.meta["namespace"]
        for i in range(want):
            pod_name = f"{name}-{i}"
            if self.cluster.store.get(PODS_GK, ns, pod_name) is None:
                self._new_pod(
                    sts,
                    pod_name,
                    extra_labels={
                        "statefulset.kubernetes.io/pod-name": pod_name,
                        "apps.kubernetes.io/pod-index": str(i),
                    },
                )
        pods = self._active(self._owned_pods(sts))
        ready = sum(1 for p in pods if pod_is_ready(p.obj))
        self._write_status(
            ("apps", "statefulsets"),
            sts,
            {
                "replicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": len(pods),
                "updatedReplicas": len(pods),
            },
        )

    def _reconcile_daemonset(self, ds: Stored) -> None:
        template_spec = ((ds.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        node_selector = template_spec.get("nodeSelector") or {}
        pods = self._active(self._owned_pods(ds))
        by_node = {(p.obj.get("spec") or {}).get("nodeName"): p for p in pods}
        wanted = [
            n
            for n in self.cluster.store.all(NODES_GK)
            if all(labels_of(n.obj).get(k) == v for k, v in node_selector.items())
            and not n.meta.get("deletionTimestamp")
        ]
        for node in wanted:
            if node.meta["name"] not in by_node:
                self._new_pod(ds, None, node=node.meta["name"])
        pods = self._active(self._owned_pods(ds))
        ready = sum(1 for p in pods if pod_is_ready(p.obj))
        self._write_status(
            ("apps", "daemonsets"),
            ds,
            {
                "desiredNumberScheduled": len(wanted),
                "currentNumberScheduled": len(pods),
                "numberReady": ready,
                "updatedNumberScheduled": len(pods),
                "numberAvailable": ready,
                "numberMisscheduled": 0,
            },
        )

    def _reconcile_deployment(self, dep: Stored) -> None:
        spec = dep.obj.get("spec") or {}
        template = spec.get("template") or {}
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        pod_hash = "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]
        ns, name = dep.meta["namespace"], dep.meta["name"]
        rs_name = f"{name}-{pod_hash}"
        rs_rt = self.cluster.rt("apps", "v1", "replicasets")
        rs = self.cluster.store.get(rs_rt.gk, ns, rs_name)
        replicas = int(spec.get("replicas", 1))
        if rs is None:
            tmpl = deep(template)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
            selector = deep(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            self.cluster.create(
                rs_rt,
                ns,
                {
                    "metadata": {
                        "name": rs_name,
                        "labels": {**(tmpl["metadata"]["labels"])},
                        "ownerReferences": [owner_ref(dep.obj)],
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
                },
            )
            rs = self.cluster.store.get(rs_rt.gk, ns, rs_name)
        elif int((rs.obj.get("spec") or {}).get("replicas", 1)) != replicas:
            self.cluster.patch(
                rs_rt, ns, rs_name, "application/merge-patch+json", {"spec": {"replicas": replicas}}
            )
        for gk, (dns, dname) in self.cluster.store.dependents(dep.meta["uid"]):
            if gk == rs_rt.gk and dname != rs_name:
                self.cluster.delete(rs_rt, dns, dname)
        status = (rs.obj.get("status") or {}) if rs is not None else {}
        ready = int(status.get("readyReplicas", 0))
        self._write_status(
            ("apps", "deployments"),
            dep,
            {
                "replicas": int(status.get("replicas", 0)),
                "updatedReplicas": int(status.get("replicas", 0)),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": max(0, replicas - ready),
                "conditions": self._deployment_conditions(dep, ready >= replicas, rs_name),
            },
        )

    def _deployment_conditions(self, dep: Stored, complete: bool, rs_name: str) -> list[dict[str, Any]]:
        """Available and Progressing, as the deployment controller sets them (helm --wait reads them)."""
        old = {c.get("type"): c for c in (dep.obj.get("status") or {}).get("conditions") or ()}
        now = iso(utcnow())
        wanted = [
            (
                "Available",
                "True" if complete else "False",
                "MinimumReplicasAvailable" if complete else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if complete
                else "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{rs_name}" is progressing.',
            ),
        ]
        out = []
        for ctype, status, reason, message in wanted:
            prev = old.get(ctype) or {}
            same = prev.get("status") == status and prev.get("reason") == reason
            out.append(
                {
                    "type": ctype,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": prev.get("lastUpdateTime", now) if same else now,
                    "lastTransitionTime": prev.get("lastTransitionTime", now)
                    if prev.get("status") == status
                    else now,
                }
            )
        return out

    # --- scheduler and kubelet -------------------------------------------------------------------

    def _bind(self, ns: str, name: str) -> None:
        pod = self.cluster.store.get(PODS_GK, ns, name)
        if pod is None or (pod.obj.get("spec") or {}).get("nodeName") or pod.meta.get("deletionTimestamp"):
            return
        node = self.pick_node(pod.obj)
        rt = self.cluster.rt("", "v1", "pods")
        if node is None:
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/N nodes are available: no schedulable node matches.",
                "lastTransitionTime": iso(utcnow()),
            }
            if (pod.obj.get("status") or {}).get("conditions") != [cond]:
                self.cluster.patch(
                    rt,
                    ns,
                    name,
                    "application/merge-patch+json",
                    {"status": {"conditions": [cond]}},
                    subresource="status",
                )
            return
        spec = {**pod.obj.get("spec", {}), "nodeName": node}
        status = {
            **(pod.obj.get("status") or {}),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": iso(utcnow())}],
        }
        self.cluster.store.put(
            PODS_GK, {**pod.obj, "metadata": dict(pod.meta), "spec": spec, "status": status}
        )

    def pick_node(self, pod: dict[str, Any]) -> str | None:
        node_selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        bucket = self.cluster.store.buckets.get(PODS_GK)
        load = bucket.index.get("spec.nodeName", {}) if bucket else {}
        best: tuple[int, str] | None = None
        for node in self.cluster.store.all(NODES_GK):
            nspec = node.obj.get("spec") or {}
            if (
                nspec.get("unschedulable")
                or node.meta.get("deletionTimestamp")
                or not node_is_ready(node.obj)
            ):
                continue
            if not LabelSelector.from_struct({"matchLabels": node_selector}).matches(labels_of(node.obj)):
                continue
            if any(
                t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t)
                for t in nspec.get("taints") or ()
            ):
                continue
            candidate = (len(load.get(node.meta["name"], ())), node.meta["name"])
            if best is None or candidate < best:
                best = candidate
        return None if best is None else best[1]

    def _start_pod(self, ns: str, name: str, uid: str) -> None:
        pod = self.cluster.store.get(PODS_GK, ns, name)
        if pod is None or pod.meta.get("uid") != uid or pod.meta.get("deletionTimestamp"):
            return
        status = pod.obj.get("status") or {}
        node_name = (pod.obj.get("spec") or {}).get("nodeName")
        if status.get("phase", "Pending") != "Pending" or not node_name:
            return
        node = self.cluster.store.get(NODES_GK, "", node_name)
        if node is None or not self.simulate_kubelet:
            return
        if (node.meta.get("annotations") or {}).get(EXTERNAL_KUBELET) == "true":
            return  # a real (fake-node) kubelet reports this node's pods
        self._ip_counter += 1
        now = iso(utcnow())
        host_ip = next(
            (
                a["address"]
                for a in (node.obj.get("status") or {}).get("addresses") or ()
                if a.get("type") == "InternalIP"
            ),
            "10.0.0.1",
        )
        pod_ip = f"10.244.{(self._ip_counter // 250) % 250}.{self._ip_counter % 250 + 2}"
        containers = (pod.obj.get("spec") or {}).get("containers") or []
        new_status = {
            **status,
            "phase": "Running",
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "containerStatuses": [
                {
                    "name": c.get("name", ""),
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": "containerd://"
                    + hashlib.sha256((uid + c.get("name", "")).encode()).hexdigest(),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
        new_status = self._run_once(ns, name, pod.obj, new_status, now)
        self.cluster.store.put(PODS_GK, {**pod.obj, "metadata": dict(pod.meta), "status": new_status})

    def _run_once(
        self, ns: str, name: str, pod: dict[str, Any], status: dict[str, Any], now: str
    ) -> dict[str, Any]:
        """What the two things this kubelet stand-in really runs become: an image from a registry under
        `.invalid` (RFC 6761: never resolves) cannot be pulled (Pending, ImagePullBackOff, a Warning
        Event as kubelet posts); a `restartPolicy: Never` pod whose every container's command is `echo`
        runs to completion (Succeeded, exit 0) with the echoed words as its log. Any other pod: Running."""
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        unpullable = [c for c in containers if _registry_host(str(c.get("image", ""))).endswith(".invalid")]
        if unpullable:
            image = str(unpullable[0].get("image", ""))
            host = _registry_host(image)
            self.cluster.create(
                self.cluster.rt("", "v1", "events"),
                ns,
                {
                    "metadata": {"generateName": f"{name}.", "namespace": ns},
                    "involvedObject": {"kind": "Pod", "name": name, "namespace": ns, "apiVersion": "v1"},
                    "type": "Warning",
                    "reason": "Failed",
                    "message": f'Failed to pull image "{image}": dial tcp: lookup {host}: no such host',
                    "source": {"component": "kubelet"},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                },
            )
            waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            return {
                **status,
                "phase": "Pending",
                "conditions": [
                    {**c, "status": "False"} if c["type"] in ("Ready", "ContainersReady") else c
                    for c in status["conditions"]
                ],
                "containerStatuses": [
                    {**cs, "ready": False, "started": False, "state": {"waiting": waiting}}
                    for cs in status["containerStatuses"]
                ],
            }
        commands = [c.get("command") or [] for c in containers]
        if not containers or spec.get("restartPolicy") != "Never" or any(c[:1] != ["echo"] for c in commands):
            return status
        self.cluster.logs[(ns, name)] = "".join(" ".join(map(str, c[1:])) + "\n" for c in commands)
        done = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
        return {
            **status,
            "phase": "Succeeded",
            "conditions": [
                {**c, "status": "False", "reason": "PodCompleted"}
                if c["type"] in ("Ready", "ContainersReady")
                else c
                for c in status["conditions"]
            ],
            "containerStatuses": [
                {**cs, "ready": False, "started": False, "state": {"terminated": done}}
                for cs in status["containerStatuses"]
            ],
        }

    def _update_budgets(self, ns: str) -> None:
        bucket = self.cluster.store.buckets.get(PDB_GK)
        if bucket is None:
            return
        for pdb in list(bucket.by_ns.get(ns, {}).values()):
            budget = compute_budget(self.cluster.store, pdb.obj)
            current = pdb.obj.get("status") or {}
            status = {**current, **budget.status(pdb.meta.get("generation", 1))}
            status.setdefault("disruptedPods", {})
            cond = {
                "type": "DisruptionAllowed",
                "status": "True" if budget.disruptions_allowed > 0 else "False",
                "reason": "SufficientPods" if budget.disruptions_allowed > 0 else "InsufficientPods",
                "message": budget.error or "",
                "observedGeneration": pdb.meta.get("generation", 1),
            }
            old_cond = next(
                (c for c in current.get("conditions") or () if c.get("type") == "DisruptionAllowed"), None
            )
            if old_cond is None or any(old_cond.get(k) != v for k, v in cond.items()):
                cond["lastTransitionTime"] = iso(utcnow())
                status["conditions"] = [cond]
            if status != current:
                self.cluster.store.put(PDB_GK, {**pdb.obj, "metadata": dict(pdb.meta), "status": status})
