"""The step table: every `StepId` and the step that runs it, and the node halves by step.

`STEPS` is what the step executor (`shimshift.stepexec`) runs from; `NodeSteps` runs the node half of
a step (its playbook) over one node's `CommandRunner`, and `rollback` their undo in
`ROLLBACK_ORDER`. Each step's home is its module (`shimshift.steps.<step>`); docs/architecture.md
shows the table with each step's node scripts and undo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.steps import (
    backup,
    commit,
    configure,
    cordon,
    drain,
    facts,
    finish,
    hook,
    images,
    lock,
    recheck,
    rollback,
    switch,
    undo,
    verify,
)
from shimshift.steps.base import Step
from shimshift.steps.execute import PlaybookResult
from shimshift.steps.nodeplan import NodeRunPlan, preflight
from shimshift.steps.runner import CommandRunner

STEPS: Mapping[StepId, Step] = {
    s.id: s
    for s in (
        facts.STEP,
        lock.STEP,
        hook.PRE_STEP,
        cordon.STEP,
        drain.STEP,
        backup.STEP,
        configure.STEP,
        images.STEP,
        recheck.STEP,
        switch.STEP,
        verify.STEP,
        hook.POST_STEP,
        finish.STEP,
        rollback.STEP,
        undo.STEP,
        commit.STEP,
    )
}

#: Steps whose node half has an undo, in the order a rollback runs them. The images step's undo
#: (`steps.images.undo_images`) runs after these, with containerd back on its old configuration.
#: The commit's undo (Docker enabled again) does nothing on a node whose Docker was never disabled;
#: it is there for a node an earlier version migrated, which disabled Docker in its finish step.
ROLLBACK_ORDER = (StepId.COMMIT, StepId.SWITCH, StepId.CONFIGURE)


class NodeSteps:
    """The node halves of the steps for one node over one runner (round trips accumulate on it)."""

    def __init__(self, runner: CommandRunner) -> None:
        self.conn = runner

    def facts(self, *, kubelet_version: str | None = None) -> NodeFacts:
        return facts.probe(self.conn, kubelet_version=kubelet_version)

    preflight = staticmethod(preflight)

    def run(self, step: StepId, plan: NodeRunPlan) -> PlaybookResult:
        node_run = STEPS[step].node_run
        if node_run is None:
            raise NodeError(self.conn.node, f"step {step} has no node playbook")
        return node_run(self.conn, plan)

    def undo(self, step: StepId, plan: NodeRunPlan) -> PlaybookResult:
        node_undo = STEPS[step].node_undo
        if node_undo is None:
            raise NodeError(self.conn.node, f"step {step} has no node undo")
        return node_undo(self.conn, plan)

    def rollback(self, plan: NodeRunPlan, steps: Iterable[StepId] = ROLLBACK_ORDER) -> list[PlaybookResult]:
        """Undo the changing steps in reverse: the node is back on Docker, its files byte-identical."""
        return [self.undo(step, plan) for step in steps]
