"""Docker's json-file log rotation (daemon.json log-opts max-size / max-file) is carried into the
kubelet's containerLogMaxSize / containerLogMaxFiles by the switch's edit, unless the kubelet sets its
own; the edit changes only the bytes it adds, so the undo's byte-for-byte restore covers it."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from shimshift.model.dockerera import Fate, daemon_json_fate, kubelet_quantity, log_rotation
from shimshift.model.errors import NodeError
from shimshift.steps.kubeletfiles import env_value, split_flags
from shimshift.steps.nodeplan import NodeRunPlan
from shimshift.steps.switch.kubelet import plan_kubelet_switch
from tests.unit.playbooks.probe import node_files
from tests.unit.playbooks.test_kubelet_switch import ENDPOINT, kubelet_facts

CONFIG = "/var/lib/kubelet/config.yaml"


@pytest.mark.parametrize(
    ("docker", "kubelet"),
    [
        ("100m", "100Mi"),
        ("1g", "1Gi"),
        ("10k", "10Ki"),
        ("10M", "10Mi"),
        ("100MiB", "100Mi"),
        ("3kb", "3Ki"),
        ("1.5g", "1536Mi"),
        ("512", "512"),
        ("2048", "2Ki"),
        ("1t", "1Ti"),
    ],
)
def test_a_docker_size_becomes_the_kubelets_binary_quantity(docker: str, kubelet: str) -> None:
    assert kubelet_quantity(docker) == kubelet


@pytest.mark.parametrize("docker", ["-1", "0", "", "lots", "10x", "1.5.5m"])
def test_what_is_not_a_positive_size_is_not_converted(docker: str) -> None:
    assert kubelet_quantity(docker) is None


def test_max_file_1_or_absent_becomes_the_kubelets_minimum_of_2_and_says_so() -> None:
    for opts in ({"max-size": "100m", "max-file": "1"}, {"max-size": "100m"}):
        rotation = log_rotation({"log-opts": opts})
        assert rotation is not None and (rotation.max_size, rotation.max_files) == ("100Mi", 2)
        rule = daemon_json_fate("log-opts", opts)
        assert rule.fate is Fate.REPORTED and "containerLogMaxFiles 2" in rule.text
        assert "Docker kept 1 file" in rule.text
    rule = daemon_json_fate("log-opts", {"max-size": "100m", "max-file": "3"})
    assert rule.fate is Fate.TRANSLATED


def test_another_log_driver_or_no_size_carries_nothing() -> None:
    opts = {"max-size": "100m", "max-file": "3"}
    assert log_rotation({"log-driver": "journald", "log-opts": opts}) is None
    assert daemon_json_fate("log-opts", opts, {"log-driver": "journald"}).fate is Fate.REPORTED
    assert daemon_json_fate("log-opts", {"max-size": "-1"}).fate is Fate.REPORTED
    assert log_rotation({"log-opts": {"max-file": "3"}}) == log_rotation({"log-opts": {"max-file": "3"}})
    other = daemon_json_fate("log-opts", {"max-size": "10m", "max-file": "3", "compress": "true"})
    assert other.fate is Fate.REPORTED and "compress" in other.text


def test_the_switch_writes_the_rotation_into_the_kubeletconfiguration_and_nothing_else() -> None:
    files = node_files("kubeadm-systemd")
    kubelet = kubelet_facts("kubeadm-systemd")
    rotation = log_rotation({"log-opts": {"max-size": "100m", "max-file": "3"}})
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, log_rotation=rotation)
    edits = {e.path: e for e in switch.edits}
    assert CONFIG in edits
    edit = edits[CONFIG]
    assert edit.before == files[CONFIG]
    assert edit.after == files[CONFIG] + "containerLogMaxSize: 100Mi\ncontainerLogMaxFiles: 3\n"
    parsed = yaml.safe_load(edit.after)
    assert (parsed["containerLogMaxSize"], parsed["containerLogMaxFiles"]) == ("100Mi", 3)
    assert switch.log_rotation == (
        ("containerLogMaxSize", "100Mi", CONFIG),
        ("containerLogMaxFiles", "3", CONFIG),
    )
    # the undo restores what the backup saved: the backup step saves every file the switch edits
    plan = NodeRunPlan.build("m1", (), switch)
    assert CONFIG in plan.kubelet_paths
    # without Docker's rotation the config file is not touched at all
    plain = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT)
    assert CONFIG not in plain.paths


def test_without_a_config_file_the_rotation_goes_into_the_flags() -> None:
    files = {p: t for p, t in node_files("kubespray").items() if not p.endswith("kubelet-config.yaml")}
    kubelet = kubelet_facts("kubespray", files)
    rotation = log_rotation({"log-opts": {"max-size": "1g", "max-file": "1"}})
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, log_rotation=rotation)
    (edit,) = [e for e in switch.edits if e.path == switch.endpoint_file]
    flags = dict(split_flags(env_value(edit.after, "KUBELET_ARGS") or ""))
    assert (flags["container-log-max-size"], flags["container-log-max-files"]) == ("1Gi", "2")


def test_a_kubelet_that_sets_its_own_rotation_keeps_it() -> None:
    files = node_files("kubeadm-systemd")
    files[CONFIG] += "containerLogMaxSize: 50Mi\n"
    kubelet = kubelet_facts("kubeadm-systemd", files)
    rotation = log_rotation({"log-opts": {"max-size": "100m", "max-file": "3"}})
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, log_rotation=rotation)
    after = yaml.safe_load({e.path: e.after for e in switch.edits}[CONFIG])
    assert (after["containerLogMaxSize"], after["containerLogMaxFiles"]) == ("50Mi", 3)
    files[CONFIG] += "containerLogMaxFiles: 7\n"
    switch = plan_kubelet_switch(
        "n1", kubelet_facts("kubeadm-systemd", files), endpoint=ENDPOINT, log_rotation=rotation
    )
    assert CONFIG not in switch.paths and switch.log_rotation == ()


def test_a_rotation_flag_of_the_kubelet_is_kept_too() -> None:
    files = node_files("kubeadm-systemd")
    flags_file = "/var/lib/kubelet/kubeadm-flags.env"
    files[flags_file] = files[flags_file].replace('ARGS="', 'ARGS="--container-log-max-files=4 ', 1)
    kubelet = kubelet_facts("kubeadm-systemd", files)
    rotation = log_rotation({"log-opts": {"max-size": "100m", "max-file": "3"}})
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, log_rotation=rotation)
    assert switch.log_rotation == (("containerLogMaxSize", "100Mi", CONFIG),)
    edits = {e.path: e.after for e in switch.edits}
    assert "containerLogMaxFiles" not in edits[CONFIG]
    assert "--container-log-max-files=4" in edits[flags_file]


@pytest.mark.parametrize("text", ["{a: 1}\n", "- a\n- b\n", "key: [unclosed\n"])
def test_a_config_file_the_rotation_cannot_be_written_into_is_that_nodes_error(text: str) -> None:
    files = {**node_files("kubeadm-systemd"), CONFIG: text}
    kubelet = dataclasses.replace(kubelet_facts("kubeadm-systemd"), files=files)
    rotation = log_rotation({"log-opts": {"max-size": "100m", "max-file": "3"}})
    with pytest.raises(NodeError, match=CONFIG):
        plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, log_rotation=rotation)
