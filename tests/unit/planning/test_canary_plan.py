"""The plan says, per node, which image the verify step's canary will run, or that none will."""

from __future__ import annotations

from typing import Any

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.migration import parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.canary import canary_findings
from shimshift.planning.findings import Level
from tests.unit.engine.fakes import CRD, manifest

BUSYBOX = DockerImage("sha256:" + "b" * 64, ("busybox:1.36",), size=4_000_000)


def spec_of(**fields: Any) -> NodeMigrationSpec:
    return parse_nodemigration(manifest(mode="Plan", **fields), CRD).spec


def test_the_plan_names_the_canary_image_found_on_the_node() -> None:
    (finding,) = canary_findings(spec_of(), "w1", NodeFacts(node="w1", images=(BUSYBOX,)))
    assert finding.code == "CanaryPlanned" and finding.level == Level.INFO and finding.node == "w1"
    assert "image docker.io/library/busybox:1.36 (the node's own image" in finding.message


def test_the_plan_names_the_image_the_spec_names_even_without_facts() -> None:
    spec = spec_of(verify={"canary": {"image": "registry.example.com/busybox:1"}})
    (finding,) = canary_findings(spec, "w1", None)
    assert (
        finding.subject == "registry.example.com/busybox:1" and "spec.verify.canary.image" in finding.message
    )


def test_a_node_without_an_image_for_the_canary_is_a_finding_that_says_what_to_do() -> None:
    (finding,) = canary_findings(spec_of(), "w1", NodeFacts(node="w1"))
    assert finding.code == "NoCanaryImage" and "no canary will run on w1" in finding.message
    assert "spec.verify.canary.image" in finding.advice


def test_a_disabled_canary_says_nothing() -> None:
    spec = spec_of(verify={"canary": {"enabled": False}})
    assert canary_findings(spec, "w1", NodeFacts(node="w1")) == []
