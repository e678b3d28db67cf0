"""Per-node hooks (`spec.rollout.hooks.pre` and `.post`) as values: the spec, the Job each runs, what
the API last said of that Job and its pods, and what a node's record keeps of each hook.

A hook is a Job template run once per node: the pre-hook before anything changes for the node (before
its backup, configure and cordon), the post-hook after its verify, before its uncordon. Each Job gets a
name derived from the NodeMigration, the node and the hook (`hook_job_name`), so a restarted operator
finds the Job it created and adopts it, never starting a second one; its labels and annotations name the
NodeMigration (and its uid), the node and the hook, and an ownerReference makes the garbage collector
delete it with its NodeMigration. Every container gets `SHIMSHIFT_NODE` and `SHIMSHIFT_MIGRATION` in its
environment, and `{node}` in its command and args is replaced with the node's name. Pure: the Job's I/O
is `shimshift.kube.hooks`, the step's decisions `shimshift.steps.hook`.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shimshift.model import keys
from shimshift.model.durations import parse_duration
from shimshift.model.hookrecord import HookKind, HookRecord, HookResult
from shimshift.model.nodestate import label_value

#: spec.rollout.hooks.*.timeout's default and upper bound (the CRD says the same); it must be above 0.
HOOK_TIMEOUT_DEFAULT = "10m"
HOOK_TIMEOUT_MAX = 6 * 3600.0
#: spec.rollout.hooks.*.backoffLimit's bound: a hook is retried by the Job controller at most this often.
HOOK_BACKOFF_MAX = 10
#: How long after a hook's timeout the operator still waits for the Job controller to say so itself
#: (its activeDeadlineSeconds) before judging the hook timed out on its own clock.
HOOK_TIMEOUT_GRACE = 30.0
#: A finished hook Job the operator did not get to delete (it crashed, or was uninstalled) goes after
#: a day; the operator deletes it as soon as its result is recorded.
HOOK_JOB_TTL = 86400
__all__ = ["HookJob", "HookKind", "HookRecord", "HookResult", "HookSpec", "Hooks", "hook_job_manifest"]

#: Characters of a Job's or pod's own words kept in a hook's message.
HOOK_MESSAGE_MAX = 600

#: The environment every hook container gets.
NODE_ENV = "SHIMSHIFT_NODE"
MIGRATION_ENV = "SHIMSHIFT_MIGRATION"
#: Replaced with the node's name in every container's command and args.
NODE_PLACEHOLDER = "{node}"

_JOB_NAME_MAX = 63  # the Job controller puts the name in a label of its pods
_LABEL_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class HookSpec:
    """One of spec.rollout.hooks: the pod template its Job runs, where, for how long, how often."""

    namespace: str
    template: Mapping[str, Any] = field(hash=False)
    timeout: float = 600.0
    backoff_limit: int = 0

    @property
    def images(self) -> tuple[str, ...]:
        spec = self.template.get("spec") or {}
        return tuple(
            str(c.get("image", ""))
            for part in ("initContainers", "containers")
            for c in spec.get(part) or ()
            if isinstance(c, Mapping)
        )


@dataclass(frozen=True)
class Hooks:
    """spec.rollout.hooks: none, one, or both."""

    pre: HookSpec | None = None
    post: HookSpec | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Hooks:
        return cls(pre=_hook(raw.get("pre")), post=_hook(raw.get("post")))

    def get(self, kind: HookKind) -> HookSpec | None:
        return self.pre if kind == HookKind.PRE else self.post

    @property
    def configured(self) -> tuple[HookKind, ...]:
        return tuple(k for k in HookKind if self.get(k) is not None)

    @property
    def steps(self) -> frozenset[keys.StepId]:
        """The hook steps a node runs (`shimshift.model.steporder.step_order` places them)."""
        step = {HookKind.PRE: keys.StepId.PRE_HOOK, HookKind.POST: keys.StepId.POST_HOOK}
        return frozenset(step[k] for k in self.configured)


def _hook(raw: Any) -> HookSpec | None:
    if not isinstance(raw, Mapping):
        return None
    return HookSpec(
        namespace=str(raw.get("namespace", "")),
        template=copy.deepcopy(dict(raw.get("template") or {})),
        timeout=parse_duration(raw.get("timeout", HOOK_TIMEOUT_DEFAULT)),
        backoff_limit=int(raw.get("backoffLimit", 0)),
    )


def hook_job_name(migration: str, node: str, kind: HookKind) -> str:
    """`<migration>-<node>-<kind>` when that fits in 63 characters as a valid name; else its start
    and a hash of all three (still ending in `-<kind>`, still the same for the same three)."""
    name = f"{migration}-{node}-{kind}"
    if len(name) <= _JOB_NAME_MAX and _LABEL_SAFE.fullmatch(name):
        return name
    digest = hashlib.sha256("\0".join((migration, node, str(kind))).encode()).hexdigest()[:10]
    suffix = f"-{digest}-{kind}"
    head = re.sub(r"[^a-z0-9-]", "-", f"{migration}-{node}".lower())[: _JOB_NAME_MAX - len(suffix)]
    head = head.strip("-") or "shimshift"
    return f"{head}{suffix}"


def hook_selector(migration: str, node: str | None = None) -> str:
    """The label selector of `migration`'s hook Jobs (of `node`'s only, with one)."""
    selector = f"{keys.HOOK_LABEL},{keys.MIGRATION_LABEL}={label_value(migration)}"
    return selector if node is None else f"{selector},{keys.NODE_LABEL}={label_value(node)}"


def _substituted(value: Any, node: str) -> Any:
    return value.replace(NODE_PLACEHOLDER, node) if isinstance(value, str) else value


def _container(raw: Mapping[str, Any], node: str, migration: str) -> dict[str, Any]:
    container = dict(raw)
    for part in ("command", "args"):
        if isinstance(container.get(part), list):
            container[part] = [_substituted(v, node) for v in container[part]]
    ours = {NODE_ENV: node, MIGRATION_ENV: migration}
    env = [e for e in container.get("env") or () if isinstance(e, Mapping) and e.get("name") not in ours]
    container["env"] = [*env, *({"name": k, "value": v} for k, v in ours.items())]
    # the last lines of a failed container's log become its termination message, which the node's
    # lastError quotes (a template that sets its own policy keeps it)
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return container


def hook_job_manifest(
    hook: HookSpec, kind: HookKind, *, migration: str, migration_uid: str, node: str
) -> dict[str, Any]:
    """The Job of `kind`'s hook for `node`: the template's pod (restartPolicy Never unless it says
    OnFailure), the node's name in the environment and in place of `{node}`, bounded by the hook's
    timeout (activeDeadlineSeconds) and backoffLimit, owned by the NodeMigration."""
    labels = {
        keys.HOOK_LABEL: str(kind),
        keys.MIGRATION_LABEL: label_value(migration),
        keys.NODE_LABEL: label_value(node),
        "app.kubernetes.io/managed-by": "shimshift",
    }
    annotations = {
        keys.HOOK_NODE_ANNOTATION: node,
        keys.HOOK_MIGRATION_ANNOTATION: migration,
        keys.HOOK_MIGRATION_UID_ANNOTATION: migration_uid,
    }
    template = copy.deepcopy(dict(hook.template))
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    pod = dict(template.get("spec") or {})
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        pod["restartPolicy"] = "Never"
    for part in ("initContainers", "containers"):
        if isinstance(pod.get(part), list):
            pod[part] = [_container(c, node, migration) for c in pod[part] if isinstance(c, Mapping)]
    metadata: dict[str, Any] = {
        "name": hook_job_name(migration, node, kind),
        "namespace": hook.namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if migration_uid:  # a namespaced dependent of the cluster-scoped NodeMigration: deleted with it
        metadata["ownerReferences"] = [
            {"apiVersion": keys.API_VERSION, "kind": keys.KIND, "name": migration, "uid": migration_uid}
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": hook.backoff_limit,
            "activeDeadlineSeconds": max(1, int(hook.timeout + 0.999)),
            "ttlSecondsAfterFinished": HOOK_JOB_TTL,
            "template": {"metadata": meta, "spec": pod},
        },
    }


@dataclass(frozen=True)
class HookJob:
    """A hook Job as the API last showed it."""

    name: str
    namespace: str
    uid: str = ""
    created_at: str = ""
    migration_uid: str = ""  # its HOOK_MIGRATION_UID_ANNOTATION
    node: str = ""  # its HOOK_NODE_ANNOTATION
    complete: bool = False
    failed: bool = False
    reason: str = ""  # of its Failed condition (BackoffLimitExceeded, DeadlineExceeded)
    message: str = ""
    active: int = 0
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.complete or self.failed


def parse_job(obj: Mapping[str, Any]) -> HookJob:
    """A Job object as a `HookJob` (missing parts read as empty)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    conditions = [c for c in status.get("conditions") or () if isinstance(c, Mapping)]
    true = {str(c.get("type")): c for c in conditions if c.get("status") == "True"}
    failed = true.get("Failed") or {}
    return HookJob(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        created_at=str(meta.get("creationTimestamp", "")),
        migration_uid=str(annotations.get(keys.HOOK_MIGRATION_UID_ANNOTATION, "")),
        node=str(annotations.get(keys.HOOK_NODE_ANNOTATION, "")),
        complete="Complete" in true,
        failed="Failed" in true,
        reason=str(failed.get("reason", "")),
        message=str(failed.get("message", "")),
        active=int(status.get("active") or 0),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _one_line(text: str, limit: int = HOOK_MESSAGE_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_pod_said(pods: list[Mapping[str, Any]]) -> str:
    """What the newest of a Job's pods says of its end: `pod <name>: container <c> exited <code>
    (<reason>: <termination message>)`, or its waiting reason; "" without pods."""
    if not pods:
        return ""
    pod = max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
    name = str((pod.get("metadata") or {}).get("name", ""))
    status = pod.get("status") or {}
    parts = []
    statuses = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    for c in statuses:
        state = c.get("state") or {}
        done, waiting = state.get("terminated") or {}, state.get("waiting") or {}
        if done and done.get("exitCode") not in (0, None):
            why = ": ".join(str(p).strip() for p in (done.get("reason"), done.get("message")) if p)
            parts.append(
                f"container {c.get('name')} exited {done.get('exitCode')}" + (f" ({why})" if why else "")
            )
        elif waiting.get("reason"):
            why = ": ".join(str(p) for p in (waiting.get("reason"), waiting.get("message")) if p)
            parts.append(f"container {c.get('name')} waiting: {why}")
    if not parts:
        parts.append(f"phase {status.get('phase') or 'Pending'}")
        if status.get("reason") or status.get("message"):
            parts.append(": ".join(str(p) for p in (status.get("reason"), status.get("message")) if p))
    return _one_line(f"pod {name}: " + "; ".join(parts))
