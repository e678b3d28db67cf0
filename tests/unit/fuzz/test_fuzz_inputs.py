"""The fuzzers that found the input crashes, hangs and blow-ups, kept as bounded property tests.

They mutate the shipped examples (manifests, the example snapshot, node facts) with what a hostile or
careless user writes: wrong types, huge numbers, overlong durations, deep nesting, YAML aliases,
truncation, files that are not files. The property: every input gets an answer (exit 0-3 with a message,
or a per-node blocker), never a traceback, within 10 s. The in-process fuzzers are fast; a few inputs
also run in a fresh `python -m shimshift` (tests/unit/fuzz/cli.py) to bound time and peak memory
(200 MB) of exactly that process. The whole set stays near a minute on a 2-core machine.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shimshift.entry.cli import main
from shimshift.model import parse_nodemigration
from shimshift.model.factsjson import facts_from_mapping, facts_to_mapping
from shimshift.planning.build import build_plan
from shimshift.planning.snapshot import load_snapshot
from shimshift.resources import load_crd
from tests.unit.fuzz.cli import TIMEOUT, run_cli

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SNAPSHOT = REPO / "examples" / "snapshot"
PLAN = REPO / "examples" / "plan.yaml"
NOW = "2026-01-15T12:00:00Z"

BOUNDED = settings(
    deadline=None,  # the shared machine's load varies; the 10 s bound is asserted per input instead
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    derandomize=True,  # the same inputs on every run: a CI failure reproduces locally
)


def run(*argv: str) -> tuple[int, str, float]:
    out = io.StringIO()
    started = time.monotonic()
    status = main(list(argv), out=out)
    return status, out.getvalue(), time.monotonic() - started


# --- hostile values ---------------------------------------------------------------------------------


def nested(depth: int, leaf: Any = "x") -> Any:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


hostile_scalars = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=30),
    st.sampled_from(["9" * 400 + "h", "1" * 11 + "s", "8761h", "150%", "9" * 50 + "%", "1e309", "-5s", "²%"]),
    st.builds(lambda n: "9" * n, st.integers(1, 5000)),
)
hostile_values = st.one_of(
    hostile_scalars,
    st.lists(hostile_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), hostile_scalars, max_size=3),
    st.builds(lambda n: Deep(n), st.integers(1, 3000)),
)


class Deep:
    """A value nested `depth` levels, built only when written (hypothesis cannot print it)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a document (mapping keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: Any, path: tuple[Any, ...], value: Any, drop: bool) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    if drop and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = DEEP_MARK + str(value.depth) if isinstance(value, Deep) else value
    return doc


DEEP_MARK = "deep-value-"


def nested_text(depth: int) -> str:
    """`nested(depth)` as YAML flow text (PyYAML's and json's dumpers recurse, so cannot write it)."""
    opens = "".join("[" if i % 2 else "{k: " for i in range(depth))
    return opens + "x" + "".join("]" if i % 2 else "}" for i in reversed(range(depth)))


def dump(doc: Any) -> str:
    text = yaml.safe_dump(doc, sort_keys=False)
    return re.sub(DEEP_MARK + r"(\d+)", lambda m: nested_text(int(m.group(1))), text)


# --- manifests: `shimshift validate` -------------------------------------------------------------

MANIFESTS = [yaml.safe_load(p.read_text()) for p in EXAMPLES]
MANIFEST_PATHS = [(i, p) for i, m in enumerate(MANIFESTS) for p in paths(m)]


@settings(BOUNDED, max_examples=60)
@given(st.sampled_from(MANIFEST_PATHS), hostile_values, st.booleans())
def test_validate_answers_every_mutated_example_manifest(
    tmp_path: Path, where: tuple[int, tuple[Any, ...]], value: Any, drop: bool
) -> None:
    index, path = where
    f = tmp_path / "m.yaml"
    f.write_text(dump(mutate(MANIFESTS[index], path, value, drop)))
    status, out, seconds = run("validate", "-f", str(f))
    assert status in (0, 1), out
    assert seconds < TIMEOUT
    if status == 1:
        assert str(f) in out


