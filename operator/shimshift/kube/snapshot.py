"""Read what a plan needs from a live cluster: nodes, pods, PDBs, workload controllers and RuntimeClasses.
Read-only.

Every list is paginated (`limit`/`continue`) so a 150,000-pod cluster is read in bounded pages, and
`managedFields` are dropped since no plan reads them. Secrets and ConfigMaps are never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shimshift.kube.api import Kube, NotFound, load_api_client

#: snapshot file name -> (list path, kind of its items)
RESOURCES: Mapping[str, tuple[str, str]] = {
    "nodes": ("/api/v1/nodes", "Node"),
    "pods": ("/api/v1/pods", "Pod"),
    "poddisruptionbudgets": ("/apis/policy/v1/poddisruptionbudgets", "PodDisruptionBudget"),
    "daemonsets": ("/apis/apps/v1/daemonsets", "DaemonSet"),
    "replicasets": ("/apis/apps/v1/replicasets", "ReplicaSet"),
    "deployments": ("/apis/apps/v1/deployments", "Deployment"),
    "statefulsets": ("/apis/apps/v1/statefulsets", "StatefulSet"),
    "jobs": ("/apis/batch/v1/jobs", "Job"),
    "runtimeclasses": ("/apis/node.k8s.io/v1/runtimeclasses", "RuntimeClass"),
}
PAGE = 500


def list_all(kube: Kube, path: str, kind: str) -> list[dict[str, Any]]:
    """Every object at `path`, page by page, each with its `kind` set (list items lack it)."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
        page = kube.request("GET", path, query=query)
        for item in page.get("items") or ():
            item.setdefault("kind", kind)
            (item.get("metadata") or {}).pop("managedFields", None)
            items.append(item)
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return items


#: Resources a plan can do without: a cluster (or the API emulator) that does not serve them has none.
OPTIONAL = frozenset(RESOURCES) - {"nodes", "pods"}


def read_cluster(kube: Kube) -> dict[str, list[dict[str, Any]]]:
    """The raw objects of a snapshot, keyed by snapshot file name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (path, kind) in RESOURCES.items():
        try:
            out[name] = list_all(kube, path, kind)
        except NotFound:
            if name not in OPTIONAL:
                raise
            out[name] = []
    return out


def read_cluster_from(kubeconfig: str | None, context: str | None) -> dict[str, list[dict[str, Any]]]:
    """`read_cluster` on the cluster of `kubeconfig`/`context` (or $KUBECONFIG, or in-cluster)."""
    kube = Kube(load_api_client(kubeconfig, context))
    try:
        return read_cluster(kube)
    finally:
        kube.close()
