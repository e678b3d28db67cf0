"""Docker's other runtimes become containerd CRI runtimes, or are refused naming why.

daemon.json `runtimes` and `default-runtime` go through the facts parser (probe output, as facts.sh
prints it), the renderer of every config schema and the whole plan: a carried runtime is a
`containerd.runtimes.<name>` table with runc's shim, `BinaryName` and the node's SystemdCgroup, shown
in the plan's diff and carry-over rows; what cannot be carried is a finding with its reason; a
RuntimeClass whose handler the new config has no runtime for is named.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from shimshift.kube.snapshot import OPTIONAL, RESOURCES
from shimshift.model import keys
from shimshift.model.dockerera import Fate, daemon_json_fate
from shimshift.model.facts import NodeFacts
from shimshift.planning.build import build_plan
from shimshift.planning.findings import Level
from shimshift.planning.report import EXIT_BLOCKERS, EXIT_CLEAN, PlanReport
from shimshift.planning.runtimeclasses import RUNTIME_CLASS_HANDLER_MISSING
from shimshift.planning.settings import DAEMON_JSON_NOT_CARRIED, DAEMON_JSON_REFUSED
from shimshift.planning.snapshot import load_snapshot, write_snapshot
from shimshift.rendering import render_node_config
from shimshift.steps.facts.parse import parse_facts
from tests.unit.planning.factory import cluster, node, runtime_class, spec
from tests.unit.playbooks.probe import node_files, probe_output

NOW = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
NVIDIA = {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}
GPU_NODE = {
    "exec-opts": ["native.cgroupdriver=systemd"],
    "default-runtime": "nvidia",
    "runtimes": NVIDIA,
}
#: containerd's --version line per schema the renderer picks
CONTAINERD = {
    2: "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
    3: "containerd github.com/containerd/containerd/v2 v2.2.9 0\n",
    4: "containerd github.com/containerd/containerd/v2 v2.3.7 0\n",
}
CRI_RUNTIME = {
    2: "io.containerd.grpc.v1.cri",
    3: "io.containerd.cri.v1.runtime",
    4: "io.containerd.cri.v1.runtime",
}


def facts_with(daemon: dict[str, Any], schema: int = 2, driver: str = "systemd") -> NodeFacts:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/etc/docker/daemon.json"] = json.dumps(daemon)
    files["/var/lib/kubelet/config.yaml"] = files["/var/lib/kubelet/config.yaml"].replace(
        "cgroupDriver: systemd", f"cgroupDriver: {driver}"
    )
    out = probe_output(files, overrides={"containerd-version": (CONTAINERD[schema], "0")})
    return parse_facts("n1", out, kubelet_version="v1.23.17")


def cri(facts: NodeFacts, schema: int) -> dict[str, Any]:
    rendered = render_node_config(spec(), facts)
    (config,) = [f for f in rendered.files if f.path == keys.CONTAINERD_CONFIG]
    doc = tomllib.loads(config.text)
    assert doc["version"] == schema
    table: dict[str, Any] = doc["plugins"][CRI_RUNTIME[schema]]["containerd"]
    return table


def plan(facts: NodeFacts, classes: list[dict[str, Any]] | None = None, labels: Any = None) -> PlanReport:
    return build_plan(
        spec(), cluster(nodes=[node("n1", labels=labels)], runtime_classes=classes), {"n1": facts}, NOW
    )


def about(report: PlanReport, subject: str) -> list[Any]:
    return [f for f in (*report.blockers, *report.warnings, *report.notes) if f.subject == subject]


@pytest.mark.parametrize("schema", [2, 3, 4])
@pytest.mark.parametrize("driver", ["systemd", "cgroupfs"])
def test_nvidia_as_dockers_default_runtime_is_containerds_default_runtime_in_every_schema(
    schema: int, driver: str
) -> None:
    daemon = {**GPU_NODE, "exec-opts": [f"native.cgroupdriver={driver}"]}
    table = cri(facts_with(daemon, schema, driver), schema)
    assert table["default_runtime_name"] == "nvidia"
    assert table["runtimes"]["nvidia"] == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "nvidia-container-runtime", "SystemdCgroup": driver == "systemd"},
    }
    # runc stays, for a RuntimeClass with handler runc
    assert table["runtimes"]["runc"]["options"] == {"SystemdCgroup": driver == "systemd"}


def test_the_plan_shows_the_runtime_in_the_diff_and_its_carry_over_and_finds_nothing_to_fix() -> None:
    report = plan(facts_with(GPU_NODE))
    assert report.summary.exit_code == EXIT_CLEAN
    assert about(report, "daemon.json runtimes") == about(report, "daemon.json default-runtime") == []
    (n,) = report.nodes
    (change,) = [c for c in n.containerd.changes if c.path == keys.CONTAINERD_CONFIG]
    assert '+    default_runtime_name = "nvidia"' in change.diff
    assert '+        BinaryName = "nvidia-container-runtime"' in change.diff
    rows = {(c.source, c.value): c for c in n.containerd.carryover}
    assert rows[("daemon.json runtimes", "nvidia")].carried
    assert "BinaryName = nvidia-container-runtime" in rows[("daemon.json runtimes", "nvidia")].outcome
    assert rows[("daemon.json default-runtime", "nvidia")].carried
    assert any("default_runtime_name" in note for note in n.containerd.notes)


def test_a_runtime_that_is_not_the_default_is_carried_for_its_runtime_class() -> None:
    daemon = {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "runtimes": {"runsc": {"path": "/usr/local/bin/runsc"}},
    }
    facts = facts_with(daemon)
    table = cri(facts, 2)
    assert table["default_runtime_name"] == "runc"
    assert table["runtimes"]["runsc"]["options"]["BinaryName"] == "/usr/local/bin/runsc"
    report = plan(facts, [runtime_class("gvisor", "runsc")])
    assert about(report, "RuntimeClass gvisor") == []
    (n,) = report.nodes
    assert any("io.containerd.runsc.v1" in note for note in n.containerd.notes)


def test_runc_flags_the_shim_has_options_for_are_carried_and_other_arguments_refuse_the_runtime() -> None:
    carried = {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "runtimes": {
            "custom": {
                "path": "/opt/runc-custom",
                "runtimeArgs": ["--root", "/run/custom", "--systemd-cgroup"],
            }
        },
    }
    options = cri(facts_with(carried), 2)["runtimes"]["custom"]["options"]
    assert options == {"BinaryName": "/opt/runc-custom", "Root": "/run/custom", "SystemdCgroup": True}

    kvm = {"runsc": {"path": "/usr/local/bin/runsc", "runtimeArgs": ["--platform=kvm"]}}
    facts = facts_with({"exec-opts": ["native.cgroupdriver=systemd"], "runtimes": kvm})
    assert "runsc" not in cri(facts, 2)["runtimes"]
    report = plan(facts, [runtime_class("gvisor", "runsc")])
    (finding,) = about(report, "daemon.json runtimes")
    assert (finding.code, finding.level) == (DAEMON_JSON_NOT_CARRIED, Level.WARNING)
    assert "--platform=kvm" in finding.message and "wrap /usr/local/bin/runsc" in finding.advice
    (missing,) = about(report, "RuntimeClass gvisor")
    assert (missing.code, missing.level) == (RUNTIME_CLASS_HANDLER_MISSING, Level.WARNING)


@pytest.mark.parametrize(
    ("name", "path", "why"),
    [
        ("kata-runtime", "/usr/bin/kata-runtime", "Kata Containers 1.x"),
        ("kata-qemu", "/opt/kata/bin/kata-qemu", "Kata Containers 1.x"),
        ("sysbox-runc", "/usr/bin/sysbox-runc", "CRI-O only"),
    ],
)
def test_kata_1_and_sysbox_as_the_default_runtime_block_the_node_with_the_reason(
    name: str, path: str, why: str
) -> None:
    daemon = {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "default-runtime": name,
        "runtimes": {name: {"path": path}},
    }
    facts = facts_with(daemon)
    assert name not in cri(facts, 2)["runtimes"]
    report = plan(facts)
    assert report.summary.exit_code == EXIT_BLOCKERS
    (default,) = about(report, "daemon.json default-runtime")
    assert (default.code, default.level) == (DAEMON_JSON_REFUSED, Level.BLOCKER)
    assert why in default.message
    (runtimes,) = about(report, "daemon.json runtimes")
    assert runtimes.level is Level.WARNING and why in runtimes.message


def test_a_default_runtime_daemon_json_does_not_define_blocks_the_node() -> None:
    rule = daemon_json_fate("default-runtime", "nvidia", {"default-runtime": "nvidia"})
    assert rule.fate is Fate.REFUSED and "defines no nvidia runtime" in rule.text


def test_a_shim_v2_runtime_type_of_docker_23_is_carried_as_it_is() -> None:
    daemon = {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "runtimes": {
            "kata": {"runtimeType": "io.containerd.kata.v2"},
            "gvisor": {
                "runtimeType": "io.containerd.runsc.v1",
                "options": {
                    "TypeUrl": "io.containerd.runsc.v1.options",
                    "ConfigPath": "/etc/containerd/runsc.toml",
                },
            },
            "byPath": {"runtimeType": "/opt/shim/containerd-shim-x-v2"},
        },
    }
    facts = facts_with(daemon)
    runtimes = cri(facts, 2)["runtimes"]
    assert runtimes["kata"] == {"runtime_type": "io.containerd.kata.v2"}
    assert runtimes["gvisor"]["options"]["ConfigPath"] == "/etc/containerd/runsc.toml"
    assert "byPath" not in runtimes  # a shim binary chosen by path is not carried
    (finding,) = about(plan(facts), "daemon.json runtimes")
    assert "byPath" in finding.message and "not carried" in finding.message


def test_runtime_classes_whose_handler_the_node_will_not_have_are_named() -> None:
    classes = [
        runtime_class("nvidia", "nvidia"),
        runtime_class("kata", "kata"),
        runtime_class("legacy", "docker"),
        runtime_class("elsewhere", "kata", node_selector={"pool": "sandboxed"}),
    ]
    report = plan(facts_with(GPU_NODE), classes, labels={"pool": "gpu"})
    assert about(report, "RuntimeClass nvidia") == about(report, "RuntimeClass elsewhere") == []
    (kata,) = about(report, "RuntimeClass kata")
    assert kata.code == RUNTIME_CLASS_HANDLER_MISSING and "nvidia, runc" in kata.message
    (legacy,) = about(report, "RuntimeClass legacy")
    assert "dockershim's own name" in legacy.message
    # on a node the RuntimeClass's nodeSelector matches, it is named too
    report = plan(facts_with(GPU_NODE), classes, labels={"pool": "sandboxed"})
    assert [f.code for f in about(report, "RuntimeClass elsewhere")] == [RUNTIME_CLASS_HANDLER_MISSING]


def test_an_extra_config_runtime_counts_for_a_runtime_class() -> None:
    extra = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]\nruntime_type = "io.containerd.kata.v2"\n'
    report = build_plan(
        spec(containerd={"extraConfig": extra}),
        cluster(nodes=[node("n1")], runtime_classes=[runtime_class("kata", "kata")]),
        {"n1": facts_with(GPU_NODE)},
        NOW,
    )
    assert about(report, "RuntimeClass kata") == []


def test_a_runtimes_value_that_is_not_an_object_is_reported_and_renders_nothing() -> None:
    facts = facts_with({"exec-opts": ["native.cgroupdriver=systemd"], "runtimes": ["nvidia"]})
    assert set(cri(facts, 2)["runtimes"]) == {"runc"}
    (finding,) = about(plan(facts), "daemon.json runtimes")
    assert finding.level is Level.WARNING


def test_a_runtime_name_that_is_not_a_bare_key_is_refused_not_rendered() -> None:
    facts = facts_with({"exec-opts": ["native.cgroupdriver=systemd"], "runtimes": {'a"b': {"path": "/x"}}})
    assert set(cri(facts, 2)["runtimes"]) == {"runc"}
    (finding,) = about(plan(facts), "daemon.json runtimes")
    assert "not one containerd's runtimes table" in finding.message


def test_a_snapshot_carries_the_clusters_runtime_classes_and_an_old_one_without_them_loads(
    tmp_path: Path,
) -> None:
    classes = [runtime_class("kata", "kata", node_selector={"pool": "sandboxed"})]
    objects = {"nodes": [node("n1")], "pods": [], "runtimeclasses": classes}
    write_snapshot(tmp_path / "new", objects, [], taken_at="2026-01-15T10:00:00Z", source="test")
    loaded = load_snapshot(tmp_path / "new").cluster.runtime_classes
    assert [(r.name, r.handler, dict(r.node_selector)) for r in loaded] == [
        ("kata", "kata", {"pool": "sandboxed"})
    ]
    write_snapshot(tmp_path / "old", {"nodes": [node("n1")], "pods": []}, [], taken_at="", source="")
    assert load_snapshot(tmp_path / "old").cluster.runtime_classes == ()


def test_the_live_cluster_read_lists_runtime_classes() -> None:
    assert RESOURCES["runtimeclasses"] == ("/apis/node.k8s.io/v1/runtimeclasses", "RuntimeClass")
    assert "runtimeclasses" in OPTIONAL  # a cluster that serves none plans as before
