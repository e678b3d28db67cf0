"""`spec.docker` offers only what shimshift does: Keep or Stop. `Remove` did exactly what Stop does, so
it is gone from the API; a manifest (or a stored object) that still says it is refused with advice."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shimshift.entry import handlers
from shimshift.entry.cli import main
from shimshift.model.errors import ValidationError
from shimshift.model.migration import parse_nodemigration, version_schema
from shimshift.model.status import ConditionReason, MigrationStatus
from shimshift.resources import load_crd
from tests.unit.engine.conftest import make_engine
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

REPO = Path(__file__).resolve().parents[2]
ADVICE = (
    'spec.docker: "Remove" is not supported: it never removed Docker Engine, it did exactly what "Stop" '
    'does; use "Stop", and remove Docker Engine with the node\'s own package manager once the node no '
    "longer needs to roll back (without Docker Engine it cannot)"
)


def _docker_enum() -> list[str]:
    spec = version_schema(load_crd())["properties"]["spec"]["properties"]
    return list(spec["docker"]["enum"])


def test_the_crd_offers_keep_and_stop_for_spec_docker_and_nothing_that_lies() -> None:
    assert _docker_enum() == ["Keep", "Stop"]


def test_a_manifest_with_docker_remove_is_refused_by_validate_naming_spec_docker_and_saying_to_use_stop(
    tmp_path: Path,
) -> None:
    f = tmp_path / "remove.yaml"
    f.write_text(
        "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"
        "spec: {nodeNames: [a], docker: Remove}\n"
    )
    out = io.StringIO()
    status = main(["validate", "-f", str(f)], out=out)
    assert status == 1
    assert f"{f} (x): invalid" in out.getvalue()
    assert ADVICE in out.getvalue()


def test_parsing_a_docker_remove_object_raises_the_same_advice() -> None:
    body: dict[str, Any] = manifest()
    body["spec"]["docker"] = "Remove"
    with pytest.raises(ValidationError) as e:
        parse_nodemigration(body, load_crd())
    assert [str(p) for p in e.value.problems] == [ADVICE]


def test_the_operator_marks_a_stored_docker_remove_object_invalid_with_the_advice() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    nodes = FakeNodes(cluster)
    runtime = handlers.Runtime(make_engine(cluster, nodes, clock))
    body = manifest()
    body["metadata"].update(generation=1, uid="uid-m")
    cluster.create(body)
    stored = manifest()  # stored before the CRD dropped the value: the API server does not re-check it
    stored["metadata"].update(generation=1, uid="uid-m")
    stored["spec"]["docker"] = "Remove"
    # kopf types the handler as every keyword it passes; the handler reads body and memo only
    reconcile: Callable[..., object] = handlers.reconcile
    reconcile(body=stored, memo={"runtime": runtime})
    status = MigrationStatus.from_storage(cluster.objects["m"]["status"])
    valid = next(c for c in status.conditions if c.type == "Valid")
    assert valid.status == "False" and valid.reason == "InvalidSpec"
    assert ADVICE in valid.message
    assert sum(nodes.changes.values()) == 0  # never acted on


def test_an_object_the_operator_refuses_gets_a_warning_event_naming_the_field_not_only_a_condition() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    runtime = handlers.Runtime(make_engine(cluster, FakeNodes(cluster), clock))
    body = manifest()
    body["metadata"].update(generation=3, uid="uid-m")
    cluster.create(body)
    stored = manifest()  # stored before the CRD dropped the value
    stored["metadata"].update(generation=3, uid="uid-m")
    stored["spec"]["docker"] = "Remove"
    reconcile: Callable[..., object] = handlers.reconcile
    reconcile(body=stored, memo={"runtime": runtime})
    reconcile(body=stored, memo={"runtime": runtime})  # the same generation: recorded once
    warnings = [e for e in cluster.events if e[2]]
    assert len(warnings) == 1, cluster.events
    name, node, _, reason, message = warnings[0]
    assert (name, node, reason) == ("m", None, "InvalidSpec")
    assert "spec.docker" in message


def test_an_object_the_operator_cannot_read_gets_an_internal_error_event_as_well() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    engine = make_engine(cluster, FakeNodes(cluster), clock)
    cluster.create(manifest())
    engine.report_invalid(
        "m", 1, "the operator could not read this NodeMigration: boom", reason=ConditionReason.INTERNAL_ERROR
    )
    assert [(e[0], e[2], e[3]) for e in cluster.events] == [("m", True, "InternalError")]
    status = MigrationStatus.from_storage(cluster.objects["m"]["status"])
    assert next(c for c in status.conditions if c.type == "Valid").reason == "InternalError"
