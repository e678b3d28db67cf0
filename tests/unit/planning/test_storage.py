"""Docker's storage driver under containerd: overlay2 is containerd's overlayfs; zfs and btrfs become the
CRI plugin's snapshotter when the node's containerd loads that plugin, else the node is refused with
why; devicemapper is refused; any other driver is a warning. Through the facts parser and the plan."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from typing import Any

import pytest

from shimshift.planning.build import build_plan
from shimshift.planning.dataroot import CONTAINERD_ROOT_MOVED, DOCKER_ROOT_OTHER_FILESYSTEM, sibling_root
from shimshift.planning.findings import Level
from shimshift.planning.report import EXIT_BLOCKERS, EXIT_CLEAN
from shimshift.planning.settings import DAEMON_JSON_NOT_CARRIED, DAEMON_JSON_REFUSED
from shimshift.rendering import render_node_config
from shimshift.steps.facts.parse import parse_facts
from tests.unit.planning.factory import cluster, spec
from tests.unit.planning.test_runtimes import CONTAINERD
from tests.unit.planning.test_settings import BASE_DAEMON, NOW, about, only_node, plan
from tests.unit.playbooks.probe import DOCKER_INFO, PLUGINS, node_files, probe_output

SUBJECT = "daemon.json storage-driver"


def facts_with(driver: str, plugin: str | None, schema: int = 2) -> Any:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/etc/docker/daemon.json"] = json.dumps({**BASE_DAEMON, "storage-driver": driver})
    plugins = PLUGINS + (
        f"io.containerd.snapshotter.v1    {driver:<24} linux/amd64    {plugin}\n" if plugin else ""
    )
    overrides = {"ctr-plugins": (plugins, "0"), "containerd-version": (CONTAINERD[schema], "0")}
    return parse_facts("n1", probe_output(files, overrides=overrides), kubelet_version="v1.23.17")


@pytest.mark.parametrize("driver", ["zfs", "btrfs"])
@pytest.mark.parametrize("schema", [2, 3, 4])
def test_zfs_or_btrfs_is_the_cri_snapshotter_when_the_nodes_containerd_loads_it(
    driver: str, schema: int
) -> None:
    facts = facts_with(driver, "ok", schema)
    assert facts.snapshotters[driver] == "ok"
    rendered = render_node_config(spec(), facts)
    doc = tomllib.loads(rendered.config_toml.text)
    if schema == 2:
        assert doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"] == driver
    else:
        assert doc["plugins"]["io.containerd.cri.v1.images"]["snapshotter"] == driver
    report = plan(facts)
    assert about(report, SUBJECT) == [] and report.summary.exit_code == EXIT_CLEAN
    rows = [c for c in only_node(report).containerd.carryover if c.source == SUBJECT]
    assert [(r.value, r.carried) for r in rows] == [(driver, True)]


@pytest.mark.parametrize(
    ("driver", "plugin", "why"), [("zfs", "skip", "reports skip"), ("btrfs", None, "is not loaded")]
)
def test_zfs_or_btrfs_without_the_plugin_loaded_blocks_the_node(
    driver: str, plugin: str | None, why: str
) -> None:
    facts = facts_with(driver, plugin)
    assert "snapshotter" not in render_node_config(spec(), facts).config_toml.text
    report = plan(facts)
    (finding,) = about(report, SUBJECT)
    assert (finding.code, finding.level) == (DAEMON_JSON_REFUSED, Level.BLOCKER)
    assert why in finding.message and report.summary.exit_code == EXIT_BLOCKERS


def test_devicemapper_is_refused_and_another_driver_is_a_warning() -> None:
    (mapper,) = about(plan(facts_with("devicemapper", None)), SUBJECT)
    assert (mapper.code, mapper.level) == (DAEMON_JSON_REFUSED, Level.BLOCKER)
    assert "thin pool" in mapper.message and "overlay2" in mapper.advice
    (vfs,) = about(plan(facts_with("vfs", None)), SUBJECT)
    assert (vfs.code, vfs.level) == (DAEMON_JSON_NOT_CARRIED, Level.WARNING)
    assert render_node_config(spec(), facts_with("vfs", None)).config_toml.text == (
        render_node_config(spec(), facts_with("overlay2", None)).config_toml.text
    )


# ---- data-root on another filesystem ------------------------------------------------------------

DF = "Filesystem     1-blocks       Used   Available Capacity Mounted on\n{dev}  1000 10 {free}  1% {mount}\n"


def data_root_facts(
    docker_mount: str, docker_root: str = "/data/docker", *, devices: str = "2049 2065"
) -> Any:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/etc/docker/daemon.json"] = json.dumps({**BASE_DAEMON, "data-root": docker_root})
    info = {**DOCKER_INFO, "DockerRootDir": docker_root}
    overrides = {
        "docker-info": (json.dumps(info) + "\n", "0"),
        "df:/var/lib/containerd": (DF.format(dev="/dev/vda1", free=20 * 2**30, mount="/"), "0"),
        f"dfdocker:{docker_root}": (DF.format(dev="/dev/vdb1", free=500 * 2**30, mount=docker_mount), "0"),
        "devices": ("{} /var/lib/containerd\n{} {}\n".format(*devices.split(), docker_root), "0"),
    }
    return parse_facts("n1", probe_output(files, overrides=overrides), kubelet_version="v1.23.17")


def test_a_data_root_on_another_disk_names_both_and_where_containerds_root_could_go() -> None:
    facts = data_root_facts("/data")
    assert (facts.docker_root, facts.docker_root_mount, facts.containerd_root_mount) == (
        "/data/docker",
        "/data",
        "/",
    )
    report = plan(facts)
    found = {f.code: f for f in about(report, "daemon.json data-root")}
    moved = found[DOCKER_ROOT_OTHER_FILESYSTEM]
    assert moved.level is Level.WARNING
    assert "/data/docker is on /data (500.0 GiB free)" in moved.message
    assert "/var/lib/containerd on / (20.0 GiB free)" in moved.message
    assert "/data/containerd (beside Docker's data root, never inside it)" in moved.advice
    # containerd's root is not moved: the rendered config sets none
    assert "root" not in tomllib.loads(render_node_config(spec(), facts).config_toml.text)
    assert sibling_root("/data/docker/") == "/data/containerd" and sibling_root("/docker") == "/containerd"


def test_a_data_root_on_the_same_filesystem_is_only_the_keys_own_note() -> None:
    # a bind mount of the root filesystem has a mount point of its own but the same device
    facts = data_root_facts("/data", devices="2049 2049")
    assert facts.roots_share_filesystem is True
    codes = {f.code for f in about(plan(facts), "daemon.json data-root")}
    assert DOCKER_ROOT_OTHER_FILESYSTEM not in codes


def test_an_extra_config_that_moves_containerds_root_blocks_the_node_and_keeping_the_admins_does_not() -> (
    None
):
    facts = facts_with("overlay2", None)
    moved = build_plan(
        spec(containerd={"extraConfig": 'root = "/data/containerd"\n'}), cluster(), {"n1": facts}, NOW
    )
    (finding,) = about(moved, "config.toml root")
    assert (finding.code, finding.level) == (CONTAINERD_ROOT_MOVED, Level.BLOCKER)
    assert "from /var/lib/containerd to /data/containerd" in finding.message
    # the admin's own root in the current config.toml is kept as it is: nothing moves
    kept = replace(facts, containerd_config='version = 2\nroot = "/data/containerd"\n')
    same = build_plan(
        spec(containerd={"extraConfig": 'root = "/data/containerd"\n'}), cluster(), {"n1": kept}, NOW
    )
    assert about(same, "config.toml root") == []
    assert about(plan(kept), "config.toml root") == []
