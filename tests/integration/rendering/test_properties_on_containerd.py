"""Property test against the real containerd 1.6, 2.2 and 2.3 (the generated facts given each build's
version, so the schema is 2, 3 or 4): generated registries, daemon.json contents, current
configs and extra fragments either render files containerd accepts with CRI `ok` and reads in full
(every key shows up in its effective config), or are rejected before anything is written, naming the
spec field."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.rendering import RegistryMaterial, RenderProblems, render_node_config
from tests.integration.rendering.harness import (
    BUILD_IDS,
    BUILDS,
    Build,
    config_dump,
    ignored_keys,
    node_root,
    running_containerd,
)
from tests.unit.rendering.strategies import render_inputs


@pytest.mark.timeout(180)
@pytest.mark.parametrize("build", BUILDS, ids=BUILD_IDS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(render_inputs())
def test_generated_inputs_give_configs_containerd_reads_in_full_with_cri_ok_or_a_field_error(
    build: Build,
    case: tuple[NodeMigrationSpec, NodeFacts, RegistryMaterial],
) -> None:
    spec, facts, material = case
    facts = dataclasses.replace(facts, containerd_version=build.version)
    with node_root() as root:
        try:
            rendered = render_node_config(spec, facts, material, root.layout)
        except RenderProblems as e:
            assert all(p.path.startswith("spec.containerd") for p in e.problems), e
            return
        pinned = spec.containerd.config_version
        assert rendered.report.config_version == (pinned or build.schema)
        root.write(rendered)
        dump = config_dump(root, build)
        assert dump.returncode == 0, dump.stderr
        native = rendered.report.config_version == build.schema
        if native:  # an older schema is dumped converted, under the new names: the oracle compares names
            assert ignored_keys(rendered.config_toml.text, dump.stdout) == []
        with running_containerd(root, build) as containerd:
            assert containerd.cri_status() == "ok", containerd.log()[-2000:]
            warnings = containerd.config_warnings()
            assert not [w for w in warnings if "Ignoring unknown key" in w], warnings
            if native:
                assert warnings == []
            else:  # a pinned older schema: converted at every start, as the plan warns
                assert any("converted to" in w for w in rendered.report.warnings)
