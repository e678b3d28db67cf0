"""Snapshot directories: a cluster's nodes, pods, PDBs, controllers and per-node facts as plain files.

An air-gapped team runs `shimshift snapshot` where the cluster is and `shimshift plan --snapshot DIR`
wherever the reviewers are. The layout (documented in docs/snapshot-format.md):

    DIR/snapshot.json                   {"format": "shimshift.io/snapshot/v1", "takenAt": ..., ...}
    DIR/nodes.{json,yaml}               a List (kubectl get -o json/yaml), a bare list or YAML documents
    DIR/pods.{json,yaml}
    DIR/poddisruptionbudgets.{json,yaml}
    DIR/{daemonsets,replicasets,deployments,statefulsets,jobs}.{json,yaml}   (each optional)
    DIR/runtimeclasses.{json,yaml}      (optional)
    DIR/facts/<node>.json               NodeFacts (shimshift.model.factsjson), one per probed node

Only reading and writing files happens here; parsing into values is `shimshift.planning.cluster`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from shimshift.model.errors import Problem, ValidationError
from shimshift.model.facts import NodeFacts
from shimshift.model.factsjson import facts_from_mapping, facts_to_mapping
from shimshift.model.limits import (
    MAX_FACTS_BYTES,
    MAX_NODE_FILE_BYTES,
    MAX_SNAPSHOT_FILE_BYTES,
    InputLimitError,
    json_loads,
    read_text,
    yaml_load_all,
)
from shimshift.planning.cluster import (
    Cluster,
    Controller,
    parse_controller,
    parse_node,
    parse_pdb,
    parse_pod,
    parse_runtime_class,
)
from shimshift.planning.rawshape import ShapeError

T = TypeVar("T")

FORMAT = "shimshift.io/snapshot/v1"
META_FILE = "snapshot.json"
FACTS_DIR = "facts"
NODES, PODS, PDBS = "nodes", "pods", "poddisruptionbudgets"
RUNTIME_CLASSES = "runtimeclasses"
CONTROLLER_KINDS: Mapping[str, str] = {
    "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
}


@dataclass(frozen=True)
class Snapshot:
    cluster: Cluster
    facts: Mapping[str, NodeFacts]
    taken_at: str = ""
    source: str = ""  # where it was taken (context name, generator), for the report header


def _find(directory: Path, name: str) -> tuple[Path, str] | None:
    for suffix in (".json", ".yaml", ".yml"):
        path = directory / f"{name}{suffix}"
        if path.exists() or path.is_symlink():
            return path, suffix
    return None


def _read_objects(directory: Path, name: str, *, required: bool) -> list[Any]:
    found = _find(directory, name)
    if found is None:
        if required:
            raise ValidationError(
                [Problem(f"{name}.json", "missing; a snapshot needs nodes.json and pods.json (or .yaml)")],
                source=str(directory),
            )
        return []
    path, suffix = found
    try:
        text = read_text(path, MAX_SNAPSHOT_FILE_BYTES)
        docs: list[Any] = [json_loads(text)] if suffix == ".json" else list(yaml_load_all(text))
        del text  # the raw text of a large pods file is as big as its objects
    except InputLimitError as e:
        raise ValidationError([Problem(path.name, f"refused: {e}")], source=str(directory)) from e
    except UnicodeDecodeError as e:
        raise ValidationError([Problem(path.name, "is not UTF-8 text")], source=str(directory)) from e
    except OSError as e:
        raise ValidationError(
            [Problem(path.name, f"cannot be read: {e.strerror or e}")], source=str(directory)
        ) from e
    except (ValueError, yaml.YAMLError) as e:
        raise ValidationError(
            [Problem(path.name, f"not valid {suffix[1:].upper()}: {e}")], source=str(directory)
        ) from e
    items: list[Any] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, Mapping) and isinstance(doc.get("items"), list):
            items.extend(doc["items"])
        elif isinstance(doc, list):
            items.extend(doc)
        elif isinstance(doc, Mapping):
            items.append(dict(doc))
        else:
            raise ValidationError(
                [Problem(path.name, "expected a List object, a list or objects")], source=str(directory)
            )
    return items


def _parsed(directory: Path, name: str, parse: Callable[[Any], T], items: Iterable[Any]) -> Iterator[T]:
    """`parse` of each item; a wrongly typed field is a ValidationError naming the file and the path."""
    file = next(
        (f"{name}{s}" for s in (".json", ".yaml", ".yml") if (directory / f"{name}{s}").exists()), name
    )
    for i, item in enumerate(items):
        try:
            yield parse(item)
        except ShapeError as e:
            where = f"{file}: items[{i}]" + (f".{e.path}" if e.path else "")
            raise ValidationError([Problem(where, e.message)], source=str(directory)) from None
        except ValidationError as e:
            raise ValidationError(
                [Problem(f"{file}: items[{i}]: {p.path}", p.message) for p in e.problems],
                source=str(directory),
            ) from None


def load_snapshot(directory: Path) -> Snapshot:
    """Read a snapshot directory; a ValidationError names the file and what is wrong with it."""
    if not directory.is_dir():
        raise ValidationError([Problem("", f"{directory} is not a directory")], source="--snapshot")
    return _load(directory)  # `shimshift plan` pauses the cyclic GC around this (plancli.gc_paused)


def _consumed(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The items in order, each dropped from `items` as it is handed out: the parsed values take the
    memory the raw objects free as parsing goes, instead of piling on top of all of them."""
    items.reverse()
    while items:
        yield items.pop()


