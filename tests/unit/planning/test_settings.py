"""Every Docker-era setting of a node ends translated, refused or reported: never only a table row.

The node's daemon.json and kubelet flags go through the facts parser (probe output, as facts.sh prints
it) and the whole plan; a setting that is not carried over is a finding that counts in the verdict and
in `shimshift plan`'s exit status. The tables of `shimshift.model.dockerera` are checked against what
the renderer and the switch really do.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shimshift.model import keys
from shimshift.model.dockerera import (
    CRI_DOCKERD_FLAGS,
    DAEMON_JSON,
    DAEMON_JSON_BY_VALUE,
    DAEMON_JSON_IMPORTED,
    DAEMON_JSON_TO_KUBELET,
    DAEMON_JSON_TRANSLATED,
    KUBELET_FLAGS,
    KUBELET_FLAGS_BY_VALUE,
    KUBELET_FLAGS_DROPPED,
    Fate,
    cri_dockerd_flag_fate,
    daemon_json_fate,
    daemon_json_keys,
    kubelet_flag_fate,
    kubelet_flags,
)
from shimshift.model.facts import NodeFacts, OutsideContainer
from shimshift.model.spec import NodeMigrationSpec, OutsideContainersPolicy
from shimshift.planning.build import build_plan
from shimshift.planning.findings import Finding, Level
from shimshift.planning.report import EXIT_BLOCKERS, EXIT_CLEAN, EXIT_WARNINGS, NodeReport, PlanReport
from shimshift.planning.settings import (
    CRI_DOCKERD_FLAG_CARRIED,
    CRI_DOCKERD_FLAG_IGNORED,
    CRI_DOCKERD_FLAG_NOT_CARRIED,
    CRI_DOCKERD_FLAG_REFUSED,
    DAEMON_JSON_IGNORED,
    DAEMON_JSON_NOT_CARRIED,
    DAEMON_JSON_REFUSED,
    KUBELET_FLAG_CARRIED,
    KUBELET_FLAG_IGNORED,
    KUBELET_FLAG_NOT_CARRIED,
    KUBELET_FLAG_REFUSED,
    LOG_ROTATION_KUBELET_KEPT,
    SETTING_NOT_CARRIED,
)
from shimshift.rendering import facts_from_json_text, render_node_config
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.facts.refuse import refusal
from shimshift.steps.switch.kubelet import is_dockershim_flag, plan_kubelet_switch
from tests.unit.planning.factory import cluster, node, spec
from tests.unit.playbooks.probe import node_files, probe_output

NOW = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
FLAGS_FILE = "/var/lib/kubelet/kubeadm-flags.env"
BASE_DAEMON: dict[str, Any] = {"exec-opts": ["native.cgroupdriver=systemd"]}
BASE_FLAGS = (("network-plugin", "cni"), ("pod-infra-container-image", "k8s.gcr.io/pause:3.6"))

#: The keys of the "Daemon configuration file" example of the dockerd reference (Docker 20.10),
#: written down here on their own so the table is held to the documented list.
DOCKER_20_10_KEYS = [
    "allow-nondistributable-artifacts",
    "api-cors-header",
    "authorization-plugins",
    "bip",
    "bridge",
    "cgroup-parent",
    "cluster-advertise",
    "cluster-store",
    "cluster-store-opts",
    "containerd",
    "containerd-namespace",
    "containerd-plugins-namespace",
    "data-root",
    "debug",
    "default-address-pools",
    "default-cgroupns-mode",
    "default-gateway",
    "default-gateway-v6",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "default-ulimits",
    "dns",
    "dns-opts",
    "dns-search",
    "exec-opts",
    "exec-root",
    "experimental",
    "features",
    "fixed-cidr",
    "fixed-cidr-v6",
    "group",
    "hosts",
    "icc",
    "init",
    "init-path",
    "insecure-registries",
    "ip",
    "ip-forward",
    "ip-masq",
    "iptables",
    "ip6tables",
    "ipv6",
    "labels",
    "live-restore",
    "log-driver",
    "log-level",
    "log-opts",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "mtu",
    "no-new-privileges",
    "node-generic-resources",
    "oom-score-adjust",
    "pidfile",
    "raw-logs",
    "registry-mirrors",
    "runtimes",
    "seccomp-profile",
    "selinux-enabled",
    "shutdown-timeout",
    "storage-driver",
    "storage-opts",
    "swarm-default-advertise-addr",
    "tls",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsverify",
    "userland-proxy",
    "userland-proxy-path",
    "userns-remap",
    "builder",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "metrics-addr",
    "cri-containerd",
    "host-gateway-ip",
    "rootless",
    "graph",
    "proxies",
    "log-format",
]

DOCKERSHIM_FLAGS = [
    "network-plugin",
    "cni-bin-dir",
    "cni-conf-dir",
    "cni-cache-dir",
    "network-plugin-mtu",
    "docker-endpoint",
    "image-pull-progress-deadline",
    "experimental-dockershim-root-directory",
    "dockershim-root-directory",
    "non-masquerade-cidr",
    "pod-infra-container-image",
    "docker",
    "docker-root",
    "container-runtime",
    "container-runtime-endpoint",
    "redirect-container-streaming",
]

#: Plausible values per key (the first is what a node typically has); other keys get GENERIC values.
VALUES: Mapping[str, tuple[Any, ...]] = {
    "registry-mirrors": (["https://mirror.example.com"], ["ftp://not-a-mirror"], []),
    "insecure-registries": (["registry.internal:5000"], ["10.30.0.0/16"], ["bad host!"]),
    "exec-opts": (["native.cgroupdriver=systemd"], ["native.cgroupdriver=cgroupfs", "native.umask=normal"]),
    "storage-driver": ("overlay2", "devicemapper", "btrfs", "zfs", "vfs"),
    "log-driver": ("json-file", "journald", "fluentd", "local"),
    "log-opts": ({"max-size": "100m", "max-file": "3"}, {"max-size": "100m"}, {"max-size": "-1"}),
    "default-runtime": ("nvidia", "runc", "kata"),
    "runtimes": (
        {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
        {"kata": {"path": "/usr/bin/kata-runtime"}},
        {"runsc": {"path": "/usr/local/bin/runsc", "runtimeArgs": ["--platform=kvm"]}},
        {"gvisor": {"runtimeType": "io.containerd.runsc.v1"}, "sysbox": {"path": "/usr/bin/sysbox-runc"}},
    ),
    "selinux-enabled": (True, False),
    "init": (True, False),
    "ip-forward": (True, False),
    "data-root": ("/data/docker",),
    "hosts": (["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],),
    "proxies": ({"http-proxy": "http://user:secret@proxy.example.com:3128"},),
    "default-ulimits": ({"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},),
    "max-concurrent-downloads": (10,),
    "mtu": (1450,),
    "bip": ("172.17.0.1/16",),
    "dns": (["10.0.0.2"],),
    "live-restore": (True,),
}
GENERIC: tuple[Any, ...] = ("", True, 1, ["x"], {"a": "b"})

FLAG_VALUES: Mapping[str, tuple[str, ...]] = {
    "network-plugin": ("cni", "kubenet", ""),
    "cni-bin-dir": ("/opt/cni/bin", "/usr/libexec/cni"),
    "cni-conf-dir": ("/etc/cni/net.d", "/etc/kubernetes/cni"),
    "cni-cache-dir": ("/var/lib/cni/cache", "/srv/cni-cache"),
    "container-runtime": ("docker", "remote"),
    "container-runtime-endpoint": ("unix:///var/run/dockershim.sock", "unix:///var/run/cri-dockerd.sock"),
    "pod-infra-container-image": ("k8s.gcr.io/pause:3.6", "registry.example.com/pause:3.5"),
    "docker-endpoint": ("unix:///var/run/docker.sock",),
    "network-plugin-mtu": ("1450",),
    "image-pull-progress-deadline": ("5m",),
}


def probed_facts(
    daemon: Mapping[str, Any] | None,
    flags: tuple[tuple[str, str], ...],
    extra_files: Mapping[str, str] | None = None,
) -> NodeFacts:
    """NodeFacts of a kubeadm node with this daemon.json and these kubelet flags, through the parser."""
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files.update(extra_files or {})
    if daemon is None:
        files.pop("/etc/docker/daemon.json", None)
    else:
        files["/etc/docker/daemon.json"] = json.dumps(daemon)
    args = " ".join(f"--{n}={v}" for n, v in flags)
    files[FLAGS_FILE] = f'KUBELET_KUBEADM_ARGS="{args}"\n'
    return parse_facts("n1", probe_output(files), kubelet_version="v1.23.17")


def plan(facts: NodeFacts, the_spec: NodeMigrationSpec | None = None) -> PlanReport:
    return build_plan(the_spec or spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)


def about(report: PlanReport, subject: str) -> list[Finding]:
    return [f for f in (*report.blockers, *report.warnings, *report.notes) if f.subject == subject]


def config_toml(n: NodeReport) -> str:
    (change,) = [c for c in n.containerd.changes if c.path == keys.CONTAINERD_CONFIG]
    return change.after or ""


def only_node(report: PlanReport) -> NodeReport:
    (n,) = report.nodes
    return n


# ---- the tables are complete ----------------------------------------------------------------------


def test_every_daemon_json_key_docker_20_10_documents_has_a_fate() -> None:
    assert sorted(set(DOCKER_20_10_KEYS) - daemon_json_keys()) == []


def test_every_dockershim_era_kubelet_flag_has_a_fate() -> None:
    assert sorted(set(DOCKERSHIM_FLAGS) - kubelet_flags() - {"docker", "docker-root"}) == []
    for flag in DOCKERSHIM_FLAGS:
        assert kubelet_flag_fate(flag, FLAG_VALUES.get(flag, ("x",))[0]).text


def test_a_key_no_table_knows_is_reported_not_dropped() -> None:
    assert daemon_json_fate("no-such-key", 1).fate is Fate.REPORTED
    assert kubelet_flag_fate("dockershim-something", "x").fate is Fate.IRRELEVANT


# ---- the tables say what the code does --------------------------------------------------------------


def _files(daemon: Mapping[str, Any], *, kubelet_driver: bool = True) -> dict[str, str]:
    facts = probed_facts(daemon, BASE_FLAGS)
    if not kubelet_driver:
        facts = replace(facts, kubelet=replace(facts.kubelet, cgroup_driver=None), docker_cgroup_driver=None)
    rendered = render_node_config(spec(), facts)
    return {f.path: f.text for f in rendered.files if not f.secret}


@pytest.mark.parametrize("key", sorted(daemon_json_keys() - DAEMON_JSON_TRANSLATED))
def test_a_key_the_table_does_not_translate_leaves_every_rendered_file_as_it_was(key: str) -> None:
    for value in VALUES.get(key, GENERIC[:2]):
        assert _files({**BASE_DAEMON, key: value}) == _files(BASE_DAEMON), (key, value)


def test_the_keys_the_table_translates_change_the_rendered_files_as_it_says() -> None:
    base = _files(BASE_DAEMON)
    mirrors = _files({**BASE_DAEMON, "registry-mirrors": ["https://mirror.example.com"]})
    hub = tomllib.loads(mirrors["/etc/containerd/certs.d/docker.io/hosts.toml"])
    assert list(hub["host"]) == ["https://mirror.example.com"]
    insecure = _files({**BASE_DAEMON, "insecure-registries": ["registry.internal:5000"]})
    hosts = tomllib.loads(insecure["/etc/containerd/certs.d/registry.internal:5000/hosts.toml"])
    assert hosts["host"]["https://registry.internal:5000"]["skip_verify"] is True
    assert set(mirrors) - set(base) and set(insecure) - set(base)
    proxied = _files({**BASE_DAEMON, "proxies": VALUES["proxies"][0]})
    assert "HTTP_PROXY=http://user:secret@proxy.example.com:3128" in proxied[keys.CONTAINERD_PROXY_DROPIN]
    assert set(proxied) - set(base) == {keys.CONTAINERD_PROXY_DROPIN}
    for driver, systemd in (("systemd", "SystemdCgroup = true"), ("cgroupfs", "SystemdCgroup = false")):
        rendered = _files({"exec-opts": [f"native.cgroupdriver={driver}"]}, kubelet_driver=False)
        assert systemd in rendered[keys.CONTAINERD_CONFIG]
    gpu = {**BASE_DAEMON, "default-runtime": "nvidia", "runtimes": VALUES["runtimes"][0]}
    runtimes = tomllib.loads(_files(gpu)[keys.CONTAINERD_CONFIG])["plugins"]["io.containerd.grpc.v1.cri"]
    assert runtimes["containerd"]["default_runtime_name"] == "nvidia"
    assert runtimes["containerd"]["runtimes"]["nvidia"] == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "nvidia-container-runtime", "SystemdCgroup": True},
    }
    for key in DAEMON_JSON_TRANSLATED:
        assert daemon_json_fate(key, VALUES[key][0], gpu).fate is Fate.TRANSLATED


def test_the_flags_the_table_says_the_switch_drops_are_the_ones_it_drops() -> None:
    named = kubelet_flags() | {"docker", "docker-root"}
    assert {f for f in named if is_dockershim_flag(f, 23)} == KUBELET_FLAGS_DROPPED
    facts = probed_facts(BASE_DAEMON, tuple((f, FLAG_VALUES.get(f, ("x",))[0]) for f in sorted(named)))
    switch = plan_kubelet_switch("n1", facts.kubelet, endpoint="unix:///run/containerd/containerd.sock")
    assert set(switch.removed_flags) == {f"--{f}" for f in KUBELET_FLAGS_DROPPED}
    (edit,) = [e for e in switch.edits if e.path == FLAGS_FILE]
    # the translated ones: the endpoint, the runtime (remote before 1.27) and the sandbox image stay
    assert "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in edit.after
    assert "--container-runtime=remote" in edit.after
    assert "--pod-infra-container-image=k8s.gcr.io/pause:3.6" in edit.after
    rendered = render_node_config(spec(), facts)
    assert rendered.report.sandbox_image == "k8s.gcr.io/pause:3.6"


# ---- findings, verdict and exit status --------------------------------------------------------------


def test_a_node_whose_settings_are_all_carried_or_meaningless_is_clean() -> None:
    report = plan(
        probed_facts({**BASE_DAEMON, "storage-driver": "overlay2", "live-restore": True}, BASE_FLAGS)
    )
    assert report.summary.exit_code == EXIT_CLEAN
    assert {f.code for f in about(report, "daemon.json live-restore")} == {DAEMON_JSON_IGNORED}
    assert {f.code for f in about(report, "--network-plugin")} == {KUBELET_FLAG_IGNORED}


def test_live_restore_stays_a_note_and_decides_what_the_plan_says_of_containers_outside_the_kubelet() -> None:
    registry = OutsideContainer("registry", "registry:2", "always")
    facts = replace(
        probed_facts({**BASE_DAEMON, "live-restore": True}, BASE_FLAGS), outside_containers=(registry,)
    )
    report = plan(facts)
    assert {f.code for f in about(report, "daemon.json live-restore")} == {DAEMON_JSON_IGNORED}
    (blocker,) = [f for f in report.blockers if f.code == "DockerContainersOutsideKubelet"]
    assert "keep running without a dockerd" in blocker.message
    assert report.summary.exit_code == EXIT_BLOCKERS
    # the spec's Stop turns the blocker into a warning that still lists them
    stopped = plan(facts, spec(dockerOutsideContainers="Stop"))
    assert [f.code for f in stopped.blockers] == []
    assert [f.subject for f in stopped.warnings if f.code == "DockerContainersStopped"] == [""]
    assert stopped.summary.exit_code == EXIT_WARNINGS


def test_a_setting_not_carried_over_is_a_warning_that_makes_the_exit_status_2() -> None:
    report = plan(probed_facts({**BASE_DAEMON, "log-opts": {"max-size": "-1"}}, BASE_FLAGS))
    (finding,) = about(report, "daemon.json log-opts")
    assert (finding.code, finding.level, finding.node) == (DAEMON_JSON_NOT_CARRIED, Level.WARNING, "n1")
    assert "containerLogMaxSize" in finding.advice
    assert report.summary.exit_code == EXIT_WARNINGS
    # the settings table keeps its row too
    rows = [c for c in only_node(report).containerd.carryover if c.source == "daemon.json log-opts"]
    assert [r.carried for r in rows] == [False]


KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"


def test_docker_log_rotation_is_carried_into_the_kubelet_and_the_plan_shows_the_diff() -> None:
    report = plan(
        probed_facts({**BASE_DAEMON, "log-opts": {"max-size": "100m", "max-file": "3"}}, BASE_FLAGS)
    )
    assert about(report, "daemon.json log-opts") == []
    assert report.summary.exit_code == EXIT_CLEAN
    n = only_node(report)
    (change,) = [c for c in n.kubelet.changes if c.path == KUBELET_CONFIG]
    assert (change.after or "").endswith("containerLogMaxSize: 100Mi\ncontainerLogMaxFiles: 3\n")
    assert any("containerLogMaxSize 100Mi" in note for note in n.kubelet.notes)
    # no row of the containerd settings table says it is lost
    assert [c for c in n.containerd.carryover if c.source == "daemon.json log-opts"] == []


def test_a_max_file_of_1_becomes_2_with_a_warning() -> None:
    report = plan(
        probed_facts({**BASE_DAEMON, "log-opts": {"max-size": "100m", "max-file": "1"}}, BASE_FLAGS)
    )
    (finding,) = about(report, "daemon.json log-opts")
    assert (finding.code, finding.level) == (DAEMON_JSON_NOT_CARRIED, Level.WARNING)
    assert "containerLogMaxFiles 2" in finding.message and "Docker kept 1 file" in finding.message
    (change,) = [c for c in only_node(report).kubelet.changes if c.path == KUBELET_CONFIG]
    assert "containerLogMaxFiles: 2\n" in (change.after or "")


def test_a_kubelet_that_sets_its_own_rotation_keeps_it_and_the_plan_says_so() -> None:
    config = node_files("kubeadm-systemd")[KUBELET_CONFIG] + "containerLogMaxSize: 50Mi\n"
    facts = probed_facts(
        {**BASE_DAEMON, "log-opts": {"max-size": "100m", "max-file": "3"}},
        BASE_FLAGS,
        {KUBELET_CONFIG: config},
    )
    report = plan(facts)
    (finding,) = about(report, "daemon.json log-opts")
    assert (finding.code, finding.level) == (LOG_ROTATION_KUBELET_KEPT, Level.INFO)
    assert "containerLogMaxSize: 50Mi" in finding.message and "containerLogMaxFiles 3" in finding.message
    (change,) = [c for c in only_node(report).kubelet.changes if c.path == KUBELET_CONFIG]
    assert "containerLogMaxSize: 50Mi\n" in (change.after or "") and "100Mi" not in (change.after or "")


def test_kubenet_has_no_containerd_equivalent_so_it_blocks_the_node() -> None:
    report = plan(probed_facts(BASE_DAEMON, (("network-plugin", "kubenet"),)))
    (finding,) = about(report, "--network-plugin")
    assert (finding.code, finding.level) == (KUBELET_FLAG_REFUSED, Level.BLOCKER)
    assert "kubenet" in finding.message and "CNI" in finding.advice
    assert report.summary.exit_code == EXIT_BLOCKERS


def test_a_custom_cni_dir_is_carried_into_containerd_without_allow_unsafe() -> None:
    flags = (*BASE_FLAGS, ("cni-bin-dir", "/usr/libexec/cni"), ("cni-conf-dir", "/etc/kubernetes/cni"))
    report = plan(probed_facts(BASE_DAEMON, flags))
    for flag in ("cni-bin-dir", "cni-conf-dir"):
        (finding,) = about(report, f"--{flag}")
        assert (finding.code, finding.level) == (KUBELET_FLAG_CARRIED, Level.INFO), flag
        assert finding.message.startswith(f"kubelet --{flag}=") and ": carried: " in finding.message
    n = only_node(report)
    cni = tomllib.loads(config_toml(n))["plugins"]["io.containerd.grpc.v1.cri"]["cni"]
    assert cni == {"bin_dir": "/usr/libexec/cni", "conf_dir": "/etc/kubernetes/cni"}
    # the node's own directory needs no allowUnsafe: its kubelet already ran CNI plugins from it
    assert report.blockers == () and report.warnings == ()
    # and the switch drops the flags as it drops every dockershim-only flag
    assert any("--cni-bin-dir" in note and "--cni-conf-dir" in note for note in n.kubelet.notes)


def test_a_cni_dir_containerd_would_not_read_still_blocks() -> None:
    flags = (*BASE_FLAGS, ("cni-bin-dir", "/usr/libexec/cni"))
    # extraConfig wins over the carried directory: the kubelet's plugins would not be found
    other = spec(
        containerd={
            "extraConfig": '[plugins."io.containerd.grpc.v1.cri".cni]\nbin_dir = "/srv/cni"\n',
            "allowUnsafe": ["RuntimeBinary"],
        }
    )
    (finding,) = about(plan(probed_facts(BASE_DAEMON, flags), other), "--cni-bin-dir")
    assert (finding.code, finding.level) == (KUBELET_FLAG_REFUSED, Level.BLOCKER)
    assert 'plugins."io.containerd.grpc.v1.cri".cni.bin_dir' in finding.advice
    assert "RuntimeBinary" in finding.advice
    # several bin directories: schema 2 has a single bin_dir
    several = (*BASE_FLAGS, ("cni-bin-dir", "/opt/cni/bin,/usr/libexec/cni"))
    (finding,) = about(plan(probed_facts(BASE_DAEMON, several)), "--cni-bin-dir")
    assert (finding.code, finding.level) == (KUBELET_FLAG_REFUSED, Level.BLOCKER)


@pytest.mark.parametrize(
    ("version", "schema", "key"),
    [("2.0.5", 3, "bin_dir"), ("2.2.9", 3, "bin_dirs"), ("2.3.7", 4, "bin_dirs")],
)
def test_containerd_2_gets_the_cni_dirs_in_its_runtime_plugin(version: str, schema: int, key: str) -> None:
    flags = (*BASE_FLAGS, ("cni-bin-dir", "/usr/libexec/cni"), ("cni-conf-dir", "/etc/kubernetes/cni"))
    facts = probed_facts(BASE_DAEMON, flags)
    facts = replace(facts, containerd_version=version)
    rendered = render_node_config(spec(containerd={"configVersion": schema}), facts)
    cni = tomllib.loads(rendered.config_toml.text)["plugins"]["io.containerd.cri.v1.runtime"]["cni"]
    expected = ["/usr/libexec/cni"] if key == "bin_dirs" else "/usr/libexec/cni"
    assert cni == {key: expected, "conf_dir": "/etc/kubernetes/cni"}
    report = plan(facts, spec(containerd={"configVersion": schema}))
    assert {f.code for f in about(report, "--cni-bin-dir")} == {KUBELET_FLAG_CARRIED}


DROP_IN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"


def test_dockershim_flags_in_a_kubelet_unit_are_named_with_their_file_and_what_the_switch_does() -> None:
    unit = node_files("kubeadm-systemd")[DROP_IN] + (
        'Environment="KUBELET_NETWORK_ARGS=--network-plugin=kubenet --docker-endpoint '
        'unix:///var/run/docker.sock"\n# --cni-bin-dir=/commented/out\n'
    )
    unit = unit.replace("$KUBELET_EXTRA_ARGS", "$KUBELET_EXTRA_ARGS $KUBELET_NETWORK_ARGS")
    report = plan(probed_facts(BASE_DAEMON, BASE_FLAGS, {DROP_IN: unit}))
    kubenet = [f for f in about(report, "--network-plugin") if f.code == KUBELET_FLAG_REFUSED]
    assert [f.level for f in kubenet] == [Level.BLOCKER] and DROP_IN in kubenet[0].message
    assert "no spec.podCIDR" in kubenet[0].message
    (endpoint,) = about(report, "--docker-endpoint")
    assert (endpoint.code, endpoint.level) == (KUBELET_FLAG_IGNORED, Level.INFO)
    assert endpoint.message.endswith(f"the switch removes it from {DROP_IN}")
    assert about(report, "--cni-bin-dir") == []
    # the flags file's own --network-plugin=cni is still named, as the switch drops it
    assert KUBELET_FLAG_IGNORED in {f.code for f in about(report, "--network-plugin")}


def test_a_flag_in_an_environment_variable_no_execstart_uses_is_not_on_the_command_line() -> None:
    unit = (
        node_files("kubeadm-systemd")[DROP_IN]
        + 'Environment="KUBELET_NETWORK_ARGS=--network-plugin=kubenet"\n'
    )
    report = plan(probed_facts(BASE_DAEMON, BASE_FLAGS, {DROP_IN: unit}))
    unit_findings = [f for f in about(report, "--network-plugin") if DROP_IN in f.message]
    assert [(f.code, f.level) for f in unit_findings] == [(KUBELET_FLAG_IGNORED, Level.INFO)]
    assert "no ExecStart= of the kubelet uses $KUBELET_NETWORK_ARGS" in unit_findings[0].message
    assert report.blockers == ()


PACKAGED_UNIT = "/lib/systemd/system/kubelet.service"


def test_a_dockershim_flag_in_a_packaged_unit_stays_and_the_advice_is_to_move_it() -> None:
    unit = "[Service]\nExecStart=/usr/bin/kubelet --docker-endpoint=unix:///var/run/docker.sock\n"
    drop_in = node_files("kubeadm-systemd")[DROP_IN].replace("ExecStart=\n", "")
    drop_in = drop_in[: drop_in.index("ExecStart=")]  # the packaged ExecStart= stays the kubelet's
    report = plan(probed_facts(BASE_DAEMON, BASE_FLAGS, {PACKAGED_UNIT: unit, DROP_IN: drop_in}))
    (endpoint,) = about(report, "--docker-endpoint")
    assert (endpoint.code, endpoint.level) == (KUBELET_FLAG_NOT_CARRIED, Level.WARNING)
    assert f"in {PACKAGED_UNIT}, a packaged unit the switch does not edit" in endpoint.message
    assert "/etc/systemd/system/kubelet.service.d/" in endpoint.advice
    section = next(iter(report.nodes)).kubelet
    assert PACKAGED_UNIT not in {c.path for c in section.changes}


def test_a_default_runtime_other_than_runc_blocks_the_node() -> None:
    report = plan(probed_facts({**BASE_DAEMON, "default-runtime": "nvidia"}, BASE_FLAGS))
    (finding,) = about(report, "daemon.json default-runtime")
    assert (finding.code, finding.level) == (DAEMON_JSON_REFUSED, Level.BLOCKER)


def test_userns_remap_blocks_the_node_in_the_words_the_facts_step_refuses_it_with() -> None:
    facts = probed_facts({**BASE_DAEMON, "userns-remap": "default"}, BASE_FLAGS)
    (finding,) = about(plan(facts), "daemon.json userns-remap")
    assert (finding.code, finding.level) == (DAEMON_JSON_REFUSED, Level.BLOCKER)
    assert "root on the node" in finding.message and "hostPath" in finding.message
    assert "chown" in finding.advice and "hostUsers: false" in finding.advice
    why = refusal(OutsideContainersPolicy.STOP, facts)
    assert why == f"{finding.message}: {finding.advice}"
    # an empty value remaps nothing
    unset = probed_facts({**BASE_DAEMON, "userns-remap": ""}, BASE_FLAGS)
    assert [f.level for f in about(plan(unset), "daemon.json userns-remap")] == [Level.INFO]
    assert refusal(OutsideContainersPolicy.STOP, unset) is None


def test_translated_keys_are_reported_when_the_spec_imports_no_docker_configuration() -> None:
    facts = probed_facts({**BASE_DAEMON, "registry-mirrors": ["https://mirror.example.com"]}, BASE_FLAGS)
    assert about(plan(facts), "daemon.json registry-mirrors") == []
    report = plan(facts, spec(containerd={"importDockerConfig": False}))
    (finding,) = about(report, "daemon.json registry-mirrors")
    assert finding.code == DAEMON_JSON_NOT_CARRIED and "importDockerConfig" in finding.message


def test_an_entry_of_a_translated_key_that_cannot_be_carried_is_a_warning() -> None:
    facts = probed_facts({**BASE_DAEMON, "registry-mirrors": ["ftp://not-a-mirror"]}, BASE_FLAGS)
    report = plan(facts)
    (finding,) = about(report, "daemon.json registry-mirrors")
    assert (finding.code, finding.level) == (SETTING_NOT_CARRIED, Level.WARNING)
    assert "ftp://not-a-mirror" in finding.message
    assert report.summary.exit_code == EXIT_WARNINGS


def test_a_value_with_a_url_password_is_shown_redacted() -> None:
    facts = probed_facts(
        {**BASE_DAEMON, "proxies": {"http-proxy": "http://u:hunter2@proxy:3128"}}, BASE_FLAGS
    )
    (finding,) = about(plan(facts), "daemon.json proxies")
    assert "hunter2" not in finding.message and "redacted" in finding.message


# ---- the property: nothing is silently absent -------------------------------------------------------


def _value(key: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(VALUES.get(key, GENERIC))


daemon_jsons = st.lists(
    st.sampled_from([*sorted(daemon_json_keys()), "not-a-docker-key"]).flatmap(
        lambda k: st.tuples(st.just(k), _value(k))
    ),
    unique_by=lambda kv: kv[0],
    max_size=12,
).map(dict)

_FLAG_NAMES = sorted(kubelet_flags() | {"docker", "docker-root"})
kubelet_flag_sets = st.lists(
    st.sampled_from(_FLAG_NAMES).flatmap(
        lambda f: st.tuples(st.just(f), st.sampled_from(FLAG_VALUES.get(f, ("x",))))
    ),
    unique_by=lambda kv: kv[0],
    max_size=8,
).map(tuple)

_LEVEL_OF = {Fate.REFUSED: Level.BLOCKER, Fate.REPORTED: Level.WARNING, Fate.IRRELEVANT: Level.INFO}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(daemon=daemon_jsons, flags=kubelet_flag_sets, carry_cni=st.booleans(), import_docker=st.booleans())
def test_every_documented_key_and_flag_ends_translated_refused_or_reported(
    daemon: dict[str, Any], flags: tuple[tuple[str, str], ...], carry_cni: bool, import_docker: bool
) -> None:
    flags = (("container-runtime-endpoint", "unix:///var/run/dockershim.sock"), *flags)
    flags = tuple(dict(flags).items())
    extra = ""
    bin_dir = dict(flags).get("cni-bin-dir")
    if carry_cni and bin_dir:
        extra = f'[plugins."io.containerd.grpc.v1.cri".cni]\nbin_dir = "{bin_dir}"\n'
    the_spec = spec(
        containerd={
            "extraConfig": extra,
            "importDockerConfig": import_docker,
            "allowUnsafe": ["RuntimeBinary"],
        }
    )
    facts = probed_facts(daemon, flags)
    assert dict(facts.daemon_json or {}) == daemon
    report = plan(facts, the_spec)
    n = only_node(report)
    levels = {f.level for f in n.findings}

    for key, value in daemon.items():
        fate = daemon_json_fate(key, value, daemon).fate
        subject = f"daemon.json {key}"
        found = about(report, subject)
        if fate is Fate.TRANSLATED and key in DAEMON_JSON_TO_KUBELET:
            # carried by the switch's kubelet edit, which the plan shows; nothing to report
            assert found == [] and any("log-opts" in note for note in n.kubelet.notes), (key, value)
            continue
        if fate is Fate.TRANSLATED and (import_docker or key not in DAEMON_JSON_IMPORTED):
            carried = [c for c in n.containerd.carryover if c.source == subject and c.carried]
            lost = [f for f in found if f.code == SETTING_NOT_CARRIED]
            if key == "exec-opts":
                assert "SystemdCgroup = true" in config_toml(n)
            else:
                # each entry is carried (a row that says so) or a warning naming it; nothing vanishes
                assert carried or lost or value == [], (key, value)
            assert all(f.level is Level.WARNING for f in found)
        else:
            expected = Level.WARNING if fate is Fate.TRANSLATED else _LEVEL_OF[fate]
            assert [f.level for f in found if f.code != SETTING_NOT_CARRIED] == [expected], (key, value)

    config = tomllib.loads(config_toml(n)) if n.containerd.computed else {}
    for name, value in flags:
        found = about(report, f"--{name}")
        fate = kubelet_flag_fate(name, value, carried=False).fate
        if name in ("cni-bin-dir", "cni-conf-dir") and fate is Fate.REFUSED:
            # the node's own directory is carried into containerd (extraConfig sets the same one)
            cni = config["plugins"]["io.containerd.grpc.v1.cri"]["cni"]
            assert cni["bin_dir" if name == "cni-bin-dir" else "conf_dir"] == value
            assert [(f.code, f.level) for f in found] == [(KUBELET_FLAG_CARRIED, Level.INFO)], (name, value)
            continue
        if fate is Fate.TRANSLATED:
            assert found == []
            continue
        assert [f.level for f in found] == [_LEVEL_OF[fate]], (name, value)
        if name in KUBELET_FLAGS_DROPPED:
            assert any(f"--{name}" in note for note in n.kubelet.notes), name

    # every one of those findings counts in the node's status and the verdict
    expected_exit = (
        EXIT_BLOCKERS if Level.BLOCKER in levels else EXIT_WARNINGS if Level.WARNING in levels else EXIT_CLEAN
    )
    assert report.summary.exit_code == expected_exit


# ---- docs/support.md lists what the tables say ------------------------------------------------------

SUPPORT = Path(__file__).resolve().parents[3] / "docs" / "support.md"


def _support_rows() -> dict[str, tuple[str, str]]:
    text = SUPPORT.read_text()
    section = text.split("## Docker-era settings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].split(" ")[0] in {f.value for f in Fate}:
            rows[cells[0].split(" ")[0]] = (cells[1], cells[2])
    return rows


def test_docs_support_lists_every_key_and_flag_under_its_fate() -> None:
    rows = _support_rows()
    assert set(rows) == {f.value for f in Fate}
    for key, rule in DAEMON_JSON.items():
        assert f"`{key}`" in rows[rule.fate.value][0], key
    for key in DAEMON_JSON_BY_VALUE:
        assert any(f"`{key}`" in keys_ for keys_, _ in rows.values()), key
    for flag, rule in KUBELET_FLAGS.items():
        listed = "`--docker*`" if flag.startswith("docker") else f"`--{flag}`"
        assert listed in rows[rule.fate.value][1], flag
    for flag in KUBELET_FLAGS_BY_VALUE:
        assert any(f"`--{flag}" in flags for _, flags in rows.values()), flag


# ---- cri-dockerd: dockershim's settings on kubelet 1.24+ nodes ---------------------------------------

CRI_DOCKERD_UNIT = "/etc/systemd/system/cri-docker.service"


def cri_dockerd_facts(args: str) -> NodeFacts:
    files = {p: t for p, t in node_files("cri-dockerd").items() if "/certs.d/" not in p}
    files[CRI_DOCKERD_UNIT] = f"[Service]\nExecStart=/usr/bin/cri-dockerd {args}\n"
    return parse_facts("n1", probe_output(files), kubelet_version="v1.27.16")


def test_the_parser_reads_cri_dockerds_flags_from_its_unit() -> None:
    files = node_files("cri-dockerd")
    facts = parse_facts("n1", probe_output(files), kubelet_version="v1.27.16")
    assert facts.cri_dockerd_unit == CRI_DOCKERD_UNIT
    assert facts.cri_dockerd_flags == (
        ("container-runtime-endpoint", "fd://"),
        ("network-plugin", "cni"),
        ("pod-infra-container-image", "registry.k8s.io/pause:3.9"),
    )


def test_cri_dockerds_usual_flags_are_carried_or_named_as_meaningless() -> None:
    facts = cri_dockerd_facts(
        "--container-runtime-endpoint fd:// --network-plugin=cni --pod-infra-container-image=registry.k8s.io/pause:3.9"
    )
    report = plan(facts)
    assert about(report, "cri-dockerd --pod-infra-container-image") == []  # the same sandbox image
    assert {f.code for f in about(report, "cri-dockerd --network-plugin")} == {CRI_DOCKERD_FLAG_IGNORED}
    assert {f.code for f in about(report, "cri-dockerd --container-runtime-endpoint")} == {
        CRI_DOCKERD_FLAG_IGNORED
    }


def test_cri_dockerd_with_kubenet_a_custom_cni_dir_or_another_sandbox_image_is_named() -> None:
    facts = cri_dockerd_facts(
        "--network-plugin=kubenet --cni-conf-dir=/etc/kubernetes/cni "
        "--pod-infra-container-image=registry.example.com/pause:3.5 --some-new-flag=1"
    )
    report = plan(facts)
    (finding,) = about(report, "cri-dockerd --network-plugin")
    assert (finding.code, finding.level) == (CRI_DOCKERD_FLAG_REFUSED, Level.BLOCKER)
    assert CRI_DOCKERD_UNIT in finding.message
    # its CNI directory is carried into containerd, as the kubelet's would be
    (finding,) = about(report, "cri-dockerd --cni-conf-dir")
    assert (finding.code, finding.level) == (CRI_DOCKERD_FLAG_CARRIED, Level.INFO)
    assert CRI_DOCKERD_UNIT in finding.message
    cni = tomllib.loads(config_toml(only_node(report)))["plugins"]["io.containerd.grpc.v1.cri"]["cni"]
    assert cni == {"conf_dir": "/etc/kubernetes/cni"}
    for flag in ("pod-infra-container-image", "some-new-flag"):
        (finding,) = about(report, f"cri-dockerd --{flag}")
        assert (finding.code, finding.level) == (CRI_DOCKERD_FLAG_NOT_CARRIED, Level.WARNING)
    assert (
        "spec.containerd.sandboxImage" in about(report, "cri-dockerd --pod-infra-container-image")[0].advice
    )
    assert report.summary.exit_code == EXIT_BLOCKERS


_CRI_DOCKERD_NAMES = sorted(
    {*CRI_DOCKERD_FLAGS, "network-plugin", "cni-bin-dir", "cni-conf-dir", "cni-cache-dir"}
    | {"pod-infra-container-image", "not-a-cri-dockerd-flag"}
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(_CRI_DOCKERD_NAMES).flatmap(
            lambda f: st.tuples(st.just(f), st.sampled_from(FLAG_VALUES.get(f, ("x",))))
        ),
        unique_by=lambda kv: kv[0],
        max_size=6,
    )
)
def test_every_cri_dockerd_flag_ends_translated_refused_or_reported(flags: list[tuple[str, str]]) -> None:
    facts = cri_dockerd_facts(" ".join(f"--{n}={v}" for n, v in flags))
    assert facts.cri_dockerd_flags == tuple(flags)
    report = plan(facts)
    sandbox = only_node(report).containerd.notes[1]
    for name, value in flags:
        found = about(report, f"cri-dockerd --{name}")
        fate = cri_dockerd_flag_fate(name, value).fate
        if name == "pod-infra-container-image" and f"sandbox image {value}:" in sandbox:
            assert found == []
            continue
        if name in ("cni-bin-dir", "cni-conf-dir") and fate is Fate.REFUSED:  # carried into containerd
            assert [(f.code, f.level) for f in found] == [(CRI_DOCKERD_FLAG_CARRIED, Level.INFO)]
            continue
        assert [f.level for f in found] == [_LEVEL_OF[fate]], (name, value)


def test_a_daemon_json_value_nested_too_deep_is_a_blocker_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    facts = replace(probed_facts(BASE_DAEMON, BASE_FLAGS), daemon_json={"storage-driver": deep})
    report = plan(facts)
    assert report.summary.exit_code == EXIT_BLOCKERS
    (finding,) = about(report, "daemon.json storage-driver")
    assert "nested too deep to show" in finding.message


def test_what_the_current_config_toml_loses_is_a_warning_and_enabling_cri_is_not() -> None:
    path = SUPPORT.parents[1] / "examples" / "facts" / "legacy-customised.json"
    facts = facts_from_json_text(path.read_text(), str(path))
    report = plan(replace(facts, node="n1"))
    lost = {f.subject: f for f in report.warnings if f.code == SETTING_NOT_CARRIED}
    assert "config.toml registry.configs" in lost
    misspelt = [s for s in lost if "sandbox_imagee" in s]
    assert misspelt and "spec.containerd.extraConfig" in lost[misspelt[0]].advice
    assert "config.toml disabled_plugins" not in lost
    assert "CriPluginDisabled" in {f.code for f in report.notes}


@pytest.mark.parametrize(
    "setting",
    [
        {"userns-remap": "default"},
        {"storage-driver": "devicemapper"},
        {"default-runtime": "nvidia"},  # no runtimes entry: nothing to carry
        {"default-runtime": "kata", "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}},
        {"log-driver": "syslog"},  # a warning: the node migrates
        {"seccomp-profile": "/etc/docker/seccomp.json"},  # a warning
        {"debug": True},  # a note
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items() if k != "runtimes"),
)
def test_the_facts_step_refuses_exactly_the_nodes_the_plan_blocks_for_their_daemon_json(
    setting: dict[str, Any],
) -> None:
    facts = probed_facts({**BASE_DAEMON, **setting}, BASE_FLAGS)
    blockers = [f for f in plan(facts).nodes[0].findings if f.code == DAEMON_JSON_REFUSED]
    why = refusal(OutsideContainersPolicy.STOP, facts)
    if blockers:
        assert why == f"{blockers[0].message}: {blockers[0].advice}"
    else:
        assert why is None
