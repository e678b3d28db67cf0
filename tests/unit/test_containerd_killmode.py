"""containerd.service's effective KillMode, as systemd reads it (the unit file, then its drop-ins by
name, the last assignment winning, an empty one resetting it), and what it means for a node's order:
under spec.staging BeforeCordon, a node whose containerd would kill Docker's containers at its restart
is planned and run in the AfterCordon order, and the plan says so."""

from __future__ import annotations

import datetime as dt

import pytest

from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.killmode import KillMode, containerd_kill_mode, kill_mode
from shimshift.model.spec import RollbackPolicy, Staging
from shimshift.model.status import NodePhase, NodeRecord, StepRecord, StepState
from shimshift.model.steporder import node_staging
from shimshift.planning.build import build_plan
from shimshift.steps.machine import next_step
from tests.unit.planning.factory import cluster, node, spec

UNIT = "/lib/systemd/system/containerd.service"
DEBIAN_UNIT = """\
[Unit]
Description=containerd container runtime
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always

[Install]
WantedBy=multi-user.target
"""
NO_KILLMODE = DEBIAN_UNIT.replace("KillMode=process\n", "")
DROPINS = "/etc/systemd/system/containerd.service.d"


def dropin(text: str) -> str:
    return f"[Service]\n{text}\n"


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ({UNIT: DEBIAN_UNIT}, KillMode("process", UNIT, UNIT)),
        # a unit that sets none stops with systemd's default
        ({UNIT: NO_KILLMODE}, KillMode("control-group", "", UNIT)),
        # a drop-in overrides the unit
        (
            {UNIT: DEBIAN_UNIT, f"{DROPINS}/50-kill.conf": dropin("KillMode=control-group")},
            KillMode("control-group", f"{DROPINS}/50-kill.conf", UNIT),
        ),
        # drop-ins apply by file name, whatever their directory: the last one wins
        (
            {
                UNIT: NO_KILLMODE,
                f"{DROPINS}/10-a.conf": dropin("KillMode=mixed"),
                "/lib/systemd/system/containerd.service.d/20-b.conf": dropin("KillMode=process"),
            },
            KillMode("process", "/lib/systemd/system/containerd.service.d/20-b.conf", UNIT),
        ),
        # a drop-in in /etc hides the one of the same name in /lib
        (
            {
                UNIT: NO_KILLMODE,
                f"{DROPINS}/10-kill.conf": dropin("KillMode=mixed"),
                "/lib/systemd/system/containerd.service.d/10-kill.conf": dropin("KillMode=process"),
            },
            KillMode("mixed", f"{DROPINS}/10-kill.conf", UNIT),
        ),
        # an empty assignment resets it to the default, and a later one sets it again
        (
            {UNIT: DEBIAN_UNIT, f"{DROPINS}/50-reset.conf": dropin("KillMode=")},
            KillMode("control-group", "", UNIT),
        ),
        (
            {
                UNIT: DEBIAN_UNIT,
                f"{DROPINS}/50-reset.conf": dropin("KillMode="),
                f"{DROPINS}/60-again.conf": dropin("KillMode=process"),
            },
            KillMode("process", f"{DROPINS}/60-again.conf", UNIT),
        ),
        # /etc's unit file replaces /lib's (it sets none: the default)
        (
            {UNIT: DEBIAN_UNIT, "/etc/systemd/system/containerd.service": NO_KILLMODE},
            KillMode("control-group", "", "/etc/systemd/system/containerd.service"),
        ),
        # only [Service] counts
        ({UNIT: NO_KILLMODE + "[X-Other]\nKillMode=process\n"}, KillMode("control-group", "", UNIT)),
        # no unit file: nothing can be said (a drop-in alone is no unit)
        ({f"{DROPINS}/50-kill.conf": dropin("KillMode=process")}, KillMode(None)),
        ({}, KillMode(None)),
    ],
)
def test_the_effective_killmode_is_systemds(units: dict[str, str], expected: KillMode) -> None:
    assert kill_mode(units) == expected


