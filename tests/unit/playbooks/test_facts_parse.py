"""Facts parsing: the probe's records become a complete NodeFacts per testbed profile, and whatever
could not be read is named instead of guessed."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shimshift.model.errors import NodeError
from shimshift.model.facts import KubeletLayout
from shimshift.steps.facts.parse import parse_facts, parse_records
from tests.unit.playbooks.probe import PROFILES, node_files, probe_output, profile_info, record


@pytest.mark.parametrize("profile", PROFILES)
def test_facts_are_complete_for_every_testbed_profile(profile: str) -> None:
    files = node_files(profile)
    info = profile_info(profile)
    facts = parse_facts("n1", probe_output(files), kubelet_version="v" + info["kubelet_version"])

    assert facts.os_release == "Debian GNU/Linux 12 (bookworm)"
    assert facts.docker_version == "20.10.24+dfsg1"
    assert facts.containerd_version == "1.6.20~ds1"
    assert facts.containerd_major == 1
    assert facts.containerd_config == files["/etc/containerd/config.toml"]
    assert facts.containerd_config_version == 1  # docker-ce's file has no version line
    assert facts.cri_enabled is False
    assert facts.containerd_root_free_bytes == 96000000000
    assert facts.daemon_json is not None
    assert facts.daemon_json["exec-opts"] == [f"native.cgroupdriver={info['cgroup_driver']}"]
    assert facts.kubelet.version == "v" + info["kubelet_version"]
    assert facts.kubelet_minor == int(info["kubelet_version"].split(".")[1])
    assert facts.kubelet.cgroup_driver is not None
    assert facts.kubelet.cgroup_driver.value == info["cgroup_driver"]
    assert facts.kubelet.config_file in facts.kubelet.files
    assert [i.size for i in facts.images] == [683968, 52428800]
    assert {c.pod for c in facts.containers} == {"kube-proxy-x7"}
    assert facts.dockershim_node
    assert set(facts.unreadable) == set()
    certs = {c.host: c for c in facts.docker_certs}
    if "/etc/docker/certs.d/registry.shimshift.test/ca.crt" in files:
        assert list(certs["registry.shimshift.test"].ca_certs) == [
            "/etc/docker/certs.d/registry.shimshift.test/ca.crt"
        ]
    else:
        assert certs == {}


def test_crictl_and_containerd_2_versions_are_read_and_a_node_without_crictl_is_no_problem() -> None:
    files = node_files("kubeadm-systemd")
    with_crictl = parse_facts(
        "n1",
        probe_output(
            files,
            overrides={
                "crictl-version": ("crictl version v1.34.0\n", "0"),
                "containerd-version": ("containerd github.com/containerd/containerd/v2 v2.3.7\n", "0"),
            },
        ),
    )
    assert with_crictl.crictl_version == "v1.34.0"
    assert with_crictl.containerd_version == "v2.3.7"
    assert (with_crictl.containerd_major, with_crictl.containerd_minor) == (2, 3)
    without = parse_facts(
        "n1", probe_output(files, overrides={"crictl-version": ("", "127")}), kubelet_version="v1.23.17"
    )
    assert without.crictl_version is None
    assert without.unreadable == {}
    assert parse_facts("n1", probe_output(files)).crictl_version is None  # an older probe: no record


def test_kubelet_layouts_are_told_apart() -> None:
    def layout(profile: str) -> KubeletLayout:
        return parse_facts("n", probe_output(node_files(profile)), kubelet_version="v1.23.17").kubelet.layout

    assert layout("kubeadm-systemd") is KubeletLayout.KUBEADM_FLAGS
    assert layout("kubespray") is KubeletLayout.KUBESPRAY_ENV
    assert layout("cri-dockerd") is KubeletLayout.KUBELET_CONFIGURATION


def test_the_cri_dockerd_endpoint_is_found_in_the_kubelet_configuration() -> None:
    facts = parse_facts("n", probe_output(node_files("cri-dockerd")), kubelet_version="v1.27.16")
    endpoint = facts.kubelet.runtime_endpoint
    assert endpoint is not None
    assert (endpoint.value, endpoint.file, endpoint.key) == (
        "unix:///run/cri-dockerd.sock",
        "/var/lib/kubelet/config.yaml",
        "containerRuntimeEndpoint",
    )
    assert facts.cri_dockerd
    assert facts.dockershim_node


def test_kubespray_flags_and_config_are_read_from_kubelet_env() -> None:
    facts = parse_facts("n", probe_output(node_files("kubespray")), kubelet_version="v1.23.17")
    assert facts.kubelet.flags_file == "/etc/kubernetes/kubelet.env"
    assert facts.kubelet.config_file == "/etc/kubernetes/kubelet-config.yaml"
    assert facts.kubelet.pod_infra_image is not None
    assert facts.kubelet.pod_infra_image.value == "k8s.gcr.io/pause:3.6"
    assert ("network-plugin", "cni") in facts.kubelet.flags


def test_missing_pieces_are_reported_not_guessed() -> None:
    out = probe_output(
        {},
        overrides={
            "docker-info": ("", "127"),
            "docker-images": ("", "127"),
            "df:/var/lib/containerd": ("", "1"),
        },
    )
    facts = parse_facts("n", out)
    assert facts.docker_version is None
    assert not facts.dockershim_node
    assert facts.daemon_json is None
    assert facts.containerd_root_free_bytes is None
    assert facts.unreadable["docker info"] == "command not found"
    assert facts.unreadable["kubelet version"] == "command not found"
    assert facts.unreadable["free disk"] == "exit status 1"


def test_the_kubelet_binary_version_wins_over_the_hint() -> None:
    out = probe_output(
        node_files("kubeadm-systemd"), overrides={"kubelet-version": ("Kubernetes v1.23.17\n", "0")}
    )
    assert parse_facts("n", out, kubelet_version="v1.99.0").kubelet.version == "v1.23.17"


def test_a_node_already_on_containerd_is_recognised() -> None:
    files = node_files("kubeadm-systemd")
    files["/var/lib/kubelet/kubeadm-flags.env"] = (
        'KUBELET_KUBEADM_ARGS="--container-runtime=remote '
        '--container-runtime-endpoint=unix:///run/containerd/containerd.sock"\n'
    )
    facts = parse_facts("n", probe_output(files), kubelet_version="v1.23.17")
    assert facts.on_containerd
    assert not facts.dockershim_node


def test_client_keys_are_carried_as_a_hash_only() -> None:
    files = {
        "/etc/docker/certs.d/r.test/client.key": "-----BEGIN PRIVATE KEY-----\nsecret\n",
        "/etc/docker/certs.d/r.test/client.cert": "cert",
    }
    facts = parse_facts("n", probe_output(files))
    (certs,) = facts.docker_certs
    assert certs.client_keys == {"/etc/docker/certs.d/r.test/client.key": "f" * 64}
    assert certs.client_certs == ("/etc/docker/certs.d/r.test/client.cert",)
    assert "secret" not in repr(facts)


def test_truncated_output_is_an_error_naming_the_node() -> None:
    out = probe_output({}).rsplit("shimshift-facts\tend", 1)[0]
    with pytest.raises(NodeError, match=r"node n7: .*truncated"):
        parse_facts("n7", out)


def test_output_that_is_not_the_probe_is_an_error() -> None:
    with pytest.raises(NodeError, match=r"no header"):
        parse_facts("n", "bash: line 1: base64: command not found\n")


@given(
    st.dictionaries(
        st.text(min_size=1).filter(
            lambda k: (
                "\t" not in k
                and "\n" not in k
                and "\r" not in k
                and "\x0b" not in k
                and "\x0c" not in k
                and "\x1c" not in k
                and "\x1d" not in k
                and "\x1e" not in k
                and "\x85" not in k
                and "\u2028" not in k
                and "\u2029" not in k
            )
        ),
        st.binary(),
        max_size=8,
    )
)
def test_any_bytes_arrive_unchanged_through_the_record_format(payloads: dict[str, bytes]) -> None:
    lines = ["shimshift-facts\t1", *(record(k, v) for k, v in payloads.items()), "shimshift-facts\tend"]
    records = parse_records("n", "\n".join(lines))
    assert {k: r.data for k, r in records.items()} == payloads


@given(st.text())
def test_garbage_output_is_rejected_or_parsed_never_crashes(text: str) -> None:
    with contextlib.suppress(NodeError):
        parse_facts("n", text)
