"""The verify step: on the node, containerd's CRI plugin is ok and the kubelet runs (playbook
`playbooks/verify.yaml`, script `verify.sh`); through the API, the Node reports Ready with a
`containerd://` runtime and the DaemonSet pods it had (recorded by the drain) are Running and Ready
again, each wait bounded by `EngineConfig.verify_timeout` from the step's recorded start. Changes
nothing: a failure here rolls the node back through the undo of the steps before it.
"""

from __future__ import annotations

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, Step, StepContext, StepFailed, playbook_halves
from shimshift.steps.nodeplan import NodeRunPlan

PLAYBOOK = "verify"


def _variables(plan: NodeRunPlan) -> dict[str, str]:
    plan.checked()
    return {"wait_seconds": str(plan.wait_seconds)}


_run_on_node, _ = playbook_halves(PLAYBOOK, _variables)


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name, config = record.name, ctx.config
    port.verify(name, ctx.facts_of(migration, port, name))
    elapsed = ctx.elapsed(record, StepId.VERIFY)
    wait = max(1.0, min(config.wait_slice, config.verify_timeout - elapsed))
    out_of_time = elapsed + wait >= config.verify_timeout
    if not ctx.cluster.wait_node(name, runtime="containerd", timeout=wait):
        if out_of_time:
            raise StepFailed(
                f"node {name} did not report Ready with a containerd:// runtime within "
                f"{config.verify_timeout:.0f}s after the switch"
            )
        return Outcome(False, record, "waiting for the kubelet to report Ready on containerd")
    # the DaemonSet pods on the node (CNI, proxy, log shippers...) must run again on containerd
    missing = ctx.cluster.wait_daemonset_pods(name, expected=record.daemonsets, timeout=wait)
    if not missing:
        return Outcome(True, record, "Ready on containerd, its DaemonSet pods Running and Ready")
    if out_of_time:
        raise StepFailed(
            f"node {name}: DaemonSet pods not Running and Ready on containerd within "
            f"{config.verify_timeout:.0f}s after the switch: {'; '.join(missing)}"
        )
    return Outcome(False, record, f"waiting for DaemonSet pods to be Running and Ready: {'; '.join(missing)}")


STEP = Step(StepId.VERIFY, _run, node_run=_run_on_node, scripts=("verify",))
