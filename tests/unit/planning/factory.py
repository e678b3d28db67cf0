"""Small builders of raw API objects and typed specs for planning tests (plain dicts, as the API sends)."""

from __future__ import annotations

from typing import Any

from shimshift.model import parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.cluster import Cluster, build_cluster
from shimshift.resources import load_crd


def spec(**fields: Any) -> NodeMigrationSpec:
    """A defaulted, validated spec: every node by name unless `nodeSelector`/`nodeNames` are given."""
    body: dict[str, Any] = {"nodeSelector": {"matchLabels": {}}, **fields}
    body.setdefault("ssh", {"privateKeySecretRef": {"name": "k"}, "knownHostsSecretRef": {"name": "h"}})
    manifest = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "t"},
        "spec": body,
    }
    return parse_nodemigration(manifest, load_crd()).spec


def node(
    name: str,
    *,
    cp: bool = False,
    runtime: str = "docker://20.10.24",
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
    ready: bool = True,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    all_labels["node-role.kubernetes.io/control-plane" if cp else "node-role.kubernetes.io/worker"] = ""
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"containerRuntimeVersion": runtime, "kubeletVersion": "v1.23.17"},
        },
    }


def pod(
    name: str,
    node_name: str = "n1",
    *,
    ns: str = "default",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-1"),
    phase: str = "Running",
    ready: bool = True,
    empty_dir: bool = False,
    mirror: bool = False,
    deleting: bool = False,
    grace: int = 30,
    host_paths: dict[str, str] | None = None,
    image: str = "nginx:1.25",
    privileged: bool = False,
    command: list[str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "labels": labels or {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-15T09:00:00Z"
    volumes: list[dict[str, Any]] = []
    mounts = []
    if empty_dir:
        volumes.append({"name": "scratch", "emptyDir": {}})
    for vol, path in (host_paths or {}).items():
        volumes.append({"name": vol, "hostPath": {"path": path}})
        mounts.append({"name": vol, "mountPath": f"/mnt/{vol}"})
    c: dict[str, Any] = {"name": "main", "image": image, "volumeMounts": mounts}
    if privileged:
        c["securityContext"] = {"privileged": True}
    if command:
        c["command"] = command
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "nodeName": node_name,
            "containers": [c],
            "volumes": volumes,
            "terminationGracePeriodSeconds": grace,
        },
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pdb(
    name: str,
    *,
    ns: str = "default",
    labels: dict[str, str] | None = None,
    selector: bool = True,
    **budget: Any,
) -> dict[str, Any]:
    spec_: dict[str, Any] = dict(budget)
    if selector:
        spec_["selector"] = {"matchLabels": labels if labels is not None else {"app": "web"}}
    return {"kind": "PodDisruptionBudget", "metadata": {"namespace": ns, "name": name}, "spec": spec_}


def controller(
    kind: str,
    name: str,
    *,
    ns: str = "default",
    replicas: int | None = 3,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    spec_: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    return {"kind": kind, "metadata": meta, "spec": spec_}


def web_deployment(replicas: int = 3, ns: str = "default") -> list[dict[str, Any]]:
    """Deployment web owning ReplicaSet web-1: the owner chain of `pod()`'s default owner."""
    return [
        controller("Deployment", "web", ns=ns, replicas=replicas),
        controller("ReplicaSet", "web-1", ns=ns, replicas=replicas, owner=("Deployment", "web")),
    ]


def cluster(
    nodes: list[dict[str, Any]] | None = None,
    pods: list[dict[str, Any]] | None = None,
    pdbs: list[dict[str, Any]] | None = None,
    controllers: list[dict[str, Any]] | None = None,
    runtime_classes: list[dict[str, Any]] | None = None,
) -> Cluster:
    return build_cluster(
        [node("n1")] if nodes is None else nodes,
        pods or [],
        pdbs or [],
        controllers or [],
        runtime_classes or [],
    )


def runtime_class(name: str, handler: str, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """A RuntimeClass as the API sends it (node.k8s.io/v1: `handler` at the top level)."""
    raw: dict[str, Any] = {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": name},
        "handler": handler,
    }
    if node_selector is not None:
        raw["scheduling"] = {"nodeSelector": node_selector}
    return raw
