"""The JSON Schema of `report_to_json`, generated from the report's dataclasses.

The committed copy is docs/plan-report-schema.json; a test regenerates it and fails when the two
differ (SHIMSHIFT_REGEN_GOLDEN=1 rewrites it), and validates the example report against it, so the
documented contract and the produced JSON cannot drift apart. Pure.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, Union, get_args, get_origin

from shimshift.model.factsjson import camel
from shimshift.planning.report import SCHEMA_VERSION, PlanReport

#: Descriptions of the fields a CI gate reads, by "Class.field".
DESCRIPTIONS: Mapping[str, str] = {
    "PlanReport.schema_version": f"Always {SCHEMA_VERSION!r} for this schema.",
    "PlanReport.name": "metadata.name of the NodeMigration.",
    "PlanReport.generated_at": "When the report was built (UTC, RFC 3339).",
    "PlanReport.facts_taken_at": "When the snapshot was taken; empty for a live plan.",
    "PlanReport.summary": "Counts and the verdict; gate CI on summary.exitCode or summary.verdict.",
    "PlanReport.blockers": "Findings that would make the run fail; non-empty means exit code 3.",
    "PlanReport.warnings": "Findings that let the run go through with a risk (exit code 2 without blockers).",
    "PlanReport.notes": "Findings worth knowing; they do not change the exit code.",
    "Summary.exit_code": "0 clean, 2 warnings, 3 blockers (shimshift plan's exit status).",
    "Finding.code": "Stable identifier of the kind of finding (e.g. PdbNeverAllows, ImagesExceedDisk).",
    "Finding.node": "The node it concerns; empty for fleet-wide findings.",
    "PodPlan.verdict": "The Eviction API's answer right now: Allowed (200), NoBudget (429), "
    "MultiplePDBs (500); null when the pod is not evicted.",
    "FileSection.computed": "False when the files could not be planned; `reason` says why.",
    "WavePlan.runs_operator": "True for the last wave, the node the planning operator runs on, which "
    "is migrated after every other selected node.",
    "WavePlan.api_downtime": "True for a wave of a node that runs the cluster's only API server "
    "(spec.rollout.allowApiDowntime): migrated last of all, the Kubernetes API unavailable during "
    "its switch.",
    "NodeReport.estimate_seconds": "Estimated time for this node (see estimateAssumptions).",
    "RolloutGates.zone_limit": "spec.rollout.maxUnavailablePerZone as given; empty without one.",
    "RolloutGates.zones": "Zones (values of zoneLabel) of the selected workers; unlabelled nodes are one.",
    "RolloutGates.health_gates": "One line per gate of spec.rollout.gates and its state when planned "
    "(open now, closed now: why, error now: what failed; not read offline).",
    "RolloutGates.health_gates_timeout": "spec.rollout.gates.timeout; empty without gates.",
}

_CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path", "action", "changed", "secret", "diff"],
    "properties": {
        "path": {"type": "string"},
        "action": {"enum": ["create", "edit", "remove"]},
        "changed": {"type": "boolean"},
        "secret": {"type": "boolean", "description": "Secret files show only a hash in `diff`."},
        "diff": {"type": "string", "description": "Unified diff of the file, current -> planned."},
    },
}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, defs) for a in get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        _define(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], defs)}
        return {"type": "array", "prefixItems": [_schema(a, defs) for a in args], "items": False}
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        return {"type": "object"}
    simple = {str: "string", int: "integer", bool: "boolean", float: "number"}
    return {"type": simple[tp]}


def _define(cls: type, defs: dict[str, Any]) -> None:
    if cls.__name__ in defs:
        return
    defs[cls.__name__] = {}  # placeholder against recursion
    props: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        prop = _schema(hints[f.name], defs)
        if cls.__name__ == "FileSection" and f.name == "changes":
            prop = {"type": "array", "items": _CHANGE}
        description = DESCRIPTIONS.get(f"{cls.__name__}.{f.name}")
        if description:
            prop = {**prop, "description": description}
        props[camel(f.name)] = prop
    if cls.__name__ == "DockerDependency":
        props["advice"] = {"type": "string", "description": "What to do about it."}
    defs[cls.__name__] = {
        "type": "object",
        "additionalProperties": False,
        "required": sorted(props),
        "properties": props,
    }


def report_json_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    _define(PlanReport, defs)
    root = defs.pop("PlanReport")
    root["properties"]["schemaVersion"] = {**root["properties"]["schemaVersion"], "const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://shimshift.io/schemas/{SCHEMA_VERSION.split('/', 1)[1]}.json",
        "title": "shimshift plan report",
        "description": "The JSON form of `shimshift plan --format json` and of the report the operator "
        "writes for mode: Plan. A new optional field keeps the version; a removed or renamed field bumps it.",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