def facts(mode: str | None, where: str = f"{DROPINS}/50-kill.conf") -> NodeFacts:
    """A Docker node whose containerd.service is Debian's, with `mode` set by a drop-in (None: as
    shipped, KillMode=process)."""
    dropins = {} if mode is None else {where: dropin(f"KillMode={mode}")}
    docker = {"/lib/systemd/system/docker.service": "[Service]\nExecStart=/usr/bin/dockerd\n"}
    return NodeFacts(node="n1", service_units={UNIT: DEBIAN_UNIT, **docker}, containerd_dropins=dropins)


def test_a_node_whose_containerd_stops_with_process_is_staged_as_the_spec_says() -> None:
    assert containerd_kill_mode(facts(None)).keeps_containers
    assert node_staging(Staging.BEFORE_CORDON, facts(None)) == (Staging.BEFORE_CORDON, "")


@pytest.mark.parametrize("mode", ["control-group", "mixed", "none"])
def test_a_node_whose_containerd_restart_kills_its_control_group_runs_after_the_cordon(mode: str) -> None:
    staging, why = node_staging(Staging.BEFORE_CORDON, facts(mode))
    assert staging == Staging.AFTER_CORDON
    assert f"KillMode={mode} (set in {DROPINS}/50-kill.conf)" in why
    assert "AfterCordon" in why and "kill every container Docker runs" in why


def test_a_node_without_a_containerd_unit_file_is_not_staged() -> None:
    unitless = NodeFacts(node="n1", service_units={"/lib/systemd/system/docker.service": "[Service]\n"})
    staging, why = node_staging(Staging.BEFORE_CORDON, unitless)
    assert staging == Staging.AFTER_CORDON and "no containerd.service unit file found" in why


def test_the_after_cordon_order_and_facts_without_unit_texts_are_left_as_they_are() -> None:
    assert node_staging(Staging.AFTER_CORDON, facts("control-group")) == (Staging.AFTER_CORDON, "")
    assert node_staging(Staging.BEFORE_CORDON, NodeFacts(node="n1")) == (Staging.BEFORE_CORDON, "")
    assert node_staging(Staging.BEFORE_CORDON, None) == (Staging.BEFORE_CORDON, "")


def record_after(step: StepId, staging: str) -> NodeRecord:
    done = [StepRecord(s, StepState.DONE) for s in (StepId.FACTS, StepId.LOCK)]
    record = NodeRecord("n1", NodePhase.IN_PROGRESS, staging=staging, steps=tuple(done))
    return record.with_step(StepRecord(step, StepState.DONE))


def test_the_node_runs_the_order_its_facts_step_recorded() -> None:
    after_lock = record_after(StepId.LOCK, "")
    assert next_step(after_lock, RollbackPolicy.AUTOMATIC).step == StepId.BACKUP  # spec.staging's
    own = record_after(StepId.LOCK, "AfterCordon")
    assert next_step(own, RollbackPolicy.AUTOMATIC, staging=Staging.BEFORE_CORDON).step == StepId.CORDON
    # a later spec.staging does not stage it; a node recorded BeforeCordon follows the spec's changes
    assert next_step(own, RollbackPolicy.AUTOMATIC, staging=Staging.BEFORE_CORDON).step == StepId.CORDON
    staged = record_after(StepId.LOCK, "BeforeCordon")
    assert next_step(staged, RollbackPolicy.AUTOMATIC, staging=Staging.AFTER_CORDON).step == StepId.CORDON
    # and a stop during its (cordoned, drained) backup finishes the node, as AfterCordon's does
    backup = own.with_step(StepRecord(StepId.BACKUP, StepState.STARTED))
    assert next_step(backup, RollbackPolicy.AUTOMATIC, stopping=True).step == StepId.BACKUP


def test_the_plan_says_which_nodes_run_after_the_cordon_and_why() -> None:
    plan = build_plan(
        spec(),
        cluster([node("n1"), node("n2")]),
        {"n1": facts("control-group"), "n2": facts(None)},
        dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
    )
    found = [f for n in plan.nodes for f in n.findings if f.code == "StagingAfterCordon"]
    assert [(f.node, f.level.value, f.subject) for f in found] == [
        ("n1", "warning", f"{DROPINS}/50-kill.conf")
    ]
    assert "KillMode=control-group" in found[0].message and "KillMode=process" in found[0].advice
    assert "Not on n1: " in plan.spec.step_order_reason  # the fleet's order names the exception
    assert "n2" not in plan.spec.step_order_reason
