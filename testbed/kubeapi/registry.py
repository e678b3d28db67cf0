"""Which resource types the emulator serves, and the discovery documents that describe them.

Built-in types are declared here; CRDs add types at runtime (``register_crd``), and discovery
(``/api``, ``/apis``, ``/apis/G/V``) is always computed from the live registry, so clients that
re-discover after creating a CRD find the new resource as they would on a real cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-shimshift-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    # CRD-only facts
    crd_name: str | None = None
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    storage_version: str = ""
    selectable_fields: frozenset[str] = frozenset()
    # strategic merge patch is only defined for built-in types
    strategic: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def gk(self) -> tuple[str, str]:
        """The storage key: one bucket per group+plural, whatever version a client asks for."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _rt(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *short: str,
    sub: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group,
        version,
        plural,
        kind,
        namespaced,
        kind.lower(),
        tuple(short),
        cats,
        frozenset(sub),
        storage_version=version,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _rt("", "v1", "namespaces", "Namespace", False, "ns", sub=("status", "finalize")),
    _rt("", "v1", "nodes", "Node", False, "no", sub=("status",)),
    _rt("", "v1", "pods", "Pod", True, "po", sub=("status", "eviction", "binding", "log"), cats=("all",)),
    _rt("", "v1", "events", "Event", True, "ev"),
    _rt("", "v1", "configmaps", "ConfigMap", True, "cm"),
    _rt("", "v1", "secrets", "Secret", True),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", True, "sa"),
    _rt("", "v1", "services", "Service", True, "svc", sub=("status",), cats=("all",)),
    _rt("", "v1", "endpoints", "Endpoints", True, "ep"),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "pvc", sub=("status",)),
    _rt("", "v1", "replicationcontrollers", "ReplicationController", True, "rc", sub=("status", "scale")),
    _rt("apps", "v1", "daemonsets", "DaemonSet", True, "ds", sub=("status",), cats=("all",)),
    _rt("apps", "v1", "replicasets", "ReplicaSet", True, "rs", sub=("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "deployments", "Deployment", True, "deploy", sub=("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "statefulsets", "StatefulSet", True, "sts", sub=("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "pdb", sub=("status",)),
    _rt("coordination.k8s.io", "v1", "leases", "Lease", True),
    _rt("events.k8s.io", "v1", "events", "Event", True, "ev"),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        "crd",
        "crds",
        sub=("status",),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
)

# Groups whose preferred version we advertise in /apis, in this order (real servers list core
# groups first, CRD groups after).
_SUB_KIND = {
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
    "scale": ("autoscaling", "v1", "Scale"),
}


@dataclass
class Registry:
    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls) -> Registry:
        reg = cls()
        for rt in BUILTINS:
            reg.add(rt)
        return reg

    def add(self, rt: ResourceType) -> None:
        self.types[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [rt for rt in self.types.values() if rt.crd_name == crd_name]
        for rt in gone:
            del self.types[(rt.group, rt.version, rt.plural)]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def storage_type(self, group: str, plural: str) -> ResourceType | None:
        for rt in self.types.values():
            if rt.group == group and rt.plural == plural and rt.version == rt.storage_version:
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    # --- discovery documents -------------------------------------------------------------------

    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def _group_doc(self, group: str, versions: list[str]) -> dict[str, Any]:
        ordered = sorted(versions, key=_version_priority, reverse=True)
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> dict[str, Any]:
        groups = [self._group_doc(g, vs) for g, vs in self.group_versions().items() if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(group)
        if not group or not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group, versions)}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        rts = [rt for rt in self.types.values() if rt.group == group and rt.version == version]
        if not rts:
            return None
        resources: list[dict[str, Any]] = []
        for rt in rts:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(ALL_VERBS),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in sorted(rt.subresources):
                sub_entry: dict[str, Any] = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub in _SUB_KIND:
                    sgroup, sversion, skind = _SUB_KIND[sub]
                    sub_entry.update(
                        {
                            "group": sgroup,
                            "version": sversion,
                            "kind": skind,
                            "verbs": ["create"] if sub != "scale" else ["get", "patch", "update"],
                        }
                    )
                elif sub == "log":
                    sub_entry["verbs"] = ["get"]
                elif sub == "finalize":
                    sub_entry["verbs"] = ["update"]
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by numbers."""

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))
