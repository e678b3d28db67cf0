"""Every Event reason and condition type the operator writes is a member of its StrEnum, with its old value.

Reasons and types are API: `kubectl describe`, alerts and docs/troubleshooting.md name them. The
parameters that carry them are typed with the enums (mypy refuses a bare string there); the scan
below also refuses a string literal, an f-string or a `str(...)` in the places the types cannot
reach: `Condition(...)` (whose fields stay `str`, as a stored status is read back as it is) and an
error's `event_reason`.
"""

from __future__ import annotations

import ast
import datetime as dt
import typing
from pathlib import Path

from shimshift.kube import migrations
from shimshift.kube.cluster import KubeCluster
from shimshift.model.status import Condition, ConditionReason, ConditionType, EventReason, Phase
from shimshift.planning.rollout import condition_updates
from shimshift.ports import ClusterPort

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "shimshift"


def _argument(call: ast.Call, index: int, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[index] if len(call.args) > index else None


def _bare_strings(expr: ast.expr) -> list[str]:
    """String literals (but ""), f-strings and str() calls anywhere inside `expr`."""
    found = []
    for node in ast.walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
            found.append(repr(node.value))
        elif isinstance(node, ast.JoinedStr):
            found.append("an f-string")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
            found.append("str(...)")
    return found


def _scan() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE)
        for node in ast.walk(ast.parse(path.read_text())):
            checks: list[tuple[str, ast.expr | None]] = []
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == "event" and isinstance(
                    func, ast.Attribute
                ):  # Cluster.event(m, node, warn, reason, msg)
                    checks.append(("Event reason", _argument(node, 3, "reason")))
                elif called == "emit_event":
                    checks.append(("Event reason", _argument(node, 99, "reason")))
                elif called == "Condition":
                    checks.append(("condition type", _argument(node, 0, "type")))
                    checks.append(("condition reason", _argument(node, 2, "reason")))
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "event_reason" for t in node.targets
            ):
                checks.append(("error's event_reason", node.value))
            for what, expr in checks:
                if expr is not None and (bare := _bare_strings(expr)):
                    problems.append(f"{where}:{expr.lineno}: {what} is {', '.join(bare)}")
    return problems


def test_no_event_reason_or_condition_is_a_bare_string_in_the_package() -> None:
    problems = _scan()
    assert not problems, "use EventReason / ConditionType / ConditionReason members:\n" + "\n".join(problems)


def test_the_parameters_that_carry_an_event_reason_are_typed_with_the_enum() -> None:
    for function in (ClusterPort.event, KubeCluster.event, migrations.emit_event):
        assert typing.get_type_hints(function)["reason"] is EventReason, function.__qualname__


def test_the_conditions_of_a_pass_are_members_of_the_enums() -> None:
    now = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    for phase in Phase:
        conditions = condition_updates((), phase, ConditionReason.WAVE_STARTED, "m", now, 1)
        assert {type(c.type) for c in conditions} == {ConditionType}
        assert {type(c.reason) for c in conditions} == {ConditionReason}
    for refused in (ConditionReason.INVALID_SPEC, ConditionReason.INTERNAL_ERROR):  # report_invalid's Event
        assert EventReason(refused.value)
    kept = Condition("SomeoneElses", "True", "Theirs")
    assert kept in condition_updates((kept,), Phase.PROGRESSING, ConditionReason.WAVE_STARTED, "m", now, 1)


def test_the_values_are_the_ones_users_and_docs_already_know() -> None:
    assert [str(t) for t in ConditionType] == [
        "Valid",
        "ReconcileError",
        "Progressing",
        "Paused",
        "Complete",
        "DrainBlocked",
        "GateClosed",
        "GateError",
        "RollbackWindow",
        "UndoRefused",
    ]
    assert {str(r) for r in EventReason} == {
        *(str(p) for p in Phase),
        "NodeStarted",
        "NodeMigrated",
        "NodeRolledBack",
        "NodeFailed",
        "NodeUndoStarted",
        "NodeUndone",
        "NodeUndoFailed",
        "UndoRefused",
        "NodeCommitted",
        "StepFailed",
        "HostKeyMismatch",
        "HostKeyRevoked",
        "DrainEscalated",
        "EvictionBlocked",
        "GateClosed",
        "GateOpened",
        "GateError",
        "CanaryFailed",
        "CanarySkipped",
        "HookStarted",
        "HookSucceeded",
        "HookFailed",
        "InvalidSpec",
        "InternalError",
        "NotificationFailed",
    }
    assert {str(r) for r in ConditionReason} == {
        "PlanMode",
        "Planned",
        "Deleting",
        "MaxFailures",
        "NodesFailed",
        "Migrated",
        "PausedBySpec",
        "NodesInFlight",
        "PauseBetweenNodes",
        "WaveStarted",
        "WaitingForWindow",
        "BlockedByPods",
        "OperatorCannotMove",
        "WaitingForGate",
        "GateError",
        "GateTimeout",
        "GatesOpen",
        "NotActive",
        "Reconciled",
        "PodDisruptionBudget",
        "NotBlocked",
        "InternalError",
        "InvalidSpec",
        "NotCommitted",
        "Committed",
        "UndoNotPossible",
        "NoRefusedUndo",
    }