def _load(directory: Path) -> Snapshot:
    meta: Mapping[str, Any] = {}
    if (directory / META_FILE).exists() or (directory / META_FILE).is_symlink():
        meta = _read_json(directory / META_FILE, MAX_NODE_FILE_BYTES, META_FILE, str(directory))
        if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, Mapping) else meta
            raise ValidationError(
                [Problem(f"{META_FILE}: format", f"expected {FORMAT}, got {got!r}"[:300])],
                source=str(directory),
            )
    controllers: list[Controller] = []
    for name, kind in CONTROLLER_KINDS.items():
        objects = _read_objects(directory, name, required=False)
        for obj in objects:
            if isinstance(obj, dict):
                obj.setdefault("kind", kind)
        controllers.extend(_parsed(directory, name, parse_controller, objects))
    # One resource at a time, each raw list dropped once parsed: the raw pods are the memory peak.
    nodes = tuple(_parsed(directory, NODES, parse_node, _read_objects(directory, NODES, required=True)))
    pods = tuple(
        _parsed(directory, PODS, parse_pod, _consumed(_read_objects(directory, PODS, required=True)))
    )
    pdbs = tuple(_parsed(directory, PDBS, parse_pdb, _read_objects(directory, PDBS, required=False)))
    classes = tuple(
        _parsed(
            directory,
            RUNTIME_CLASSES,
            parse_runtime_class,
            _read_objects(directory, RUNTIME_CLASSES, required=False),
        )
    )
    cluster = Cluster(nodes, pods, pdbs, tuple(controllers), classes)
    facts: dict[str, NodeFacts] = {}
    facts_dir = directory / FACTS_DIR
    if facts_dir.is_dir():
        for path in sorted(facts_dir.glob("*.json")):
            source = f"{directory.name}/{FACTS_DIR}/{path.name}"
            raw = _read_json(path, MAX_FACTS_BYTES, "", source)
            node_facts = facts_from_mapping(raw, source=source)
            facts[node_facts.node] = node_facts
    return Snapshot(cluster, facts, str(meta.get("takenAt", "")), str(meta.get("source", "")))


def _read_json(path: Path, max_bytes: int, where: str, source: str) -> Any:
    try:
        return json_loads(read_text(path, max_bytes))
    except InputLimitError as e:
        raise ValidationError([Problem(where, f"refused: {e}")], source=source) from e
    except UnicodeDecodeError as e:
        raise ValidationError([Problem(where, "is not UTF-8 text")], source=source) from e
    except OSError as e:
        raise ValidationError([Problem(where, f"cannot be read: {e.strerror or e}")], source=source) from e
    except ValueError as e:
        raise ValidationError([Problem(where, f"not valid JSON: {e}")], source=source) from e


def _dump(path: Path, items: Sequence[Mapping[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    if path.suffix == ".json":
        tmp.write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}, indent=1) + "\n"
        )
    else:
        body = {"apiVersion": "v1", "kind": "List", "items": list(items)}
        tmp.write_text(yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=110))
    tmp.replace(path)


def write_snapshot(
    directory: Path,
    objects: Mapping[str, Sequence[Mapping[str, Any]]],
    facts: Iterable[NodeFacts],
    *,
    taken_at: str,
    source: str,
    fmt: str = "yaml",
) -> None:
    """Write `objects` (keyed nodes/pods/poddisruptionbudgets/daemonsets/...) and facts into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FACTS_DIR).mkdir(exist_ok=True)
    meta = {"format": FORMAT, "takenAt": taken_at, "source": source}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    for name, items in objects.items():
        _dump(directory / f"{name}.{fmt}", items)
    for node_facts in facts:
        path = directory / FACTS_DIR / f"{node_facts.node}.json"
        path.write_text(json.dumps(facts_to_mapping(node_facts), indent=1, sort_keys=False) + "\n")
