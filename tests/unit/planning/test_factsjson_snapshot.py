"""Facts JSON and snapshot directories: round trips, loud errors, and the committed example."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from testbed import snapshot_gen

from shimshift import rendering
from shimshift.model.errors import ValidationError
from shimshift.model.facts import DockerImage, KubeletFacts, KubeletLayout, NodeFacts, Setting
from shimshift.model.factsjson import facts_from_mapping, facts_to_mapping
from shimshift.planning.snapshot import load_snapshot
from tests.unit.planning.factory import node, pod

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "snapshot"

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
facts_strategy = st.builds(
    NodeFacts,
    node=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    docker_version=st.none() | text,
    containerd_root_free_bytes=st.none() | st.integers(0, 2**50),
    cri_enabled=st.none() | st.booleans(),
    daemon_json=st.none()
    | st.dictionaries(text, st.one_of(text, st.integers(), st.lists(text, max_size=3)), max_size=3),
    kubelet=st.builds(
        KubeletFacts,
        version=st.none() | text,
        layout=st.sampled_from(KubeletLayout),
        flags=st.lists(st.tuples(text, text), max_size=3).map(tuple),
        cgroup_driver=st.none() | st.builds(Setting, text, text, text),
        files=st.dictionaries(text, text, max_size=2),
    ),
    images=st.lists(
        st.builds(
            DockerImage,
            id=text,
            repo_tags=st.lists(text, max_size=2).map(tuple),
            size=st.integers(0, 2**40),
            in_use=st.booleans(),
        ),
        max_size=3,
    ).map(tuple),
    unreadable=st.dictionaries(text, text, max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(facts=facts_strategy)
def test_facts_survive_a_json_round_trip_and_match_the_render_commands_format(facts: NodeFacts) -> None:
    raw = json.loads(json.dumps(facts_to_mapping(facts)))
    assert facts_from_mapping(raw) == facts
    # the text form `shimshift render --facts` reads
    assert rendering.facts_from_json_text(rendering.facts_to_json_text(facts)) == facts


def test_a_misspelt_facts_field_is_rejected_with_its_path() -> None:
    with pytest.raises(ValidationError) as e:
        facts_from_mapping({"node": "n1", "kubelet": {"verison": "v1.23.0"}}, source="facts/n1.json")
    assert "kubelet.verison: unknown field" in str(e.value)
    assert "facts/n1.json" in str(e.value)


def test_a_snapshot_reads_lists_bare_lists_and_yaml_documents(tmp_path: Path) -> None:
    (tmp_path / "nodes.json").write_text(json.dumps({"kind": "List", "items": [node("n1")]}))
    (tmp_path / "pods.yaml").write_text(yaml.safe_dump_all([pod("a"), pod("b")]))
    (tmp_path / "deployments.json").write_text(
        json.dumps([{"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2}}])
    )
    snap = load_snapshot(tmp_path)
    assert [n.name for n in snap.cluster.nodes] == ["n1"]
    assert [p.name for p in snap.cluster.pods] == ["a", "b"]
    assert snap.cluster.controllers[0].kind == "Deployment" and snap.cluster.controllers[0].replicas == 2


def test_a_snapshot_without_pods_says_which_file_is_missing(tmp_path: Path) -> None:
    (tmp_path / "nodes.json").write_text("[]")
    with pytest.raises(ValidationError, match=r"pods\.json: missing"):
        load_snapshot(tmp_path)


def test_a_broken_facts_file_is_named_in_the_error(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "snap")
    (tmp_path / "snap" / "facts" / "cp-1.json").write_text("{not json")
    with pytest.raises(ValidationError, match=r"snap/facts/cp-1\.json"):
        load_snapshot(tmp_path / "snap")


def test_the_committed_example_snapshot_is_what_the_generator_makes(tmp_path: Path) -> None:
    cluster, facts = snapshot_gen.example()
    snapshot_gen.write(
        cluster, facts, tmp_path, source="testbed.snapshot_gen example (synthetic)", fmt="yaml"
    )
    committed = sorted(p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file())
    assert committed == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in committed:
        assert (tmp_path / rel).read_text() == (EXAMPLE / rel).read_text(), (
            f"{rel} differs: regenerate with python -m testbed.snapshot_gen example examples/snapshot"
        )


def test_the_example_has_the_cluster_the_issue_asks_for() -> None:
    snap = load_snapshot(EXAMPLE)
    c = snap.cluster
    assert sum(n.control_plane for n in c.nodes) == 3 and sum(not n.control_plane for n in c.nodes) == 9
    assert 140 <= len(c.pods) <= 160
    drivers = {f.kubelet.cgroup_driver.value for f in snap.facts.values() if f.kubelet.cgroup_driver}
    assert drivers == {"systemd", "cgroupfs"}
    assert any("insecure-registries" in (f.daemon_json or {}) for f in snap.facts.values())