raw_texts = st.one_of(
    st.builds(
        lambda n, o, c: o * n + c * n,
        st.one_of(st.integers(1, 50_000), st.sampled_from([1000, 2000, 100_000])),
        st.sampled_from(["[", "{a: ", "- "]),
        st.sampled_from(["]", "}", ""]),
    ),
    st.builds(
        lambda levels, width: (
            "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"
            "spec:\n  nodeNames: [a]\n  x:\n"
            + "\n".join(
                [f"    a0: &a0 [{','.join(['x'] * width)}]"]
                + [f"    a{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
            )
            + f"\n  mode: *a{levels - 1}\n"
        ),
        st.integers(2, 6),
        st.integers(2, 6),
    ),
    st.builds(lambda t, n: t[:n], st.sampled_from([p.read_text() for p in EXAMPLES]), st.integers(0, 2000)),
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)


@settings(BOUNDED, max_examples=40)
@given(raw_texts)
def test_validate_answers_raw_hostile_yaml(tmp_path: Path, text: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    status, out, seconds = run("validate", "-f", str(f))
    assert status in (0, 1), out
    assert seconds < TIMEOUT


def test_hostile_manifests_stay_within_10_s_and_200_mb_in_a_fresh_process(tmp_path: Path) -> None:
    base = PLAN.read_text()
    cases = {
        "deep.yaml": "[" * 100_000 + "]" * 100_000,
        "dashes.yaml": "- " * 100_000 + "x",
        "aliases.yaml": "\n".join(
            ["a0: &a0 [" + ",".join(["lol"] * 12) + "]"]
            + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 12) + "]" for i in range(1, 12)]
        ),
        "digits.yaml": base + "  rollout:\n    maxUnavailable: " + "9" * 4000 + "\n",
        "toml.yaml": base + "  containerd:\n    extraConfig: 'a = " + "[" * 30_000 + "]" * 30_000 + "'\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        result = run_cli("validate", "-f", str(tmp_path / name))
        result.assert_handled(allowed=(1,))


# --- snapshots: `shimshift plan --snapshot` --------------------------------------------------------

SNAPSHOT_FILES = sorted(p.name for p in SNAPSHOT.glob("*.yaml"))
SNAPSHOT_DOCS = {name: yaml.safe_load((SNAPSHOT / name).read_text()) for name in SNAPSHOT_FILES}
SNAPSHOT_PATHS = [(name, p) for name in SNAPSHOT_FILES for p in paths(SNAPSHOT_DOCS[name])]


@pytest.fixture(scope="module")
def snapshot_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fuzz") / "snap"
    shutil.copytree(SNAPSHOT, target)
    return target


def restore(snapshot: Path) -> None:
    shutil.rmtree(snapshot)
    shutil.copytree(SNAPSHOT, snapshot)


def plan(snapshot: Path) -> tuple[int, str, float]:
    return run("plan", "-f", str(PLAN), "--snapshot", str(snapshot), "--now", NOW, "--format", "json")


@settings(BOUNDED, max_examples=20)
@given(st.sampled_from(SNAPSHOT_PATHS), hostile_values, st.booleans())
def test_plan_answers_every_mutated_snapshot_object(
    snapshot_copy: Path, where: tuple[str, tuple[Any, ...]], value: Any, drop: bool
) -> None:
    name, path = where
    try:
        (snapshot_copy / name).write_text(dump(mutate(SNAPSHOT_DOCS[name], path, value, drop)))
        status, out, seconds = plan(snapshot_copy)
    finally:
        (snapshot_copy / name).write_text((SNAPSHOT / name).read_text())
    assert status in (0, 1, 2, 3), out
    assert seconds < TIMEOUT
    if status == 1:
        assert out.startswith("error: ") and "\n" in out, out


corruptions = st.one_of(
    st.tuples(
        st.just("truncate"),
        st.sampled_from([*SNAPSHOT_FILES, "snapshot.json", "facts/worker-01.json"]),
        st.integers(0, 4000),
    ),
    st.tuples(
        st.just("nest"), st.sampled_from([*SNAPSHOT_FILES, "facts/worker-03.json"]), st.integers(50, 200_000)
    ),
    st.tuples(
        st.just("junk"),
        st.sampled_from([*SNAPSHOT_FILES, "facts/cp-1.json", "snapshot.json"]),
        st.integers(0, 2**32),
    ),
)


@settings(BOUNDED, max_examples=15)
@given(corruptions)
def test_plan_answers_truncated_nested_and_junk_snapshot_files(
    snapshot_copy: Path, corruption: tuple[str, str, int]
) -> None:
    kind, name, n = corruption
    target = snapshot_copy / name
    original = (SNAPSHOT / name).read_bytes()
    try:
        if kind == "truncate":
            target.write_bytes(original[:n])
        elif kind == "nest":
            # YAML at most 5,000 deep in process: libyaml's C composer (the old loader) segfaults deeper, which
            # would end the test run; the fresh-process test above takes the 200 KB case.
            target.write_text("[" * n + "]" * n if name.endswith(".json") else "- " * min(n, 5000) + "x\n")
        else:
            target.write_bytes(n.to_bytes(8, "little") * 64 + original[n % 200 :])
        status, out, seconds = plan(snapshot_copy)
    finally:
        target.write_bytes(original)
    assert status in (0, 1, 2, 3), out
    assert seconds < TIMEOUT


def test_corrupted_snapshots_stay_within_10_s_and_200_mb_in_a_fresh_process(tmp_path: Path) -> None:
    def fresh() -> Path:
        target = tmp_path / "snap"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(SNAPSHOT, target)
        return target

    def pods_nested(s: Path) -> None:
        (s / "pods.yaml").write_text("- " * 100_000 + "x\n")

    def facts_fifo(s: Path) -> None:
        (s / "facts/worker-01.json").unlink()
        os.mkfifo(s / "facts/worker-01.json")

    def facts_urandom(s: Path) -> None:
        (s / "facts/worker-01.json").unlink()
        (s / "facts/worker-01.json").symlink_to("/dev/urandom")

    def nodes_fifo(s: Path) -> None:
        (s / "nodes.yaml").unlink()
        os.mkfifo(s / "nodes.yaml")

    def aliases_in_pods(s: Path) -> None:
        (s / "pods.yaml").write_text(
            "\n".join(
                ["a0: &a0 [" + ",".join(["lol"] * 12) + "]"]
                + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 12) + "]" for i in range(1, 12)]
            )
        )

    cases: dict[str, Callable[[Path], None]] = {
        "pods nested 200 KB": pods_nested,
        "facts FIFO": facts_fifo,
        "facts urandom": facts_urandom,
        "nodes FIFO": nodes_fifo,
        "aliases in pods": aliases_in_pods,
    }
    for what, corrupt in cases.items():
        snap = fresh()
        corrupt(snap)
        result = run_cli("plan", "-f", str(PLAN), "--snapshot", str(snap), "--now", NOW)
        result.assert_handled(allowed=(1,))
        assert result.stdout.startswith("error: "), (what, result)


