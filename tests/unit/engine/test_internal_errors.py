"""An error no part of shimshift raises on purpose (a bug) is shown where users look.

Before, an OverflowError in a pass was only a kopf log line, retried every 60 s: no status, no Event.
Now it is the ReconcileError condition (type and first line of the message, no traceback, no key
material) and one Warning Event per distinct message, retried with a doubling delay, and the condition
turns False on the next pass that goes through. The node port stands in for the bug.
"""

from __future__ import annotations

import kopf
import pytest

from shimshift.engine import InternalError, internal_error_message
from shimshift.entry.handlers import MAX_BACKOFF, to_kopf_error
from shimshift.model.facts import NodeFacts
from shimshift.model.status import Condition, NodePhase, Phase
from tests.unit.engine.conftest import make_engine, run_to_end
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers


class BuggyNodes(FakeNodes):
    """The node port raises an unexpected error on its first `times` facts calls."""

    def __init__(self, cluster: FakeCluster, times: int, error: Exception) -> None:
        super().__init__(cluster)
        self.times = times
        self.error = error

    def facts(self, node: str) -> NodeFacts:
        if self.times > 0:
            self.times -= 1
            raise self.error
        return super().facts(node)


def reconcile_error(cluster: FakeCluster) -> Condition | None:
    return next((c for c in cluster.status().conditions if c.type == "ReconcileError"), None)


@pytest.mark.parametrize("mode", ["Migrate", "Plan"])
def test_an_unexpected_error_is_a_condition_and_one_warning_event_until_a_pass_succeeds(
    clock: Clock, mode: str
) -> None:
    cluster = FakeCluster(workers(1), clock)
    nodes = BuggyNodes(cluster, 2, OverflowError("cannot convert float infinity to integer"))
    cluster.create(manifest(mode=mode))
    engine = make_engine(cluster, nodes, clock)

    for _ in range(2):
        with pytest.raises(InternalError, match="unexpected OverflowError: cannot convert float infinity"):
            engine.reconcile(cluster.get("m"))
        clock.advance(5)

    condition = reconcile_error(cluster)
    assert condition is not None and (condition.status, condition.reason) == ("True", "InternalError")
    assert condition.message.startswith("unexpected OverflowError: cannot convert float infinity to integer")
    warnings = [e for e in cluster.events if e[3] == "InternalError"]
    assert len(warnings) == 1  # the same error twice is one Event, not one per retry
    assert warnings[0][2] is True and "OverflowError" in warnings[0][4]

    if mode == "Plan":
        assert engine.reconcile(cluster.get("m")).phase == Phase.PLANNED
    else:
        assert run_to_end(cluster, nodes, clock).phase == Phase.SUCCEEDED
        assert [n.phase for n in cluster.status().nodes] == [NodePhase.SUCCEEDED]
    cleared = reconcile_error(cluster)
    assert cleared is not None and (cleared.status, cleared.reason) == ("False", "Reconciled")


def test_the_recorded_message_is_one_short_line_without_key_material() -> None:
    many = internal_error_message(
        ValueError("first line\n  File x.py, line 3\nTraceback (most recent call last)")
    )
    assert "first line" in many and "Traceback" not in many and "\n" not in many
    pem = internal_error_message(ValueError("bad -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk="))
    assert "BEGIN" not in pem and "b3BlbnNz" not in pem and "withheld" in pem
    assert len(internal_error_message(KeyError("x" * 5000))) < 400


def test_an_internal_error_is_retried_with_a_doubling_delay_up_to_a_bound() -> None:
    delays = [to_kopf_error(InternalError("bug"), retry) for retry in (0, 1, 2, 3, 50)]
    assert all(isinstance(d, kopf.TemporaryError) for d in delays)
    assert [d.delay for d in delays] == [2.0, 4.0, 8.0, 16.0, MAX_BACKOFF]  # type: ignore[attr-defined]
