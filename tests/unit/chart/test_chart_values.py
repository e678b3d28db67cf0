"""values.yaml documents every value, values.schema.json is closed, and every value reaches a template.

We test these aspects:
- every object in the schema rejects unknown keys (a misspelt value fails the install);
- every key in values.yaml is in the schema, with a description, and carries a comment in values.yaml;
- every value is read by some template (a value nobody reads is a lie in the docs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.unit.chart import helm

SCHEMA: dict[str, Any] = json.loads((helm.CHART / "values.schema.json").read_text())
VALUES_TEXT = (helm.CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
TEMPLATES = {p.name: p.read_text() for p in (helm.CHART / "templates").iterdir()}

# Values whose content is a Kubernetes structure passed through with toYaml: their keys are
# Kubernetes fields, documented by Kubernetes, not by this chart.
PASS_THROUGH = ("resources", "podSecurityContext", "containerSecurityContext")


def object_schemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object" or "properties" in schema:
        yield path or "<root>", schema
    for name, sub in schema.get("properties", {}).items():
        yield from object_schemas(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from object_schemas(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from object_schemas(schema["additionalProperties"], f"{path}.*")
    for sub in schema.get("oneOf", []):
        yield from object_schemas(sub, path)


def value_paths(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child
            if not child.startswith(PASS_THROUGH):
                yield from value_paths(sub, child)


def schema_at(path: str) -> dict[str, Any]:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_every_object_in_the_values_schema_is_closed() -> None:
    open_objects = [
        path
        for path, schema in object_schemas(SCHEMA)
        if schema.get("additionalProperties") is not False
        # A string-to-string map (labels, annotations, nodeSelector) is closed by its value type.
        and schema.get("additionalProperties") != {"type": "string"}
    ]
    assert open_objects == []


def test_every_value_is_in_the_schema_with_a_description() -> None:
    missing = []
    for path in value_paths(VALUES):
        try:
            if not schema_at(path).get("description"):
                missing.append(f"{path}: no description")
        except KeyError:
            missing.append(f"{path}: not in values.schema.json")
    assert missing == []


def test_every_value_carries_a_comment_in_values_yaml() -> None:
    """Each key has a comment right above it, or sits in a block whose key has one."""
    undocumented = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    previous = ""
    for line in VALUES_TEXT.splitlines():
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = previous.lstrip().startswith("#") or any(d for _, d in stack)
            if not documented:
                undocumented.append(line.strip())
            stack.append((indent, previous.lstrip().startswith("#")))
        if line.strip():
            previous = line
    # Parents such as `image:` need no comment of their own when every child has one.
    parents = {p.rsplit(".", 1)[-1] for p in value_paths(VALUES) if isinstance(_get(p), dict)}
    assert [u for u in undocumented if u.split(":")[0] not in parents] == []


def _get(path: str) -> Any:
    node = VALUES
    for part in path.split("."):
        node = node[part]
    return node


def is_read_by_a_template(path: str) -> bool:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".Values." + ".".join(parts[:cut])
        rest = parts[cut:]
        for text in TEMPLATES.values():
            for match in re.finditer(re.escape(prefix) + r"(?![\w.])", text):
                if not rest:
                    return True
                # `with .Values.x` / `toYaml .Values.x`: the rest is read relative to it (or wholesale).
                before = text[max(0, match.start() - 12) : match.start()]
                if "toYaml" in before:
                    return True
                if "with" in before and re.search(r"(?<![\w])\." + re.escape(rest[0]) + r"\b", text):
                    return True
    return False


def leaf_paths() -> list[str]:
    """Values a template reads: scalars, lists, maps left empty for the user, pass-through blocks."""
    return [
        p for p in value_paths(VALUES) if not isinstance(_get(p), dict) or not _get(p) or p in PASS_THROUGH
    ]


def test_every_value_is_read_by_a_template() -> None:
    assert len(leaf_paths()) > 40
    unread = [p for p in leaf_paths() if not is_read_by_a_template(p)]
    assert unread == []


def test_the_usage_check_notices_a_value_no_template_reads() -> None:
    assert not is_read_by_a_template("image.color")
    assert not is_read_by_a_template("metrics.serviceMonitor.honorLabels")
    assert is_read_by_a_template("metrics.serviceMonitor.interval")


def test_every_value_appears_in_the_chart_docs() -> None:
    docs = (helm.REPO / "docs" / "chart.md").read_text()

    def documented(path: str) -> bool:
        parts = path.split(".")
        wildcards = [".".join(parts[:i]) + ".*" for i in range(1, len(parts))]
        return any(f"`{name}" in docs for name in [path, parts[-1], "." + parts[-1], *wildcards])

    missing = [p for p in leaf_paths() if not documented(p)]
    assert missing == [], "document them in docs/chart.md (section 3)"
