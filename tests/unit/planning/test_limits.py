"""The open-file and locked-memory limits the containers ran with under Docker are the ones they get
under containerd: a `containerd.service.d/limits.conf` drop-in where containerd.service would start
containerd with others, shown in the plan, written by the configure step and removed by its undo.

The node's unit files and the running containerd's /proc limits go through the facts parser (probe
output, as facts.sh prints it) and the whole plan.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from typing import Any

import pytest

from shimshift.model import keys
from shimshift.model.unitlimits import Limit, effective_limits, parse_limit, proc_limits, unit_order
from shimshift.planning.findings import Level
from shimshift.planning.settings import SETTING_NOT_CARRIED
from shimshift.rendering import render_node_config
from shimshift.steps.configure import _variables
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.nodeplan import NodeRunPlan
from tests.unit.planning.factory import spec
from tests.unit.planning.test_settings import BASE_DAEMON, about, only_node, plan
from tests.unit.playbooks.probe import node_files, probe_output

DROPIN = keys.CONTAINERD_LIMITS_DROPIN
#: docker-ce's and Debian's units (trimmed to what matters)
DOCKER_UNIT = "[Service]\nExecStart=/usr/bin/dockerd -H fd://\nLimitNOFILE=1048576\nLimitNPROC=infinity\n"
CONTAINERD_UNIT = "[Service]\nExecStart=/usr/bin/containerd\nLimitNOFILE=infinity\nLimitNPROC=infinity\n"


def proc(nofile: str, memlock: str = "65536 65536 bytes") -> str:
    return (
        "Limit                     Soft Limit           Hard Limit           Units\n"
        f"Max open files            {nofile}\n"
        f"Max locked memory         {memlock}\n"
    )


def facts_with(running: str, parent: str, **units: str) -> Any:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/etc/docker/daemon.json"] = json.dumps(BASE_DAEMON)
    files.update({"/lib/systemd/system/docker.service": DOCKER_UNIT, **units})
    files.setdefault("/lib/systemd/system/containerd.service", CONTAINERD_UNIT)
    overrides = {"containerd-limits": (running + f"parent {parent}\n", "0")} if running else {}
    return parse_facts("n1", probe_output(files, overrides=overrides), kubelet_version="v1.23.17")


def test_limits_are_read_as_systemd_and_proc_write_them() -> None:
    assert parse_limit("infinity") == Limit(None, None)
    assert parse_limit("1024:524288") == Limit(1024, 524288)
    assert parse_limit("64K") == Limit(65536, 65536)
    assert parse_limit("8M") == parse_limit("8388608")
    assert parse_limit("lots") is None
    assert proc_limits(proc("unlimited            unlimited            files")) == {
        "LimitNOFILE": "infinity",
        "LimitMEMLOCK": "65536",
    }
    assert (
        proc_limits(proc("1024                 524288               files"))["LimitNOFILE"] == "1024:524288"
    )
    units = {
        "/lib/systemd/system/containerd.service": CONTAINERD_UNIT,
        "/etc/systemd/system/containerd.service": "[Service]\nLimitNOFILE=4096\n",  # /etc hides /lib
        "/etc/systemd/system/containerd.service.d/20-b.conf": "[Service]\nLimitNOFILE=8192\n",
        "/lib/systemd/system/containerd.service.d/10-a.conf": "[Service]\nLimitMEMLOCK=infinity\n",
        "/lib/systemd/system/containerd.service.d/20-b.conf": "[Service]\nLimitNOFILE=1\n",  # hidden
    }
    assert unit_order(units, "containerd.service") == [
        "/etc/systemd/system/containerd.service",
        "/lib/systemd/system/containerd.service.d/10-a.conf",
        "/etc/systemd/system/containerd.service.d/20-b.conf",
    ]
    found = effective_limits(units, "containerd.service")
    assert {k: (s.value, s.file) for k, s in found.items()} == {
        "LimitNOFILE": ("8192", "/etc/systemd/system/containerd.service.d/20-b.conf"),
        "LimitMEMLOCK": ("infinity", "/lib/systemd/system/containerd.service.d/10-a.conf"),
    }
    reset = {**units, "/etc/systemd/system/containerd.service.d/30-c.conf": "[Service]\nLimitNOFILE=\n"}
    assert "LimitNOFILE" not in effective_limits(reset, "containerd.service")


def test_the_probe_reads_the_units_and_the_running_containerds_limits_and_parent() -> None:
    facts = facts_with(proc("unlimited            unlimited            files"), "systemd")
    assert facts.containerd_limits == {"LimitNOFILE": "infinity", "LimitMEMLOCK": "65536"}
    assert facts.containerd_parent == "systemd"
    assert facts.service_units["/lib/systemd/system/docker.service"] == DOCKER_UNIT


def test_on_a_docker_ce_node_the_containers_had_containerds_limits_so_nothing_is_written() -> None:
    facts = facts_with(proc("unlimited            unlimited            files"), "systemd")
    rendered = render_node_config(spec(), facts)
    assert DROPIN not in {f.path for f in rendered.files}
    # dockerd's own 1048576 never reached its containers: said, not carried
    (note,) = [n for n in rendered.report.limits_notes if "dockerd's" in n]
    assert "LimitNOFILE=1048576" in note and "ran with containerd's infinity" in note


def test_open_files_at_the_kernels_nr_open_are_infinity_as_systemd_gives_them() -> None:
    # systemd starts a LimitNOFILE=infinity unit with fs.nr_open (the kernel refuses more): that
    # containerd did get what its unit says, so there is nothing to keep
    at_max = proc("1048576              1048576              files") + "nr_open 1048576\n"
    assert proc_limits(at_max)["LimitNOFILE"] == "infinity"
    facts = facts_with(at_max, "systemd")
    assert facts.containerd_limits["LimitNOFILE"] == "infinity"
    assert DROPIN not in {f.path for f in render_node_config(spec(), facts).files}
    # below it, a number that differs from infinity, kept (dockerd started this one)
    below = proc("1048576              1048576              files") + "nr_open 1073741816\n"
    assert proc_limits(below)["LimitNOFILE"] == "1048576"
    kept = render_node_config(spec(), facts_with(below, "dockerd"))
    (dropin,) = [f for f in kept.files if f.path == DROPIN]
    assert b"\nLimitNOFILE=1048576\n" in dropin.content
    # a soft limit below the maximum stays a number on its side
    assert proc_limits(proc("1024                 1048576              files") + "nr_open 1048576\n") == {
        "LimitNOFILE": "1024:infinity",
        "LimitMEMLOCK": "65536",
    }


def test_a_containerd_dockerd_started_gave_the_containers_dockerds_limits_which_are_kept() -> None:
    facts = facts_with(proc("1048576              1048576              files"), "dockerd")
    report = plan(facts)
    n = only_node(report)
    (change,) = [c for c in n.containerd.changes if c.path == DROPIN]
    assert change.before is None
    assert "[Service]\nLimitNOFILE=1048576\nLimitMEMLOCK=65536\n" in (change.after or "")
    rows = [c for c in n.containerd.carryover if c.source == "containerd's running limits"]
    assert {r.value for r in rows} == {"LimitNOFILE=1048576", "LimitMEMLOCK=65536"} and all(
        r.carried for r in rows
    )
    assert any("instead of infinity (/lib/systemd/system/containerd.service)" in r.outcome for r in rows)
    assert any("systemd reloads its units" in note for note in n.containerd.notes)
    # the configure step writes it: backed up (as absent, so the undo removes it) and its change
    # restarts containerd after systemd reloads its units
    rendered = render_node_config(spec(), facts)
    run = NodeRunPlan.build("m1", rendered.files, kubelet=_NoKubelet())
    assert DROPIN in run.containerd_paths
    assert _variables(run)["limits_dropin"] == DROPIN


@pytest.mark.parametrize("parent", ["systemd", "dockerd"])
def test_a_unit_that_already_gives_the_running_limits_needs_no_drop_in(parent: str) -> None:
    units = {"/etc/systemd/system/containerd.service.d/10-mine.conf": "[Service]\nLimitMEMLOCK=infinity\n"}
    facts = facts_with(
        proc("unlimited            unlimited            files", "unlimited unlimited bytes"),
        parent,
        **units,
    )
    assert DROPIN not in {f.path for f in render_node_config(spec(), facts).files}
    assert about(plan(facts), DROPIN) == []


def test_an_older_facts_file_without_limits_writes_nothing() -> None:
    facts = facts_with("", "")
    assert facts.containerd_limits == {} and facts.containerd_parent is None
    assert DROPIN not in {f.path for f in render_node_config(spec(), facts).files}


class _NoKubelet:
    edits: tuple[Any, ...] = ()
    paths: tuple[str, ...] = ()


# ---- daemon.json default-ulimits: the rlimits of a base OCI spec ------------------------------------

DEFAULT_SPEC = json.dumps(
    {
        "ociVersion": "1.0.2-dev",
        "process": {
            "args": [],
            "cwd": "/",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        },
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "pid"}]},
    }
)
ULIMITS = {
    "nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536},
    "memlock": {"Name": "memlock", "Soft": -1, "Hard": -1},
}


def ulimit_facts(ulimits: Any, spec_text: str | None = DEFAULT_SPEC) -> Any:
    facts = facts_with("", "")
    daemon = {**(facts.daemon_json or {}), "default-ulimits": ulimits}
    return replace(facts, daemon_json=daemon, containerd_default_spec=spec_text)


def test_default_ulimits_become_exactly_the_rlimits_of_every_runtimes_base_spec() -> None:
    rendered = render_node_config(spec(), ulimit_facts(ULIMITS))
    (base,) = [f for f in rendered.files if f.path == keys.CONTAINERD_BASE_SPEC]
    doc = json.loads(base.text)
    assert doc["process"]["rlimits"] == [  # containerd's default 1024 is not among them
        {"type": "RLIMIT_MEMLOCK", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NOFILE", "hard": 65536, "soft": 65536},
    ]
    assert doc["linux"] == {"namespaces": [{"type": "pid"}]}  # the rest is the node's default spec
    config = tomllib.loads(rendered.config_toml.text)
    runtimes = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert {n: r.get("base_runtime_spec") for n, r in runtimes.items()} == {"runc": keys.CONTAINERD_BASE_SPEC}
    n = only_node(plan(ulimit_facts(ULIMITS)))
    assert about(plan(ulimit_facts(ULIMITS)), "daemon.json default-ulimits") == []
    rows = [c for c in n.containerd.carryover if c.source == "daemon.json default-ulimits"]
    assert {r.value for r in rows} == {"memlock", "nofile"} and all(r.carried for r in rows)


@pytest.mark.parametrize(
    ("ulimits", "spec_text", "lost"),
    [
        (ULIMITS, None, "ctr oci spec"),
        ({"nofile": {"Soft": 10, "Hard": 5}}, DEFAULT_SPEC, "Soft must be between 0 and Hard"),
        ({"files": {"Soft": 10, "Hard": 10}}, DEFAULT_SPEC, "not a ulimit Docker knows"),
    ],
)
def test_default_ulimits_that_cannot_be_carried_are_warnings_and_write_no_base_spec(
    ulimits: Any, spec_text: str | None, lost: str
) -> None:
    facts = ulimit_facts(ulimits, spec_text)
    assert keys.CONTAINERD_BASE_SPEC not in {f.path for f in render_node_config(spec(), facts).files}
    found = about(plan(facts), "daemon.json default-ulimits")
    assert found and all(f.code == SETTING_NOT_CARRIED and f.level is Level.WARNING for f in found)
    assert any(lost in f.advice for f in found), [f.advice for f in found]


def test_a_running_containerd_whose_limits_cannot_be_read_is_a_warning_not_silence() -> None:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/etc/docker/daemon.json"] = json.dumps(BASE_DAEMON)
    files["/lib/systemd/system/containerd.service"] = CONTAINERD_UNIT
    output = probe_output(
        files, overrides={"containerd-limits": ("", "1"), "active:containerd": ("active\n", "0")}
    )
    facts = parse_facts("n1", output, kubelet_version="v1.23.17")
    assert facts.containerd_limits == {}
    (why,) = [w for what, w in facts.unreadable.items() if "containerd's limits" in what]
    report = plan(facts)
    assert any(f.code == "FactUnreadable" and "containerd's limits" in f.message for f in report.warnings)
    # containerd not running: nothing to keep, nothing to say
    output = probe_output(
        files, overrides={"containerd-limits": ("", "1"), "active:containerd": ("inactive\n", "3")}
    )
    assert not parse_facts("n1", output, kubelet_version="v1.23.17").unreadable
    assert why
