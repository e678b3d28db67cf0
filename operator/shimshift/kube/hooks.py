"""The hook Jobs (spec.rollout.hooks) on the API: create or adopt one, watch it, read what its last pod
said, delete it.

A hook's Job has a name derived from (NodeMigration, node, hook) (`model.hooks.hook_job_name`), so it is
fetched by name: found, it is adopted (a restarted operator never runs a hook twice); missing, it is
created. A Job of that name left by an earlier NodeMigration of the same name (another uid) is deleted
and created anew once gone. The chart's Role grants jobs create/get/list/watch/delete in each namespace
a hook runs in (values `hooks.namespaces`); the Job's pods are listed through the ClusterRole's pods list.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from shimshift.kube.api import Conflict, Kube, NotFound
from shimshift.kube.paths import segment
from shimshift.kube.watching import Objects, wait_until
from shimshift.model import keys
from shimshift.model.hooks import HookJob, last_pod_said, parse_job

log = logging.getLogger(__name__)

#: Pods of one hook Job read for its last pod's words (its backoffLimit is at most 10).
PODS_LIMIT = 50


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{segment(namespace, 'namespace')}/jobs"


def _job_path(namespace: str, name: str) -> str:
    return f"{jobs_path(namespace)}/{segment(name, 'job name')}"


def read_job(kube: Kube, namespace: str, name: str) -> HookJob | None:
    try:
        return parse_job(kube.request("GET", _job_path(namespace, name)))
    except NotFound:
        return None


def delete_job(kube: Kube, namespace: str, name: str) -> None:
    """Delete the Job and (in the background) its pods; one already gone is what was wanted."""
    with contextlib.suppress(NotFound):
        kube.request("DELETE", _job_path(namespace, name), body={"propagationPolicy": "Background"})


def run_hook_job(kube: Kube, manifest: dict[str, Any], *, wait: float) -> tuple[HookJob, bool]:
    """The hook Job `manifest` describes, adopted or created (the bool: created now), watched at most
    `wait` seconds until it finishes; as last seen."""
    meta = manifest["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    uid = str(meta["annotations"].get(keys.HOOK_MIGRATION_UID_ANNOTATION, ""))
    job = read_job(kube, namespace, name)
    created = False
    if job is not None and job.migration_uid != uid:
        if not job.deleting:
            log.info(
                "hook Job %s/%s belongs to an earlier NodeMigration of that name: deleting it",
                namespace,
                name,
            )
            delete_job(kube, namespace, name)
        return HookJob(name, namespace, message="replacing a Job an earlier NodeMigration left"), False
    if job is None:
        try:
            job = parse_job(kube.request("POST", jobs_path(namespace), body=manifest))
            created = True
        except Conflict:  # created by a pass that crashed before it saw the answer: adopt that one
            job = read_job(kube, namespace, name) or HookJob(name, namespace)
    last = job

    def done(objects: Objects) -> bool:
        nonlocal last
        for obj in objects.values():
            seen = parse_job(obj)
            if seen.name == name:
                last = seen
                return seen.finished or seen.deleting
        return False

    if not last.finished and wait > 0:
        wait_until(
            kube,
            jobs_path(namespace),
            done,
            timeout=wait,
            query=[("fieldSelector", f"metadata.name={name}")],
        )
    return last, created


def last_pod_of(kube: Kube, job: HookJob) -> str:
    """What the newest pod of `job` says of its end (its container's exit and termination message)."""
    if not job.uid:
        return ""
    answer = kube.request(
        "GET",
        f"/api/v1/namespaces/{segment(job.namespace, 'namespace')}/pods",
        query=[("labelSelector", f"controller-uid={job.uid}"), ("limit", str(PODS_LIMIT))],
    )
    return last_pod_said([p for p in answer.get("items") or () if isinstance(p, dict)])
