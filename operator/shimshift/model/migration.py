"""A whole NodeMigration object: checked against the CRD schema, defaulted, checked semantically, typed.

`parse_nodemigration` is what the operator and `shimshift validate` both call, so a manifest the CLI
accepts is one the operator accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.model import keys
from shimshift.model.errors import Problem, ValidationError
from shimshift.model.schema import apply_defaults, validate
from shimshift.model.semantics import check_spec
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import MigrationStatus

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class MigrationRef:
    """Which NodeMigration an Event is about, when the object itself could not be read."""

    name: str
    uid: str


@dataclass(frozen=True)
class NodeMigration:
    name: str
    uid: str
    generation: int
    spec: NodeMigrationSpec
    status: MigrationStatus
    raw_spec: Mapping[str, Any]  # the defaulted spec as the API server would store it


def version_schema(crd: Mapping[str, Any], version: str = keys.VERSION) -> Mapping[str, Any]:
    """The openAPIV3Schema of `version` in the CRD."""
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: Mapping[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"CRD has no version {version}")


def check_nodemigration(obj: Any, crd: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Schema-check, default and semantically check a raw object.

    Returns the defaulted object (None if it is not even a NodeMigration) and every problem found, from
    both the schema and the semantic checks, once each, sorted by field path.
    """
    if not isinstance(obj, Mapping):
        got = type(obj).__name__ if obj is not None else "an empty document"
        return None, [Problem("", f"expected a NodeMigration object (a YAML mapping), got {got}")]
    problems: list[Problem] = []
    if obj.get("apiVersion") != keys.API_VERSION:
        problems.append(Problem("apiVersion", f"must be {keys.API_VERSION}, not {obj.get('apiVersion')!r}"))
    if obj.get("kind") != keys.KIND:
        problems.append(Problem("kind", f"must be {keys.KIND}, not {obj.get('kind')!r}"))
    if problems:
        return None, problems
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        problems.append(Problem("metadata", "Required value: a NodeMigration needs metadata.name"))
    else:
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            problems.append(Problem("metadata.name", "Required value"))
        elif len(name) > 253 or not _NAME.match(name):
            problems.append(
                Problem(
                    "metadata.name",
                    f"{name!r} is not a valid name: lowercase letters, digits, '-' and '.', "
                    "starting and ending with a letter or digit, at most 253 characters",
                )
            )
        if meta.get("namespace"):
            problems.append(
                Problem("metadata.namespace", "NodeMigration is cluster-scoped; remove the namespace")
            )
    schema = version_schema(crd)
    defaulted = apply_defaults(dict(obj), schema)
    defaulted.pop("status", None)  # status is the operator's; the API server ignores it on create
    schema_problems = [p for p in validate(defaulted, schema) if not p.path.startswith("metadata")]
    problems.extend(schema_problems)
    # The semantic checks run even when the schema refused something, so one run reports every problem;
    # a field the schema refused keeps only the schema's word on it (the checks skip wrong types).
    refused = {p.path for p in schema_problems}
    problems.extend(p for p in check_spec(defaulted.get("spec")) if not _within(p.path, refused))
    return defaulted, sorted(set(problems))


def _within(path: str, refused: set[str]) -> bool:
    """`path` is a field the schema refused, or inside one (`spec.ssh` holds `spec.ssh.user`)."""
    return any(path == r or (r != "" and path.startswith((r + ".", r + "["))) for r in refused)


def parse_nodemigration(obj: Any, crd: Mapping[str, Any], *, source: str = "") -> NodeMigration:
    """The typed NodeMigration, or a ValidationError listing every problem with its field path."""
    defaulted, problems = check_nodemigration(obj, crd)
    if problems or defaulted is None:
        raise ValidationError(problems, source=source)
    meta = defaulted["metadata"]
    return NodeMigration(
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 0)),
        spec=NodeMigrationSpec.from_raw(defaulted["spec"]),
        status=MigrationStatus.from_storage(obj.get("status") or {}),
        raw_spec=defaulted["spec"],
    )
