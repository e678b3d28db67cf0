"""A carried runtime's binary must be on the node: the probe looks for each daemon.json runtime's
`path` and the containerd shim of each runtime type (runc's for a `path` runtime) in the same round
trip, and a missing one is a finding: a blocker for Docker's default runtime (containerd's
default_runtime_name: every pod would fail), which the facts step refuses in the plan's words, and
a warning for another runtime (the pods of its RuntimeClass would fail)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.runtimes import shim_binary
from shimshift.model.spec import OutsideContainersPolicy
from shimshift.planning.findings import Level
from shimshift.planning.report import EXIT_BLOCKERS, EXIT_WARNINGS
from shimshift.planning.settings import RUNTIME_BINARY_MISSING
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.facts.refuse import refusal
from tests.unit.planning.test_runtimes import GPU_NODE, facts_with, plan
from tests.unit.playbooks.probe import probe_output

SCRIPT = Path(__file__).resolve().parents[3] / "operator" / "shimshift" / "data" / "playbooks" / "scripts"
NVIDIA = "nvidia-container-runtime"
RUNC_SHIM = "containerd-shim-runc-v2"
GVISOR = {"runsc": {"path": "/usr/local/bin/runsc"}}


def probed(daemon: dict[str, Any], binaries: dict[str, str]) -> NodeFacts:
    return replace(facts_with(daemon), runtime_binaries=binaries)


def missing_findings(facts: NodeFacts) -> list[Any]:
    report = plan(facts)
    return [f for f in (*report.blockers, *report.warnings) if f.code == RUNTIME_BINARY_MISSING]


def test_the_shim_of_a_runtime_type_is_containerds_binary_name() -> None:
    assert shim_binary("io.containerd.runc.v2") == RUNC_SHIM
    assert shim_binary("io.containerd.runsc.v1") == "containerd-shim-runsc-v1"
    assert shim_binary("io.containerd.kata.v2") == "containerd-shim-kata-v2"


def test_the_default_runtimes_missing_binary_blocks_the_plan_and_the_facts_step_refuses_in_its_words() -> (
    None
):
    facts = probed(GPU_NODE, {NVIDIA: "", RUNC_SHIM: "/usr/bin/containerd-shim-runc-v2"})
    (finding,) = missing_findings(facts)
    assert finding.level == Level.BLOCKER
    assert finding.subject == "daemon.json runtimes.nvidia"
    assert NVIDIA in finding.message and "every pod without a RuntimeClass" in finding.message
    assert f"install {NVIDIA} on the node" in finding.advice
    assert plan(facts).summary.exit_code == EXIT_BLOCKERS
    why = refusal(OutsideContainersPolicy.BLOCK, facts)
    assert why == f"{finding.message}: {finding.advice}"


def test_another_runtimes_missing_binary_is_a_warning_and_the_facts_step_lets_the_node_go() -> None:
    daemon = {"exec-opts": ["native.cgroupdriver=systemd"], "runtimes": GVISOR}
    facts = probed(daemon, {"/usr/local/bin/runsc": "", RUNC_SHIM: "/usr/bin/containerd-shim-runc-v2"})
    (finding,) = missing_findings(facts)
    assert finding.level == Level.WARNING
    assert "/usr/local/bin/runsc" in finding.message and "handler runsc" in finding.message
    assert "remove the runtime from daemon.json runtimes" in finding.advice
    assert plan(facts).summary.exit_code == EXIT_WARNINGS
    assert refusal(OutsideContainersPolicy.BLOCK, facts) is None


def test_a_missing_shim_of_a_default_shim_v2_runtime_blocks() -> None:
    daemon = {"default-runtime": "gvisor", "runtimes": {"gvisor": {"runtimeType": "io.containerd.runsc.v1"}}}
    facts = probed(daemon, {"containerd-shim-runsc-v1": "", RUNC_SHIM: "/usr/bin/containerd-shim-runc-v2"})
    (finding,) = missing_findings(facts)
    assert finding.level == Level.BLOCKER and "the shim containerd-shim-runsc-v1" in finding.message
    assert refusal(OutsideContainersPolicy.BLOCK, facts) is not None


@pytest.mark.parametrize(
    "binaries",
    [
        {NVIDIA: "/usr/local/bin/nvidia-container-runtime", RUNC_SHIM: "/usr/bin/containerd-shim-runc-v2"},
        {},  # a probe that did not look: nothing is claimed
    ],
)
def test_present_or_unprobed_binaries_give_no_finding(binaries: dict[str, str]) -> None:
    facts = probed(GPU_NODE, binaries)
    assert missing_findings(facts) == []
    assert refusal(OutsideContainersPolicy.BLOCK, facts) is None


def test_parse_reads_the_runtime_binary_records() -> None:
    out = probe_output(
        {},
        overrides={
            f"runtime-bin:{NVIDIA}": ("", "missing"),
            f"runtime-bin:{RUNC_SHIM}": ("/usr/bin/containerd-shim-runc-v2", "0"),
        },
    )
    assert parse_facts("n1", out).runtime_binaries == {
        NVIDIA: "",
        RUNC_SHIM: "/usr/bin/containerd-shim-runc-v2",
    }


def test_the_probe_looks_for_each_path_and_shim_daemon_json_names(tmp_path: Path) -> None:
    """The runtime block of facts.sh, run on a daemon.json under tmp_path (one JSON value across lines)."""
    text = (SCRIPT / "facts.sh").read_text()
    block = re.search(r"^# The binaries of daemon.json.*?^fi\n", text, re.M | re.S)
    assert block is not None
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    plain = tmp_path / "bin" / "plain"
    plain.write_text("not executable")
    daemon = tmp_path / "daemon.json"
    runtimes = {
        "a": {"path": str(tool)},
        "b": {"path": str(plain)},
        "c": {"path": "sh"},
        "d": {"path": "shimshift-no-such-runtime"},
        "e": {"runtimeType": "io.containerd.nosuch.v9"},
    }
    daemon.write_text(json.dumps({"runtimes": runtimes}, indent=2).replace('"path": ', '"path":\n  '))
    script = block.group(0).replace("/etc/docker/daemon.json", str(daemon))
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=20)
    found = parse_facts("n1", "shimshift-facts\t1\n" + run.stdout + "shimshift-facts\tend\n").runtime_binaries
    assert found[str(tool)] == str(tool)
    assert found[str(plain)] == ""  # there, but not executable
    assert found["sh"].endswith("/sh")
    assert found["shimshift-no-such-runtime"] == ""
    assert found["containerd-shim-nosuch-v9"] == ""
    assert RUNC_SHIM in found  # runc's shim, which runs every `path` runtime
