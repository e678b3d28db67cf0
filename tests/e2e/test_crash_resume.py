"""SIGKILL the operator process at each step of a node, restart it, and the migration still ends clean.

One migration, killed once per step of the first node (at the step's recorded start; for the steps
that change the node the kill lands inside the step, which the simulated node makes last a while),
then left to finish. Every real node change is counted in the simulated nodes' state files, so
"nothing changed twice" is checked from outside the operator. Every status write point is covered
exhaustively, in-process, by tests/unit/engine/test_crash_resume.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.kubeapi import KubeApi

from shimshift.model import keys
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.status import NodePhase, Phase, StepState
from tests.e2e.conftest import Operator, eventually, migration, node, status_of
from tests.e2e.simnodes import read_state

pytestmark = pytest.mark.e2e

NODE_CHANGES = ("backup", "configure", "images", "switch", "finish")


def _position(cluster: KubeApi, name: str) -> tuple[int, StepState | None]:
    record = status_of(cluster).node(name)
    if record is None or record.step is None:
        return -1, None
    if record.phase == NodePhase.SUCCEEDED:
        return len(STEP_ORDER), record.step_state
    return STEP_ORDER.index(record.step) if record.step in STEP_ORDER else -1, record.step_state


def test_sigkill_at_every_step_of_a_node_resumes_and_nothing_is_done_twice(
    cluster: KubeApi, operator_factory: Callable[..., Operator], sim_dir: Path
) -> None:
    cluster.seed([node("w1"), node("w2")])
    operator = operator_factory(SHIMSHIFT_SIM_STEP_SECONDS="0.4")
    operator.start()
    cluster.seed(migration(rollout={"maxUnavailable": 1}))
    killed_at: list[tuple[StepId, StepState | None]] = []

    for target in range(len(STEP_ORDER)):
        index, state = eventually(
            lambda t=target: (pos := _position(cluster, "w1"))[0] >= t and pos,
            60,
            f"w1 at {STEP_ORDER[target]}",
            0.02,
        )
        if index >= len(STEP_ORDER):
            break
        if (STEP_ORDER[index], state) in killed_at:
            continue
        operator.kill()
        killed_at.append((STEP_ORDER[index], state))
        time.sleep(0.2)
        operator.start()

    eventually(lambda: status_of(cluster).phase == Phase.SUCCEEDED, 90, "the migration to finish")

    print(f"SIGKILL points tried: {len(killed_at)}: {[f'{s}/{st}' for s, st in killed_at]}")
    assert len(killed_at) >= 6
    status = status_of(cluster)
    for name in ("w1", "w2"):
        record = status.node(name)
        assert record is not None and record.phase == NodePhase.SUCCEEDED
        assert [s.id for s in record.steps] == list(STEP_ORDER)
        assert all(s.state == StepState.DONE for s in record.steps)
        obj = cluster.get("nodes", name)
        assert obj is not None and not obj["spec"].get("unschedulable"), f"{name} left cordoned"
        assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        changes = read_state(sim_dir, name)["changes"]
        assert {op: changes.get(op) for op in NODE_CHANGES} == dict.fromkeys(NODE_CHANGES, 1), (name, changes)
        assert "undo" not in changes
