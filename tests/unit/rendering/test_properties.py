"""Property tests: any generated input either renders files that parse back and say exactly what was
asked, or is rejected before anything is written with a message naming the spec field."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.rendering import (
    RegistryMaterial,
    RenderProblems,
    facts_from_json_text,
    facts_to_json_text,
    render_node_config,
)
from shimshift.rendering.output import listing
from shimshift.rendering.templating import toml_str
from tests.unit.rendering.strategies import BAD_FRAGMENTS, KEY, render_inputs

PROFILE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _has_bad_fragment(extra: str) -> bool:
    try:
        doc = tomllib.loads(extra)
    except tomllib.TOMLDecodeError:
        return True
    for path, value in BAD_FRAGMENTS:
        node = doc
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node == value:
                return True
    return False


@given(st.text())
def test_toml_quoting_round_trips_every_string(value: str) -> None:
    assert tomllib.loads(f"k = {toml_str(value)}")["k"] == value


@PROFILE
@given(render_inputs())
def test_every_input_renders_checked_files_or_is_rejected_naming_the_spec_field(
    case: tuple[NodeMigrationSpec, NodeFacts, RegistryMaterial],
) -> None:
    spec, facts, material = case
    try:
        rendered = render_node_config(spec, facts, material)
    except RenderProblems as e:
        assert e.problems
        assert all(p.path.startswith("spec.containerd") for p in e.problems), e
        return
    assert not _has_bad_fragment(spec.containerd.extra_config), "a misspelt/forbidden extra key was accepted"
    for i, reg in enumerate(spec.containerd.registries):
        assert reg.ca_secret is None or reg.host in material.ca_bundles, f"registries[{i}] CA missing"
        hosts = tomllib.loads(rendered.file(f"/etc/containerd/certs.d/{reg.host}/hosts.toml").text)
        urls = set(hosts.get("host", {}))
        assert {m.rstrip("/") for m in reg.mirrors} <= urls  # every mirror, verbatim, nothing injected
        if reg.plain_http:
            assert f"http://{reg.host}" in urls
    config = tomllib.loads(rendered.config_toml.text)
    assert config["version"] == 2
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == rendered.report.sandbox_image
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True  # kubelet: systemd
    shown = listing(rendered, {"/etc/containerd/config.toml": facts.containerd_config})
    for f in rendered.files:
        assert f.path.startswith("/etc/containerd/")
        if f.secret:
            assert f.mode == 0o600
            assert f.text not in shown and "NOT-A-KEY" not in shown
    assert KEY not in "\n".join(rendered.report.lines())


@PROFILE
@given(render_inputs())
def test_facts_survive_their_json_file_form(
    case: tuple[NodeMigrationSpec, NodeFacts, RegistryMaterial],
) -> None:
    facts = case[1]
    assert facts_from_json_text(facts_to_json_text(facts)) == facts
