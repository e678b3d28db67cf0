"""The hook Jobs' API calls (`shimshift.kube.hooks`) over a recording fake of `Kube`: a missing Job is
created, an existing one adopted (never a second POST), one an earlier NodeMigration of the same name
left is deleted and only created anew once gone, and a Job's pods are found by its controller uid."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from shimshift.kube.api import NotFound
from shimshift.kube.hooks import last_pod_of, run_hook_job
from shimshift.model.hooks import HookKind, HookSpec, hook_job_manifest

HOOK = HookSpec("ops", {"spec": {"containers": [{"name": "h", "image": "busybox"}]}}, timeout=60.0)


class FakeKube:
    def __init__(self, jobs: dict[str, dict[str, Any]] | None = None) -> None:
        self.jobs = jobs or {}
        self.calls: list[tuple[str, str]] = []
        self.pods: list[dict[str, Any]] = []
        self.queries: list[Sequence[tuple[str, str]]] = []

    def request(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (), body: Any = None, **_: Any
    ) -> dict[str, Any]:
        self.calls.append((method, path))
        self.queries.append(query)
        name = path.rsplit("/", 1)[-1]
        if path.endswith("/pods"):
            return {"items": self.pods}
        if method == "GET" and path.endswith("/jobs"):
            return {"items": list(self.jobs.values()), "metadata": {"resourceVersion": "1"}}
        if method == "GET":
            if name not in self.jobs:
                raise NotFound(404, "NotFound", "not found", what=f"GET {path}", body={})
            return self.jobs[name]
        if method == "POST":
            job = {**body, "metadata": {**body["metadata"], "uid": "job-uid"}, "status": {}}
            self.jobs[body["metadata"]["name"]] = job
            return job
        if method == "DELETE":
            self.jobs[name]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            return {}
        raise AssertionError((method, path))

    def watch(self, path: str, **_: Any) -> Iterator[dict[str, Any]]:
        return iter(())


def manifest(uid: str = "uid-m") -> dict[str, Any]:
    return hook_job_manifest(HOOK, HookKind.PRE, migration="m", migration_uid=uid, node="w1")


def test_a_missing_job_is_created_and_an_existing_one_adopted_never_posted_twice() -> None:
    kube = FakeKube()
    job, created = run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    assert created and job.name == "m-w1-pre" and job.uid == "job-uid"
    kube.jobs["m-w1-pre"]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    again, created = run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    assert not created and again.complete
    assert [m for m, _ in kube.calls].count("POST") == 1


def test_a_job_an_earlier_migration_of_the_same_name_left_is_deleted_not_adopted() -> None:
    kube = FakeKube()
    run_hook_job(kube, manifest(uid="old-uid"), wait=0)  # type: ignore[arg-type]
    kube.jobs["m-w1-pre"]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    job, created = run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    assert not created and not job.finished and "earlier NodeMigration" in job.message
    assert ("DELETE", "/apis/batch/v1/namespaces/ops/jobs/m-w1-pre") in kube.calls
    # while it terminates nothing is created; once gone, the Job of this NodeMigration is
    run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    assert [m for m, _ in kube.calls].count("POST") == 1
    del kube.jobs["m-w1-pre"]
    job, created = run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    assert (
        created
        and kube.jobs["m-w1-pre"]["metadata"]["annotations"]["shimshift.io/hook-migration-uid"] == "uid-m"
    )


def test_a_jobs_pods_are_found_by_its_controller_uid() -> None:
    kube = FakeKube()
    job, _ = run_hook_job(kube, manifest(), wait=0)  # type: ignore[arg-type]
    kube.pods = [
        {
            "metadata": {"name": "m-w1-pre-abc", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {
                "containerStatuses": [
                    {"name": "h", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}
                ]
            },
        }
    ]
    assert last_pod_of(kube, job) == "pod m-w1-pre-abc: container h exited 2 (Error)"  # type: ignore[arg-type]
    assert ("labelSelector", "controller-uid=job-uid") in kube.queries[-1]
