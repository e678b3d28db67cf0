"""What the plan says of each node's hooks (spec.rollout.hooks): the Job that will run before anything
changes for the node, and the one after its verify, with their names, namespaces, images and timeouts.
Pure: the Jobs' manifests are `shimshift.model.hooks`'.
"""

from __future__ import annotations

from shimshift.model.durations import format_duration
from shimshift.model.hooks import HookKind, hook_job_name
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.findings import Finding, Level

_WHEN = {
    HookKind.PRE: "before anything changes for {node} (its backup, containerd config and cordon)",
    HookKind.POST: "after {node} is verified on containerd, before it is uncordoned",
}
_THEN = {
    HookKind.PRE: "if it fails or times out, the node fails unchanged (nothing to roll back)",
    HookKind.POST: "if it fails or times out, the node rolls back to Docker",
}


def hook_findings(spec: NodeMigrationSpec, migration: str, node: str) -> list[Finding]:
    """One note per configured hook of the node: its Job, when it runs, and what a failure does."""
    found = []
    for kind in spec.rollout.hooks.configured:
        hook = spec.rollout.hooks.get(kind)
        assert hook is not None
        job = f"{hook.namespace}/{hook_job_name(migration, node, kind)}"
        images = ", ".join(hook.images) or "(none)"
        found.append(
            Finding(
                "HookPlanned",
                Level.INFO,
                f"{kind}-hook Job {job} (image {images}, timeout {format_duration(hook.timeout)}) runs "
                f"{_WHEN[kind].format(node=node)}; {_THEN[kind]}",
                "",
                node,
                job,
            )
        )
    return found
