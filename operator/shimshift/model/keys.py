"""Every name shimshift shares with the cluster or a node: API coordinates, labels, annotations,
finalizers, step ids and paths on the node. One module, so a reader finds them all in one place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "shimshift.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "NodeMigration"
PLURAL: Final = "nodemigrations"
SHORT_NAME: Final = "nm"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

#: One object per (NodeMigration, node) it started: the node's step record, in its status subresource.
NODE_KIND: Final = "NodeMigrationNode"
NODE_PLURAL: Final = "nodemigrationnodes"
NODE_SHORT_NAME: Final = "nmn"
NODE_CRD_NAME: Final = f"{NODE_PLURAL}.{GROUP}"

#: On a NodeMigrationNode: the NodeMigration and the Node it records (a hash when a name is too long
#: or not a valid label value; the object's spec always holds both names in full).
MIGRATION_LABEL: Final = "shimshift.io/migration"
NODE_LABEL: Final = "shimshift.io/node"
#: On a NodeMigrationNode: when the operator started the node (its clock), set at the child's creation,
#: so the record reads the same start before and after its first status write (creationTimestamp is
#: the API server's clock, which may differ).
STARTED_AT_ANNOTATION: Final = "shimshift.io/started-at"

#: On a NodeMigration: held until the node in flight is finished or rolled back, so deleting the object
#: never abandons a node cordoned or half-migrated.
FINALIZER: Final = "shimshift.io/finalizer"

#: On a Node: the NodeMigration that owns it right now (the node lock). Taken over only when the owner
#: no longer exists.
LOCK_ANNOTATION: Final = "shimshift.io/locked-by"

#: On a Node, the cluster autoscaler's own annotation: while "true" it never scales the node down.
#: shimshift sets it while a node is in flight (with the lock) unless the node already carries it.
SCALE_DOWN_DISABLED_ANNOTATION: Final = "cluster-autoscaler.kubernetes.io/scale-down-disabled"

#: On a Node: set with SCALE_DOWN_DISABLED_ANNOTATION, naming the NodeMigration that set it, so only a
#: value shimshift wrote is removed when the lock is released; an admin's value is never touched.
SCALE_DOWN_DISABLED_BY_ANNOTATION: Final = "shimshift.io/scale-down-disabled-by"

#: On a NodeMigration: "<identity> <expiry, RFC 3339>" of the operator replica acting on it (a lease),
#: so two replicas never act on one NodeMigration, even while kopf peering is switching over.
LEASE_ANNOTATION: Final = "shimshift.io/acting-replica"

#: On a Node: set when shimshift cordoned it, so a restart knows the cordon is ours to undo. An admin's
#: cordon never carries it and is never undone.
CORDONED_BY_ANNOTATION: Final = "shimshift.io/cordoned-by"

#: On a Node: "<key type> SHA256:<fingerprint>" of its SSH host key, pinned the first time shimshift
#: connected under `spec.ssh.hostKeyPolicy: AcceptNew`; any other key is refused from then on (every
#: NodeMigration, every operator restart). Remove it to re-key a node on purpose (a reinstalled node);
#: a Node deleted and registered again has none and is learned anew. Hosts listed in known_hosts are
#: checked against known_hosts instead, and `Strict` never reads or writes it.
HOST_KEY_ANNOTATION: Final = "shimshift.io/ssh-host-key"

#: On a Node, after success: the completion label; a restart or a new NodeMigration skips the node.
RUNTIME_LABEL: Final = "shimshift.io/runtime"
RUNTIME_LABEL_VALUE: Final = "containerd"

#: On a Node (any value): a request to roll the node back to Docker after its migration Succeeded, acted
#: on by the NodeMigration that migrated it while its rollback window is open (no `spec.commit` yet),
#: and removed by shimshift once handled (only when the value is still the one it acted on). Refused,
#: with the reason in the UndoRefused condition, for a node not Succeeded or already committed.
UNDO_ANNOTATION: Final = "shimshift.io/undo"

#: On a Node, as a label or an annotation (any value): an admin's hold. A NodeMigration does not start
#: the node (it is Skipped, with the value as the reason when there is one); a node already in flight
#: finishes. Remove it and the node joins the rollout again.
HOLD_KEY: Final = "shimshift.io/hold"
#: How the skip reason of a held node begins (the hold's value follows after ": ").
HOLD_REASON: Final = f"held by {HOLD_KEY}"
#: How the skip reason of a node that runs the cluster's only API server begins (`planning.apiserver`).
SOLE_API_SERVER_REASON: Final = "runs the cluster's only API server"

#: On a pod: the names of its emptyDir volumes (comma-separated) that hold nothing worth keeping, so
#: the drain evicts the pod without spec.drain.deleteEmptyDirData (as the cluster autoscaler's
#: safe-to-evict-local-volumes). The chart's operator pod names its scratch /tmp: the drain of the
#: node the operator runs on must not stop at the operator itself.
DISPOSABLE_EMPTY_DIRS: Final = "shimshift.io/disposable-empty-dirs"

#: On the verify step's canary pod (in the operator's namespace): the label every canary carries, so a
#: restart finds a leftover one and deletes it; the label naming its node (a hash when the node's name
#: is not a valid label value); the annotations with the node's full name and the token its log must
#: hold (chosen per verify attempt, so a pod from an earlier attempt is never taken for this one's).
CANARY_LABEL: Final = "shimshift.io/canary"
CANARY_NODE_LABEL: Final = "shimshift.io/canary-node"
CANARY_NODE_ANNOTATION: Final = "shimshift.io/canary-node"
CANARY_TOKEN_ANNOTATION: Final = "shimshift.io/canary-token"  # noqa: S105 - not a secret

#: On a hook Job (spec.rollout.hooks) and its pods: the label every hook Job carries (its value: pre or
#: post; with MIGRATION_LABEL and NODE_LABEL), and the annotations with the node's and the NodeMigration's
#: full names and the NodeMigration's uid (a Job of an earlier NodeMigration of the same name is not
#: adopted, but replaced).
HOOK_LABEL: Final = "shimshift.io/hook"
HOOK_NODE_ANNOTATION: Final = "shimshift.io/hook-node"
HOOK_MIGRATION_ANNOTATION: Final = "shimshift.io/hook-migration"
HOOK_MIGRATION_UID_ANNOTATION: Final = "shimshift.io/hook-migration-uid"

#: On a Node, kubeadm's record of the CRI socket; updated when present (kubeadm upgrade reads it).
CRI_SOCKET_ANNOTATION: Final = "kubeadm.alpha.kubernetes.io/cri-socket"
#: On a Node: the cri-socket annotation's value before the finish step changed it, set in the same
#: write; a rollback (automatic, or an undo on request of a Succeeded node) puts it back, and the
#: commit that ends the node's rollback window removes it.
CRI_SOCKET_BEFORE_ANNOTATION: Final = "shimshift.io/cri-socket-before"

#: Labels that mark a control-plane node (current and pre-1.24 names).
CONTROL_PLANE_LABELS: Final = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")

#: ConfigMap label linking a plan report to its NodeMigration.
REPORT_LABEL: Final = "shimshift.io/report-for"

#: Where backups and step records live on a node.
NODE_STATE_DIR: Final = "/var/lib/shimshift"

CONTAINERD_SOCKET: Final = "/run/containerd/containerd.sock"
CONTAINERD_ENDPOINT: Final = f"unix://{CONTAINERD_SOCKET}"
CONTAINERD_CONFIG: Final = "/etc/containerd/config.toml"
CONTAINERD_CERTS_DIR: Final = "/etc/containerd/certs.d"
#: The systemd drop-in shimshift writes with the HTTP proxy Docker used (model.proxy, rendering.proxy).
CONTAINERD_PROXY_DROPIN: Final = "/etc/systemd/system/containerd.service.d/http-proxy.conf"
#: The systemd drop-in shimshift writes with the limits the containers ran with under Docker
#: (model.unitlimits, rendering.limits).
CONTAINERD_LIMITS_DROPIN: Final = "/etc/systemd/system/containerd.service.d/limits.conf"
#: The base OCI spec of containerd's CRI runtimes shimshift writes with Docker's default-ulimits
#: (rendering.ulimits), named by each runtime's base_runtime_spec.
CONTAINERD_BASE_SPEC: Final = "/etc/containerd/cri-base.json"
CONTAINERD_K8S_NAMESPACE: Final = "k8s.io"
DOCKER_DAEMON_JSON: Final = "/etc/docker/daemon.json"
DOCKER_CERTS_DIR: Final = "/etc/docker/certs.d"
DOCKER_SOCKET: Final = "/var/run/docker.sock"


class StepId(StrEnum):
    """The per-node step machine (docs/architecture.md), in execution order."""

    FACTS = "facts"
    LOCK = "lock"
    #: spec.rollout.hooks.pre's Job, before anything changes for the node (only when configured)
    PRE_HOOK = "prehook"
    CORDON = "cordon"
    DRAIN = "drain"
    BACKUP = "backup"
    CONFIGURE = "configure"
    IMAGES = "images"
    RECHECK = "recheck"
    SWITCH = "switch"
    VERIFY = "verify"
    #: spec.rollout.hooks.post's Job, after verify and before the uncordon (only when configured)
    POST_HOOK = "posthook"
    FINISH = "finish"
    ROLLBACK = "rollback"
    #: after success, on request: cordon and drain again, then `rollback` puts Docker back
    UNDO = "undo"
    #: after success, once `spec.commit`: Docker per `spec.docker`, the backups removed (no undo)
    COMMIT = "commit"
    DONE = "done"


#: The default order (`spec.staging: BeforeCordon`): the node is backed up, containerd configured and
#: Docker's images staged into it while the node still serves (Docker runs on that same containerd and its
#: containers survive the restart: the shims hold them); only then cordon, drain, a re-check that imports
#: what the kubelet pulled meanwhile, and the switch. Rollback and done are not part of the sequence.
STEP_ORDER: Final = (
    StepId.FACTS,
    StepId.LOCK,
    StepId.BACKUP,
    StepId.CONFIGURE,
    StepId.IMAGES,
    StepId.CORDON,
    StepId.DRAIN,
    StepId.RECHECK,
    StepId.SWITCH,
    StepId.VERIFY,
    StepId.FINISH,
)

#: The order of `spec.staging: AfterCordon`: cordon and drain first, everything else while drained.
STEP_ORDER_AFTER_CORDON: Final = (
    StepId.FACTS,
    StepId.LOCK,
    StepId.CORDON,
    StepId.DRAIN,
    StepId.BACKUP,
    StepId.CONFIGURE,
    StepId.IMAGES,
    StepId.SWITCH,
    StepId.VERIFY,
    StepId.FINISH,
)

#: Steps whose failure triggers a rollback of the node (they change the node, or, for the post-hook,
#: judge it once changed as verify does).
ROLLBACK_STEPS: Final = frozenset(
    {
        StepId.BACKUP,
        StepId.CONFIGURE,
        StepId.IMAGES,
        StepId.RECHECK,
        StepId.SWITCH,
        StepId.VERIFY,
        StepId.POST_HOOK,
    }
)
