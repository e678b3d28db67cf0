"""The verify step's canary pod as values: its name, its labels, the token its log must hold, its
manifest, and what the API last said of it (`CanaryPod`).

The canary is a pod pinned to the switched node (`spec.nodeName`, so the scheduler and the cordon do
not stand in its way; it tolerates the cordon taint too, which kubelet admission and any
taint-enforcing webhook then accept), running `echo <token>` once under containerd. Its name and
labels are derived from the node alone, so a restart finds a leftover canary by label; its token from
the verify attempt, so a pod of an earlier attempt is never read as this one's. Pure: the Kubernetes
I/O is `shimshift.kube.canary`, the decisions `shimshift.steps.verify.canary`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shimshift.model import keys
from shimshift.model.nodestate import label_value

#: The canary's one container; what kubelet's Events and statuses name.
CONTAINER = "canary"


def canary_name(node: str) -> str:
    """The canary pod of `node`: `shimshift-canary-<hash>` (a valid pod name whatever the node's)."""
    return f"shimshift-canary-{hashlib.sha256(node.encode()).hexdigest()[:16]}"


def canary_selector(node: str | None = None) -> str:
    """The label selector of `node`'s canary pods (of every node's, without one)."""
    if node is None:
        return f"{keys.CANARY_LABEL}=true"
    return f"{keys.CANARY_LABEL}=true,{keys.CANARY_NODE_LABEL}={label_value(node)}"


def canary_token(migration_uid: str, node: str, attempt: str) -> str:
    """What the canary of this verify attempt (`attempt`: the step's recorded start) echoes."""
    digest = hashlib.sha256("\0".join((migration_uid, node, attempt)).encode()).hexdigest()[:24]
    return f"shimshift-canary-{digest}"


def canary_manifest(node: str, namespace: str, image: str, token: str, migration: str) -> dict[str, Any]:
    """The canary pod: pinned to `node`, tolerating its cordon, one container running `echo <token>`
    once (restartPolicy Never), as unprivileged as the restricted Pod Security level asks, small
    requests, no service account token, no service links."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": canary_name(node),
            "namespace": namespace,
            "labels": {
                keys.CANARY_LABEL: "true",
                keys.CANARY_NODE_LABEL: label_value(node),
                "app.kubernetes.io/managed-by": "shimshift",
                keys.MIGRATION_LABEL: label_value(migration),
            },
            "annotations": {keys.CANARY_NODE_ANNOTATION: node, keys.CANARY_TOKEN_ANNOTATION: token},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": CONTAINER,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["echo", token],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "32Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@dataclass(frozen=True)
class CanaryImage:
    """The image a node's canary runs, and why that one (for the plan report and the step's message)."""

    ref: str
    source: str


@dataclass(frozen=True)
class CanaryPod:
    """The canary pod as the API last showed it."""

    name: str
    token: str  # its CANARY_TOKEN_ANNOTATION
    created_at: str  # metadata.creationTimestamp
    phase: str = "Pending"
    #: the container's waiting state (e.g. ImagePullBackOff and kubelet's message)
    waiting_reason: str = ""
    waiting_message: str = ""
    #: the container's terminated state
    exit_code: int | None = None
    terminated_reason: str = ""
    terminated_message: str = ""
    #: the pod's own reason and message (e.g. an eviction, a node affinity refusal)
    reason: str = ""
    message: str = ""
    deleting: bool = False


def parse_canary(obj: dict[str, Any]) -> CanaryPod:
    """A Pod object as a `CanaryPod` (missing parts read as empty)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    containers = [c for c in status.get("containerStatuses") or () if isinstance(c, dict)]
    state = next((c.get("state") or {} for c in containers if c.get("name") == CONTAINER), {})
    waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
    code = terminated.get("exitCode")
    return CanaryPod(
        name=str(meta.get("name", "")),
        token=str((meta.get("annotations") or {}).get(keys.CANARY_TOKEN_ANNOTATION, "")),
        created_at=str(meta.get("creationTimestamp", "")),
        phase=str(status.get("phase") or "Pending"),
        waiting_reason=str(waiting.get("reason", "")),
        waiting_message=str(waiting.get("message", "")),
        exit_code=code if isinstance(code, int) else None,
        terminated_reason=str(terminated.get("reason", "")),
        terminated_message=str(terminated.get("message", "")),
        reason=str(status.get("reason", "")),
        message=str(status.get("message", "")),
        deleting=bool(meta.get("deletionTimestamp")),
    )