# --- node facts and their files --------------------------------------------------------------------

SPEC = parse_nodemigration(yaml.safe_load(PLAN.read_text()), load_crd()).spec
LOADED = load_snapshot(SNAPSHOT)
NODE = "worker-01"
LOADED_NOW = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)

toml_texts = st.one_of(
    st.builds(lambda n: "a = " + "[" * n + "]" * n, st.integers(1, 50_000)),
    st.builds(lambda n: "a = " + "{b = " * n + "1" + "}" * n, st.integers(1, 20_000)),
    st.builds(lambda n: "".join(f"[{'a.' * i}b]\n" for i in range(n)), st.integers(1, 300)),
    st.builds(lambda n: "[" + ".".join(["a"] * n) + "]\nx = 1\n", st.integers(1, 5000)),
    st.text(max_size=200),
    st.builds(lambda n: "x = '" + "y" * n + "'\n", st.sampled_from([10, 2 << 20])),
)


@settings(BOUNDED, max_examples=20)
@given(
    st.sampled_from(["containerd_config", "kubelet_config_file", "daemon_json"]),
    toml_texts,
    st.integers(1, 3000),
)
def test_a_nodes_unreadable_file_is_that_nodes_blocker_and_the_others_are_planned(
    field: str, text: str, depth: int
) -> None:
    raw = facts_to_mapping(LOADED.facts[NODE])
    if field == "containerd_config":
        raw["containerd_config"] = text
    elif field == "daemon_json":
        key = ("registry-mirrors", "insecure-registries", "exec-opts", "data-root")[depth % 4]
        raw["daemon_json"] = {**(raw.get("daemon_json") or {}), key: nested(depth)}
    else:
        files = dict(raw["kubelet"].get("files") or {})
        config = raw["kubelet"].get("config_file") or "/var/lib/kubelet/config.yaml"
        files[config] = "- " * depth + "x\n" if depth % 2 else text
        raw["kubelet"] = {**raw["kubelet"], "files": files, "config_file": config}
    facts = dict(LOADED.facts)
    try:
        facts[NODE] = facts_from_mapping(raw)
    except (RecursionError, ValueError):  # pragma: no cover - the codec walks types, not values
        pytest.fail("the facts codec could not carry the node's file")
    started = time.monotonic()
    report = build_plan(SPEC, LOADED.cluster, facts, LOADED_NOW)
    assert time.monotonic() - started < TIMEOUT
    others = [n for n in report.nodes if n.name != NODE]
    assert others and all(n.containerd.computed or n.containerd.reason for n in others)
    assert any(n.containerd.computed for n in others)
