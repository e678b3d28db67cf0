"""config.toml: schema version, cgroup driver, sandbox image, the admin's own settings, extra fragments,
and the checks that stop a config kubelet could not use."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest

from shimshift.model.facts import KubeletFacts, NodeFacts, Setting
from shimshift.rendering import (
    ClientCert,
    RegistryMaterial,
    RenderedConfig,
    RenderProblems,
    render_node_config,
)
from shimshift.rendering.checks import Expected, check_config
from shimshift.rendering.containerd_keys import CRI_IMAGES_V3, CRI_RUNTIME_V3
from tests import pki
from tests.unit.rendering.helpers import spec_with

DOCKER_CE = 'disabled_plugins = ["cri"]\n'


def facts(
    containerd: str = "1.6.20~ds1",
    kubelet: str | None = "v1.24.17",
    driver: str | None = "systemd",
    **kw: Any,
) -> NodeFacts:
    cgroup = Setting(driver, "/var/lib/kubelet/config.yaml", "cgroupDriver") if driver else None
    return NodeFacts(
        node="n1",
        containerd_version=containerd,
        kubelet=KubeletFacts(version=kubelet, cgroup_driver=cgroup),
        **({"containerd_config": DOCKER_CE} | kw),
    )


def config(rendered: RenderedConfig) -> dict[str, Any]:
    return tomllib.loads(rendered.config_toml.text)


def problem_paths(error: pytest.ExceptionInfo[RenderProblems]) -> list[str]:
    return [p.path for p in error.value.problems]


# --- schema version --------------------------------------------------------------------------------


def test_auto_picks_schema_2_for_containerd_1_and_3_for_containerd_2() -> None:
    assert render_node_config(spec_with(), facts("1.7.13")).report.config_version == 2
    v3 = render_node_config(spec_with(), facts("v2.0.4"))
    assert v3.report.config_version == 3
    assert config(v3)["version"] == 3


def test_schema_3_is_refused_for_containerd_1_which_would_silently_read_it_as_2() -> None:
    with pytest.raises(RenderProblems) as e:
        render_node_config(spec_with(configVersion=3), facts("1.6.20"))
    assert problem_paths(e) == ["spec.containerd.configVersion"]


def test_auto_with_an_unknown_containerd_version_asks_for_an_explicit_one() -> None:
    with pytest.raises(RenderProblems, match=r"set 2 \(containerd 1.6/1.7\), 3 .* or 4 \(containerd 2.3\+\)"):
        render_node_config(spec_with(), facts(containerd=""))


@pytest.mark.parametrize(
    ("containerd", "schema"),
    [("v2.0.4", 3), ("2.2.9", 3), ("v2.3.0", 4), ("v2.3.7", 4), ("2.4.1", 4), ("3.0.0", 4), ("2", 3)],
)
def test_auto_picks_schema_4_from_containerd_2_3_on(containerd: str, schema: int) -> None:
    rendered = render_node_config(spec_with(), facts(containerd))
    assert rendered.report.config_version == schema
    assert config(rendered)["version"] == schema
    assert rendered.report.warnings == ()


def test_schema_4_is_refused_for_containerd_2_2_which_would_not_start() -> None:
    with pytest.raises(
        RenderProblems, match=r"4 needs containerd 2\.3 or newer, the node runs v2\.2\.9"
    ) as e:
        render_node_config(spec_with(configVersion=4), facts("v2.2.9"))
    assert problem_paths(e) == ["spec.containerd.configVersion"]
    with pytest.raises(RenderProblems, match=r"4 needs containerd 2\.x"):
        render_node_config(spec_with(configVersion=4), facts("1.6.20"))


def test_schema_3_on_containerd_2_3_is_rendered_with_a_warning_that_it_is_converted_at_every_start() -> None:
    rendered = render_node_config(spec_with(configVersion=3), facts("v2.3.7"))
    assert config(rendered)["version"] == 3
    assert rendered.report.warnings == (
        "config version 3 on containerd v2.3.7 is converted to 4 at every start (with a warning in its "
        "log); prefer 4 (auto)",
    )


def test_schema_4_has_the_same_cri_tables_as_3_and_no_top_level_listener() -> None:
    v3 = config(render_node_config(spec_with(), facts("v2.2.9")))
    v4 = config(render_node_config(spec_with(), facts("v2.3.7")))
    assert {k: v for k, v in v4.items() if k != "version"} == {k: v for k, v in v3.items() if k != "version"}
    assert not {"grpc", "ttrpc", "metrics", "debug"} & set(v4)


def test_the_admins_listener_settings_move_to_schema_4_server_plugins_as_containerd_converts_them() -> None:
    current = (
        'disabled_plugins = ["cri"]\n'
        '[grpc]\naddress = "/run/containerd/alt.sock"\ngid = 996\nmax_recv_message_size = 33554432\n'
        '[debug]\naddress = "/run/containerd/debug.sock"\nlevel = "debug"\n'
        '[metrics]\naddress = "127.0.0.1:1338"\ngrpc_histogram = true\n'
    )
    doc = config(render_node_config(spec_with(), facts("v2.3.7", containerd_config=current)))
    plugins = doc["plugins"]
    assert plugins["io.containerd.server.v1.grpc"] == {
        "address": "/run/containerd/alt.sock",
        "uid": 0,
        "gid": 996,
        "max_recv_message_size": 33554432,
    }
    # a version 3 file derives ttrpc's socket from grpc's; version 4 does not, so it is written out
    assert plugins["io.containerd.server.v1.ttrpc"] == {
        "address": "/run/containerd/alt.sock.ttrpc",
        "uid": 0,
        "gid": 996,
    }
    assert plugins["io.containerd.server.v1.debug"] == {"address": "/run/containerd/debug.sock"}
    assert plugins["io.containerd.server.v1.metrics"] == {"address": "127.0.0.1:1338"}
    assert plugins["io.containerd.metrics.v1.grpc-prometheus"] == {"grpc_histogram": True}
    assert doc["debug"] == {"level": "debug"}
    assert not {"grpc", "ttrpc", "metrics"} & set(doc)
    # schema 3 keeps them where they were
    v3 = config(render_node_config(spec_with(), facts("v2.2.9", containerd_config=current)))
    assert v3["grpc"]["address"] == "/run/containerd/alt.sock"
    assert "io.containerd.server.v1.grpc" not in v3["plugins"]


def test_a_top_level_listener_in_a_schema_4_extra_fragment_is_refused_as_not_read() -> None:
    with pytest.raises(
        RenderProblems,
        match=r'grpc.address: is not read in config version 4; set plugins."io.containerd.server.v1.grpc".address',
    ):
        render_node_config(spec_with(extraConfig='[grpc]\naddress = "/run/x.sock"\n'), facts("v2.3.7"))
    rendered = render_node_config(
        spec_with(extraConfig='[plugins."io.containerd.server.v1.grpc"]\nmax_recv_message_size = 33554432\n'),
        facts("v2.3.7"),
    )
    assert config(rendered)["plugins"]["io.containerd.server.v1.grpc"] == {"max_recv_message_size": 33554432}


def test_schema_3_uses_only_keys_containerd_2_documents() -> None:
    doc = config(render_node_config(spec_with(), facts("2.1.0")))
    plugins = doc["plugins"]
    assert set(plugins) == {"io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"}
    images, runtime = plugins["io.containerd.cri.v1.images"], plugins["io.containerd.cri.v1.runtime"]
    assert set(images) <= set(CRI_IMAGES_V3) and set(runtime) <= set(CRI_RUNTIME_V3)
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.7"
    assert runtime["containerd"]["runtimes"]["runc"]["options"] == {"SystemdCgroup": True}


# --- cgroup driver ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("driver", "expected"), [("systemd", True), ("cgroupfs", False)])
def test_auto_cgroup_follows_the_kubelets_driver(driver: str, expected: bool) -> None:
    doc = config(render_node_config(spec_with(), facts(driver=driver)))
    runc = doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is expected
    assert runc["runtime_type"] == "io.containerd.runc.v2"


def test_without_the_kubelets_driver_dockers_driver_is_used_because_dockershim_matched_it() -> None:
    rendered = render_node_config(
        spec_with(), facts(driver=None, daemon_json={"exec-opts": ["native.cgroupdriver=systemd"]})
    )
    assert rendered.report.systemd_cgroup is True
    assert "Docker" in rendered.report.cgroup_reason


def test_a_spec_cgroup_driver_that_contradicts_the_kubelet_is_refused() -> None:
    with pytest.raises(RenderProblems) as e:
        render_node_config(spec_with(cgroupDriver="systemd"), facts(driver="cgroupfs"))
    assert problem_paths(e) == ["spec.containerd.cgroupDriver"]


def test_an_unknown_cgroup_driver_everywhere_is_refused_rather_than_guessed() -> None:
    with pytest.raises(RenderProblems, match="set systemd or cgroupfs"):
        render_node_config(spec_with(), facts(driver=None))


# --- sandbox image ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kubelet", "pause"),
    [("v1.23.17", "3.6"), ("v1.24.0", "3.7"), ("v1.27.3", "3.9"), ("v1.31.1", "3.10"), ("v1.12.0", "3.2")],
)
def test_the_sandbox_image_is_the_pause_version_kubeadm_pairs_with_the_kubelet(
    kubelet: str, pause: str
) -> None:
    assert (
        render_node_config(spec_with(), facts(kubelet=kubelet)).report.sandbox_image
        == f"registry.k8s.io/pause:{pause}"
    )


def test_the_spec_sandbox_image_wins() -> None:
    rendered = render_node_config(spec_with(sandboxImage="reg.example.com/pause:3.9"), facts())
    assert rendered.report.sandbox_image == "reg.example.com/pause:3.9"


def test_the_kubelets_own_pod_infra_image_is_kept_as_it_is_already_on_the_node() -> None:
    f = facts()
    f = dataclasses.replace(
        f,
        kubelet=dataclasses.replace(
            f.kubelet, pod_infra_image=Setting("k8s.gcr.io/pause:3.6", "flags", "--pod-infra-container-image")
        ),
    )
    assert render_node_config(spec_with(), f).report.sandbox_image == "k8s.gcr.io/pause:3.6"


def test_on_an_air_gapped_node_the_default_sandbox_image_is_rewritten_through_the_mirror() -> None:
    spec = spec_with(
        registries=[{"host": "_default", "mirrors": ["https://registry.internal.example:5000/k8s"]}]
    )
    rendered = render_node_config(spec, facts())
    assert rendered.report.sandbox_image == "registry.internal.example:5000/k8s/pause:3.7"
    assert "rewritten" in rendered.report.sandbox_image_reason


# --- the node's current config ----------------------------------------------------------------------


def test_the_docker_ce_default_is_replaced_and_its_disabled_cri_reported_as_a_change() -> None:
    rendered = render_node_config(spec_with(), facts())
    assert "disabled_plugins" not in config(rendered)
    assert any(c.key == "disabled_plugins" and c.kind == "removed" for c in rendered.report.changes)
    assert rendered.report.preserved == ()


def test_the_admins_own_settings_are_kept_and_a_schema_1_short_name_is_mapped() -> None:
    current = 'oom_score = -999\ndisabled_plugins = ["cri", "aufs"]\n[plugins.opt]\n  path = "/data/opt"\n'
    rendered = render_node_config(spec_with(), dataclasses.replace(facts(), containerd_config=current))
    doc = config(rendered)
    assert doc["oom_score"] == -999
    assert doc["disabled_plugins"] == ["io.containerd.snapshotter.v1.aufs"]
    assert doc["plugins"]["io.containerd.internal.v1.opt"] == {"path": "/data/opt"}
    assert "oom_score" in rendered.report.preserved


def test_the_admins_conflicting_cri_settings_lose_to_the_rendered_ones_and_show_as_changes() -> None:
    current = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n'
    rendered = render_node_config(spec_with(), dataclasses.replace(facts(), containerd_config=current))
    change = next(c for c in rendered.report.changes if c.key.endswith("SystemdCgroup"))
    assert (change.old, change.new) == ("false", "true")


def test_a_misspelt_setting_in_the_current_config_is_dropped_and_reported_not_carried() -> None:
    current = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_imagee = "x"\n'
    rendered = render_node_config(spec_with(), dataclasses.replace(facts(), containerd_config=current))
    assert "sandbox_imagee" not in rendered.config_toml.text
    assert any("sandbox_imagee" in n.source for n in rendered.report.not_carried)


def test_deprecated_registry_mirrors_move_to_hosts_toml_instead_of_breaking_cri() -> None:
    current = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."quay.io"]\n  endpoint = ["https://q.example.com"]\n'
    rendered = render_node_config(spec_with(), dataclasses.replace(facts(), containerd_config=current))
    assert "mirrors" not in rendered.config_toml.text
    assert 'host."https://q.example.com"' in rendered.file("/etc/containerd/certs.d/quay.io/hosts.toml").text


def test_a_current_config_that_is_not_toml_is_refused_naming_the_node_and_file() -> None:
    with pytest.raises(
        Exception, match=r"node n1: the current /etc/containerd/config.toml is not valid TOML"
    ):
        render_node_config(spec_with(), dataclasses.replace(facts(), containerd_config="[plugins\n"))


# --- extra fragment ---------------------------------------------------------------------------------


def test_an_extra_fragment_is_merged_last() -> None:
    extra = (
        '[plugins."io.containerd.grpc.v1.cri"]\n  max_concurrent_downloads = 7\n[debug]\n  level = "debug"\n'
    )
    doc = config(render_node_config(spec_with(extraConfig=extra), facts()))
    assert doc["plugins"]["io.containerd.grpc.v1.cri"]["max_concurrent_downloads"] == 7
    assert doc["debug"] == {"level": "debug"}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_imagee = "x"\n', "sandbox_imagee"),
        ("bogus = 1\n", "bogus"),
        ('[plugins."io.containerd.grpc.v1.crii"]\n  a = 1\n', "has no plugin"),
        ('oom_score = "low"\n', "must be an integer"),
        (
            '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroupp = true\n',
            "SystemdCgroupp",
        ),
        ('disabled_plugins = ["io.containerd.grpc.v1.cri"]\n', "must not disable the CRI plugin"),
        ("version = 3\n", "must not set version"),
        ('[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "x"\n', "spec.containerd.sandboxImage"),
        (
            '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n  endpoint = ["https://m"]\n',
            "registries",
        ),
        ("[plugins\n", "not valid TOML"),
    ],
)
def test_an_extra_fragment_containerd_would_ignore_or_that_breaks_cri_is_refused(
    extra: str, words: str
) -> None:
    # Built past the model's own checks: the renderer must refuse these on its own.
    spec = spec_with()
    spec = dataclasses.replace(spec, containerd=dataclasses.replace(spec.containerd, extra_config=extra))
    with pytest.raises(RenderProblems) as e:
        render_node_config(spec, facts())
    assert {p.path for p in e.value.problems} == {"spec.containerd.extraConfig"}
    assert words in str(e.value)


# --- checks on their own ----------------------------------------------------------------------------


EXPECTED = Expected(2, "registry.k8s.io/pause:3.9", True, "/etc/containerd/certs.d")
GOOD = {
    "version": 2,
    "plugins": {
        "io.containerd.grpc.v1.cri": {
            "sandbox_image": "registry.k8s.io/pause:3.9",
            "containerd": {
                "default_runtime_name": "runc",
                "runtimes": {
                    "runc": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}
                },
            },
            "registry": {"config_path": "/etc/containerd/certs.d"},
        }
    },
}


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    import copy

    doc = copy.deepcopy(GOOD)
    node: dict[str, Any] = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return doc


def test_the_reference_config_passes_every_check() -> None:
    assert list(check_config(GOOD, EXPECTED)) == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (("version",), "version: must be 2"),
        (("plugins", "io.containerd.grpc.v1.cri", "sandbox_image"), "sandbox image: must be set"),
        (
            ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc", "runtime_type"),
            "runtime_type: must be set",
        ),
        (
            (
                "plugins",
                "io.containerd.grpc.v1.cri",
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ),
            "SystemdCgroup",
        ),
        (("plugins", "io.containerd.grpc.v1.cri", "registry", "config_path"), "config_path"),
    ],
)
def test_each_missing_essential_is_caught(path: tuple[str, ...], words: str) -> None:
    problems = list(check_config(_without(path), EXPECTED))
    assert any(words in p for p in problems), problems


@pytest.mark.parametrize("name", ["cri", "io.containerd.grpc.v1.cri"])
def test_cri_disabled_under_any_name_is_caught(name: str) -> None:
    assert any(
        "disables the CRI plugin" in p for p in check_config({**GOOD, "disabled_plugins": [name]}, EXPECTED)
    )


def test_a_schema_1_short_name_in_disabled_plugins_is_caught_because_containerd_would_not_start() -> None:
    problems = list(check_config({**GOOD, "disabled_plugins": ["aufs"]}, EXPECTED))
    assert any("short name" in p for p in problems)


# --- secrets ----------------------------------------------------------------------------------------


def test_a_client_key_is_a_0600_secret_file_shown_only_as_a_hash() -> None:
    spec = spec_with(registries=[{"host": "reg.example.com", "clientCertSecretRef": {"name": "tls"}}])
    material = RegistryMaterial(
        client_certs={"reg.example.com": ClientCert(pki.CLIENT_CERT_PEM, pki.CLIENT_KEY_PEM)}
    )
    rendered = render_node_config(spec, facts(), material)
    key = rendered.file("/etc/containerd/certs.d/reg.example.com/client.key")
    assert (key.mode, key.secret, key.text) == (0o600, True, pki.CLIENT_KEY_PEM)
    secret = pki.CLIENT_KEY_PEM.splitlines()[1]  # the key's first base64 line
    assert secret not in key.display_text()
    assert secret not in rendered.diff({}) and key.sha256 in rendered.diff({})
    assert secret not in repr(material) + repr(rendered.report)


def test_diff_shows_exactly_the_changed_lines_against_the_current_file() -> None:
    rendered = render_node_config(spec_with(), facts())
    diff = rendered.diff({"/etc/containerd/config.toml": DOCKER_CE})
    assert '-disabled_plugins = ["cri"]' in diff
    assert "+version = 2" in diff
    assert rendered.diff({"/etc/containerd/config.toml": rendered.config_toml.text}) == ""


def test_a_hosts_toml_without_host_tables_is_caught_because_containerd_1_6_cannot_decode_it() -> None:
    from shimshift.rendering.checks import check_hosts

    path = "/etc/containerd/certs.d/reg.example.com/hosts.toml"
    (problem,) = check_hosts('server = "https://reg.example.com"\n', path, available=())
    assert "no [host] table" in problem
    spec = spec_with(registries=[{"host": "reg.example.com", "skipVerify": True}])
    text = render_node_config(spec, facts()).file(path).text
    assert list(check_hosts(text, path, available=())) == []
    assert tomllib.loads(text)["host"]["https://reg.example.com"]["skip_verify"] is True
