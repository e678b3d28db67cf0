"""extraConfig may not make containerd root-on-the-network unless allowUnsafe names it.

Creating a NodeMigration already means root on every node it selects; what it must not do silently is
open containerd's unauthenticated API on the network, swap in another runtime or shim binary, or load
configuration and plugins from elsewhere. Each such setting is refused by `shimshift validate` (and the
operator's condition, which runs the same checks) and by the renderer, naming the TOML key, the field
and the `allowUnsafe` value that lets it through; a let-through setting is a warning in the plan.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.facts import KubeletFacts, NodeFacts, Setting
from shimshift.rendering import render_node_config
from shimshift.rendering.containerd import RenderProblems
from shimshift.steps.configure import containerd_files
from tests.unit.conftest import minimal_manifest
from tests.unit.rendering.helpers import spec_with

CRI2 = 'plugins."io.containerd.grpc.v1.cri"'
CRI3 = 'plugins."io.containerd.cri.v1.runtime"'

#: (extraConfig, the TOML key path named in the refusal, the allowUnsafe value, config schema version)
UNSAFE = [
    ('[grpc]\ntcp_address = "0.0.0.0:2375"\n', "grpc.tcp_address", "TCPListener", 2),
    ('[grpc]\ntcp_address = ":2375"\n', "grpc.tcp_address", "TCPListener", 2),
    ('[grpc]\ntcp_address = "10.0.0.5:2375"\n', "grpc.tcp_address", "TCPListener", 3),
    ('[grpc]\ntcp_address = "node.example.com:2375"\n', "grpc.tcp_address", "TCPListener", 2),
    ('[debug]\naddress = "0.0.0.0:6060"\n', "debug.address", "TCPListener", 2),
    ('[metrics]\naddress = "0.0.0.0:1338"\n', "metrics.address", "TCPListener", 2),
    ('[metrics]\naddress = ":1338"\n', "metrics.address", "TCPListener", 3),
    ('[ttrpc]\naddress = "[::]:7000"\n', "ttrpc.address", "TCPListener", 2),
    (f'[{CRI2}]\nstream_server_address = "0.0.0.0"\n', f"{CRI2}.stream_server_address", "TCPListener", 2),
    (
        f'[{CRI2}.containerd.runtimes.runc.options]\nBinaryName = "/tmp/evil"\n',
        f"{CRI2}.containerd.runtimes.runc.options.BinaryName",
        "RuntimeBinary",
        2,
    ),
    (
        f'[{CRI3}.containerd.runtimes.runc.options]\nBinaryName = "/tmp/evil"\n',
        f"{CRI3}.containerd.runtimes.runc.options.BinaryName",
        "RuntimeBinary",
        3,
    ),
    (
        f'[{CRI2}.containerd.runtimes.evil]\nruntime_type = "io.containerd.runc.v2"\nruntime_path = "/tmp/shim"\n',
        f"{CRI2}.containerd.runtimes.evil.runtime_path",
        "RuntimeBinary",
        2,
    ),
    (
        f'[{CRI3}.containerd.runtimes.evil]\nruntime_type = "/tmp/containerd-shim-evil-v2"\n',
        f"{CRI3}.containerd.runtimes.evil.runtime_type",
        "RuntimeBinary",
        3,
    ),
    (
        f'[{CRI2}.containerd.default_runtime]\nruntime_engine = "/tmp/runc"\n',
        f"{CRI2}.containerd.default_runtime.runtime_engine",
        "RuntimeBinary",
        2,
    ),
    (
        f'[{CRI2}.containerd.runtimes.runc]\nruntime_root = "/tmp/root"\n',
        f"{CRI2}.containerd.runtimes.runc.runtime_root",
        "RuntimeBinary",
        2,
    ),
    (
        '[plugins."io.containerd.runtime.v1.linux"]\nshim = "/tmp/shim"\n',
        'plugins."io.containerd.runtime.v1.linux".shim',
        "RuntimeBinary",
        2,
    ),
    (
        f'[{CRI2}.cni]\nbin_dir = "/tmp/cni"\n',
        f"{CRI2}.cni.bin_dir",
        "RuntimeBinary",
        2,
    ),
    (
        '[stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]\naccepts = ["x"]\n'
        'returns = "y"\npath = "/tmp/evil"\n',
        "stream_processors",
        "RuntimeBinary",
        2,
    ),
    ('imports = ["/etc/containerd/conf.d/*.toml"]\n', "imports", "Imports", 2),
    ('imports = ["/tmp/x.toml"]\n', "imports", "Imports", 3),
    ('plugin_dir = "/tmp/plugins"\n', "plugin_dir", "PluginDir", 2),
    ('plugin_dir = "/tmp/plugins"\n', "plugin_dir", "PluginDir", 3),
    (
        '[proxy_plugins.evil]\ntype = "snapshot"\naddress = "/tmp/evil.sock"\n',
        "proxy_plugins",
        "PluginDir",
        2,
    ),
]
IDS = [f"v{v}-{key}" for _, key, _, v in UNSAFE]

#: Loopback listeners and unix sockets open nothing on the network: accepted without allowUnsafe.
SAFE = [
    '[grpc]\ntcp_address = "127.0.0.1:2375"\n',
    '[grpc]\ntcp_address = "127.3.4.5:2375"\n',
    '[grpc]\ntcp_address = "[::1]:2375"\n',
    '[grpc]\ntcp_address = "localhost:2375"\n',
    '[grpc]\ntcp_address = ""\n',
    '[metrics]\naddress = "127.0.0.1:1338"\n',
    '[debug]\naddress = "/run/containerd/debug.sock"\nlevel = "debug"\n',
    f'[{CRI2}]\nstream_server_address = "127.0.0.1"\n',
    f'[{CRI2}]\nstream_server_address = "::1"\n',
    f'[{CRI2}.containerd.runtimes.kata]\nruntime_type = "io.containerd.kata.v2"\n',
]


def manifest(extra: str, version: int, allow: list[str] | None = None) -> dict[str, Any]:
    containerd: dict[str, Any] = {"configVersion": version, "extraConfig": extra}
    if allow is not None:
        containerd["allowUnsafe"] = allow
    return minimal_manifest(containerd=containerd)


def facts(version: int) -> NodeFacts:
    cgroup = Setting("systemd", "/var/lib/kubelet/config.yaml", "cgroupDriver")
    return NodeFacts(
        node="n1",
        containerd_version="1.6.20" if version == 2 else "2.0.2",
        kubelet=KubeletFacts(version="v1.24.17", cgroup_driver=cgroup),
    )


@pytest.mark.parametrize(("extra", "key", "allow", "version"), UNSAFE, ids=IDS)
def test_validate_refuses_an_unsafe_extra_config_setting_naming_key_field_and_allow_value(
    extra: str, key: str, allow: str, version: int, crd: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(manifest(extra, version), crd)
    (problem,) = [p for p in info.value.problems if key in p.message]
    assert problem.path == "spec.containerd.extraConfig"
    assert problem.message.startswith(f"{key}: ")
    assert f"add {allow} to spec.containerd.allowUnsafe" in problem.message


@pytest.mark.parametrize(("extra", "key", "allow", "version"), UNSAFE, ids=IDS)
def test_the_renderer_refuses_an_unsafe_extra_config_setting_on_its_own(
    extra: str, key: str, allow: str, version: int
) -> None:
    # Built past the model's checks: the renderer must refuse it without them.
    spec = spec_with(configVersion=version)
    spec = dataclasses.replace(spec, containerd=dataclasses.replace(spec.containerd, extra_config=extra))
    with pytest.raises(RenderProblems) as info:
        render_node_config(spec, facts(version))
    assert {p.path for p in info.value.problems} == {"spec.containerd.extraConfig"}
    assert f"{key}: " in str(info.value)
    assert f"add {allow} to spec.containerd.allowUnsafe" in str(info.value)


@pytest.mark.parametrize(("extra", "key", "allow", "version"), UNSAFE, ids=IDS)
def test_allow_unsafe_lets_the_named_setting_through_and_the_plan_warns_about_it(
    extra: str, key: str, allow: str, version: int, crd: dict[str, Any]
) -> None:
    spec = parse_nodemigration(manifest(extra, version, [allow]), crd).spec
    section = containerd_files(spec, facts(version))
    assert any(key in w and allow in w for w in section.warnings), section.warnings


@pytest.mark.parametrize(("extra", "key", "allow", "version"), UNSAFE, ids=IDS)
def test_allow_unsafe_naming_another_kind_does_not_let_the_setting_through(
    extra: str, key: str, allow: str, version: int, crd: dict[str, Any]
) -> None:
    others = [v for v in ("TCPListener", "RuntimeBinary", "Imports", "PluginDir") if v != allow]
    with pytest.raises(ValidationError, match=re.escape(f"add {allow} to spec.containerd.allowUnsafe")):
        parse_nodemigration(manifest(extra, version, others), crd)


@pytest.mark.parametrize("extra", SAFE)
def test_loopback_listeners_and_unix_sockets_need_no_allow_unsafe(extra: str, crd: dict[str, Any]) -> None:
    spec = parse_nodemigration(manifest(extra, 2), crd).spec
    rendered = render_node_config(spec, facts(2))
    assert not [w for w in rendered.report.warnings if "allowUnsafe" in w]


def test_allow_unsafe_accepts_only_the_named_kinds(crd: dict[str, Any]) -> None:
    with pytest.raises(
        ValidationError, match=re.escape('spec.containerd.allowUnsafe[0]: Unsupported value: "Everything"')
    ):
        parse_nodemigration(manifest("", 2, ["Everything"]), crd)


def test_the_crd_says_a_nodemigration_is_root_on_every_node_it_selects(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "root on every node" in schema["description"]
    assert "cluster-admin" in schema["description"]
    allow = schema["properties"]["spec"]["properties"]["containerd"]["properties"]["allowUnsafe"]
    assert allow["items"]["enum"] == ["TCPListener", "RuntimeBinary", "Imports", "PluginDir"]
    for value in allow["items"]["enum"]:
        assert value in allow["description"]
