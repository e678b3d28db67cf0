"""The kubelet switch is a pure, version-aware edit: the endpoint lands where the node sets it, the
flags kubelet would refuse are gone, and every other byte of every file stays as it was."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from shimshift.model.errors import NodeError
from shimshift.model.facts import KubeletFacts
from shimshift.model.spec import KubeletConfigMethod
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.kubeletfiles import env_value, split_flags
from shimshift.steps.switch.kubelet import plan_kubelet_switch, set_yaml_top_level
from tests.unit.playbooks.probe import PROFILES, node_files, probe_output, profile_info

ENDPOINT = "unix:///run/containerd/containerd.sock"


def kubelet_facts(
    profile: str, files: dict[str, str] | None = None, version: str | None = None
) -> KubeletFacts:
    files = files or node_files(profile)
    version = version or "v" + profile_info(profile)["kubelet_version"]
    return parse_facts("n1", probe_output(files), kubelet_version=version).kubelet


def apply(kubelet: KubeletFacts, **kw: object) -> dict[str, str]:
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT, **kw)  # type: ignore[arg-type]
    return {**kubelet.files, **{e.path: e.after for e in switch.edits}}


def test_kubeadm_123_gets_a_remote_runtime_and_loses_the_network_plugin_flag() -> None:
    before = node_files("kubeadm-systemd")
    switch = plan_kubelet_switch("n1", kubelet_facts("kubeadm-systemd"), endpoint=ENDPOINT)
    assert switch.paths == ("/var/lib/kubelet/kubeadm-flags.env",)
    (edit,) = switch.edits
    assert edit.before == before["/var/lib/kubelet/kubeadm-flags.env"]
    assert edit.after == (
        'KUBELET_KUBEADM_ARGS="--pod-infra-container-image=k8s.gcr.io/pause:3.6 '
        f'--container-runtime=remote --container-runtime-endpoint={ENDPOINT}"\n'
    )
    assert switch.removed_flags == ("--network-plugin",)
    assert switch.endpoint_file == "/var/lib/kubelet/kubeadm-flags.env"


def test_kubespray_drops_every_dockershim_flag_and_keeps_the_rest_of_kubelet_env() -> None:
    before = node_files("kubespray")["/etc/kubernetes/kubelet.env"]
    after = apply(kubelet_facts("kubespray"))["/etc/kubernetes/kubelet.env"]
    assert env_value(after, "KUBELET_NETWORK_PLUGIN") == ""
    args = dict(split_flags(env_value(after, "KUBELET_ARGS") or ""))
    assert args["container-runtime-endpoint"] == ENDPOINT
    assert args["container-runtime"] == "remote"
    assert args["pod-infra-container-image"] == "k8s.gcr.io/pause:3.6"  # still valid on 1.23
    untouched = [ln for ln in before.splitlines() if ln.startswith(("KUBE_LOG", "KUBELET_ADDRESS", "PATH="))]
    assert all(ln in after.splitlines() for ln in untouched)


def test_kubelet_127_with_the_endpoint_in_kubelet_configuration_changes_only_that_value() -> None:
    before = node_files("cri-dockerd")["/var/lib/kubelet/config.yaml"]
    switch = plan_kubelet_switch("n1", kubelet_facts("cri-dockerd"), endpoint=ENDPOINT)
    assert switch.endpoint_key == "containerRuntimeEndpoint"
    edits = {e.path: e.after for e in switch.edits}
    after = edits["/var/lib/kubelet/config.yaml"]
    assert after == before.replace("unix:///run/cri-dockerd.sock", ENDPOINT)
    assert "/var/lib/kubelet/kubeadm-flags.env" not in edits  # --pod-infra-container-image is still valid


def test_kubelet_127_loses_container_runtime_which_it_refuses() -> None:
    files = node_files("kubeadm-systemd")
    files["/var/lib/kubelet/kubeadm-flags.env"] = (
        'KUBELET_KUBEADM_ARGS="--container-runtime=remote --container-runtime-endpoint=unix:///run/cri-dockerd.sock"\n'
    )
    after = apply(kubelet_facts("kubeadm-systemd", files, "v1.27.3"))["/var/lib/kubelet/kubeadm-flags.env"]
    assert after == f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint={ENDPOINT}"\n'


def test_pod_infra_flag_is_dropped_only_where_kubelet_removed_it() -> None:
    files = node_files("kubeadm-systemd")
    kept = apply(kubelet_facts("kubeadm-systemd", files, "v1.34.1"))["/var/lib/kubelet/kubeadm-flags.env"]
    dropped = apply(kubelet_facts("kubeadm-systemd", files, "v1.35.0"))["/var/lib/kubelet/kubeadm-flags.env"]
    assert "--pod-infra-container-image" in kept
    assert "--pod-infra-container-image" not in dropped


@pytest.mark.parametrize("profile", PROFILES)
def test_the_switch_is_idempotent(profile: str) -> None:
    once = apply(kubelet_facts(profile))
    again = plan_kubelet_switch(
        "n1", kubelet_facts(profile, {**node_files(profile), **once}), endpoint=ENDPOINT
    )
    assert again.edits == ()
    assert not again.changed


def test_an_unknown_kubelet_version_is_refused_with_what_to_do() -> None:
    kubelet = parse_facts("n1", probe_output(node_files("kubeadm-systemd"))).kubelet
    with pytest.raises(NodeError, match=r"node n1: the kubelet version is unknown.*nodeInfo.kubeletVersion"):
        plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT)


def test_an_explicit_method_whose_file_is_missing_is_refused() -> None:
    with pytest.raises(NodeError, match=r"SysconfigFile but /etc/sysconfig/kubelet does not exist"):
        plan_kubelet_switch(
            "n1",
            kubelet_facts("kubeadm-systemd"),
            endpoint=ENDPOINT,
            method=KubeletConfigMethod.SYSCONFIG_FILE,
        )


def test_kubelet_configuration_method_is_refused_before_127() -> None:
    with pytest.raises(NodeError, match=r"needs kubelet 1.27"):
        plan_kubelet_switch(
            "n1",
            kubelet_facts("kubeadm-systemd"),
            endpoint=ENDPOINT,
            method=KubeletConfigMethod.KUBELET_CONFIGURATION,
        )


def test_the_default_file_method_puts_the_endpoint_in_kubelet_extra_args() -> None:
    after = apply(kubelet_facts("kubeadm-systemd"), method=KubeletConfigMethod.DEFAULT_FILE)
    assert env_value(after["/etc/default/kubelet"], "KUBELET_EXTRA_ARGS") == (
        f"--container-runtime=remote --container-runtime-endpoint={ENDPOINT}"
    )
    assert "--network-plugin" not in after["/var/lib/kubelet/kubeadm-flags.env"]


def test_kubeadm_instance_config_is_updated_when_it_names_an_endpoint() -> None:
    files = node_files("cri-dockerd")
    files["/var/lib/kubelet/instance-config.yaml"] = (
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "containerRuntimeEndpoint: unix:///var/run/cri-dockerd.sock\n"
    )
    after = apply(kubelet_facts("cri-dockerd", files))["/var/lib/kubelet/instance-config.yaml"]
    assert yaml.safe_load(after)["containerRuntimeEndpoint"] == ENDPOINT


def test_an_endpoint_with_whitespace_is_refused_since_systemd_would_split_it() -> None:
    with pytest.raises(NodeError, match=r"spec.kubelet.runtimeEndpoint .* must be one word"):
        plan_kubelet_switch("n1", kubelet_facts("kubeadm-systemd"), endpoint="unix:///x; rm -rf /")


def test_an_endpoint_with_quotes_and_dollars_survives_the_env_file_round_trip() -> None:
    odd = "unix:///run/x\"$(touch${IFS}/tmp/x)`id`'.sock"
    switch = plan_kubelet_switch("n1", kubelet_facts("kubeadm-systemd"), endpoint=odd)
    (edit,) = switch.edits
    flags = dict(split_flags(env_value(edit.after, "KUBELET_KUBEADM_ARGS") or ""))
    assert flags["container-runtime-endpoint"] == odd


_KEY = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,12}", fullmatch=True).filter(
    lambda k: k != "containerRuntimeEndpoint"
)
_VAL = st.one_of(
    st.integers(), st.booleans(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3)
)


@given(st.dictionaries(_KEY, _VAL, max_size=6), st.text(min_size=1, max_size=40), st.booleans())
@example(doc={}, value="@", present=False)  # a reserved indicator cannot start a plain scalar: quoted
def test_setting_the_endpoint_in_yaml_never_changes_another_key(
    doc: dict[str, object], value: str, present: bool
) -> None:
    if present:
        doc = {**doc, "containerRuntimeEndpoint": "unix:///old.sock"}
    text = yaml.safe_dump(doc, default_flow_style=False) if doc else ""
    after = set_yaml_top_level(text, "containerRuntimeEndpoint", value)
    assert yaml.safe_load(after) == {**doc, "containerRuntimeEndpoint": value}
