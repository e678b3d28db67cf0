"""The pure parts of the testbed nodes: flag parsing, unit expansion, image archives, profiles."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from testbed.nodes.images import ImageSpec, LayerSpec, benchmark_images, write_archive
from testbed.nodes.kubelet_config import KubeletFlagError, choose_runtime, parse_flags
from testbed.nodes.profiles import PROFILES, ProfileName, profile, render_node_files
from testbed.nodes.systemctl import expand_exec, read_environment_file


def test_kubelet_1_23_defaults_to_dockershim_on_the_docker_socket() -> None:
    choice = choose_runtime(parse_flags(["--network-plugin=cni"], "1.23.17"), {}, "1.23.17")
    assert (choice.kind, choice.via, choice.endpoint) == (
        "docker",
        "dockershim",
        "unix:///var/run/docker.sock",
    )


def test_kubelet_takes_the_endpoint_from_the_flag_or_the_config_file() -> None:
    flags = parse_flags(
        [
            "--container-runtime",
            "remote",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        ],
        "1.23.17",
    )
    assert choose_runtime(flags, {}, "1.23.17").kind == "cri"
    from_config = choose_runtime({}, {"containerRuntimeEndpoint": "unix:///run/cri-dockerd.sock"}, "1.27.16")
    assert (from_config.kind, from_config.via) == ("docker", "cri-dockerd")
    assert choose_runtime({}, {}, "1.27.16").endpoint == "unix:///run/containerd/containerd.sock"


@pytest.mark.parametrize(
    ("flag", "version"), [("--network-plugin=cni", "1.24.0"), ("--container-runtime=remote", "1.27.16")]
)
def test_kubelet_refuses_flags_removed_in_its_version(flag: str, version: str) -> None:
    with pytest.raises(KubeletFlagError, match=f"unknown flag: {flag.split('=')[0]}"):
        parse_flags([flag], version)


def test_environment_files_and_exec_expansion_follow_systemd(tmp_path: Path) -> None:
    env_file = tmp_path / "kubelet.env"
    env_file.write_text('# comment\nKUBELET_ARGS="--a=1 \\\n--b=2"\nEMPTY=\nQUOTED="one word"\n')
    env = read_environment_file(env_file)
    assert env["KUBELET_ARGS"] == "--a=1  --b=2" or env["KUBELET_ARGS"].split() == ["--a=1", "--b=2"]
    assert expand_exec(["kubelet", "$KUBELET_ARGS", "$EMPTY", "${QUOTED}"], env) == [
        "kubelet",
        "--a=1",
        "--b=2",
        "one word",
    ]


def test_image_archives_are_deterministic_and_share_layers(tmp_path: Path) -> None:
    base = LayerSpec("b", size_bytes=1024, busybox=True)
    images = [
        ImageSpec(("x/a:1",), (base, LayerSpec("a", 10))),
        ImageSpec(("x/b:1",), (base,)),
        ImageSpec((), (base,)),
    ]
    first, second = write_archive(images, tmp_path / "1.tar"), write_archive(images, tmp_path / "2.tar")
    assert first == second
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    with tarfile.open(tmp_path / "1.tar") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None, "the archive has a manifest.json"
        manifest = json.load(member)
        layers = [n for n in tar.getnames() if n.endswith("layer.tar")]
    assert len(layers) == 2, "the shared base layer is stored once"
    assert manifest[2]["RepoTags"] is None


def test_benchmark_images_are_parametric() -> None:
    images = benchmark_images(base_mb=2, count=3, each_mb=1)
    assert len(images) == 3 and all(i.layers[0] == images[0].layers[0] for i in images)
    assert images[0].layers[0].size_bytes == 2 << 20


@pytest.mark.parametrize("name", [p.value for p in ProfileName])
def test_every_profile_ships_containerd_as_docker_ce_does_and_keeps_dockerd_off_the_network(
    name: str,
) -> None:
    files = render_node_files(profile(name), "n1", "127.0.0.11", "127.0.0.1 localhost\n", "CA")
    assert 'disabled_plugins = ["cri"]' in files["/etc/containerd/config.toml"]
    docker_unit = json.loads(files["/etc/fake-systemd/docker.json"])
    assert {"--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false"} <= set(
        docker_unit["exec"]
    )
    daemon = json.loads(files["/etc/docker/daemon.json"])
    assert daemon["log-opts"] and daemon["exec-opts"] == [
        f"native.cgroupdriver={PROFILES[ProfileName(name)].cgroup_driver}"
    ]


def test_an_unknown_profile_is_rejected_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="known profiles: kubeadm-systemd"):
        profile("rke1")


CLUSTER_NAME_PATTERN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["up", "--name", "rtA"], "'rtA'"),
        (["up", "--name", "x" * 60], "at most"),
        (["up", "--name=-lead"], "'-lead'"),
        (["down", "--name", "../elsewhere"], "'../elsewhere'"),
        (["status", "--name", "has.dot"], "'has.dot'"),
    ],
)
def test_a_cluster_name_that_cannot_name_nodes_is_refused_up_front_naming_the_flag_and_the_pattern(
    argv: list[str], bad: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    root = tmp_path / "root"
    result = subprocess.run(
        [sys.executable, "-m", "testbed", "--root", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "argument --name" in result.stderr and bad in result.stderr
    assert CLUSTER_NAME_PATTERN in result.stderr
    assert not root.exists(), "nothing is created for a refused name"


def test_cluster_up_refuses_a_name_its_nodes_cannot_carry(tmp_path: Path) -> None:
    from testbed.nodes import Cluster

    with pytest.raises(ValueError, match=r"cluster name 'rtA'.*lowercase"):
        Cluster.up("rtA", ["kubeadm-systemd"], root=tmp_path / "root")
    assert not (tmp_path / "root").exists()
