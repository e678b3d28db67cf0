"""Hypothesis strategies for rendering inputs: spec registries, daemon.json, /etc/docker/certs.d, the
node's current config.toml and extra TOML fragments; valid, misspelt, mistyped and forbidden mixed."""

from __future__ import annotations

import dataclasses
from typing import Any

import tomlkit
from hypothesis import strategies as st

from shimshift.model.facts import DockerCertFiles, KubeletFacts, NodeFacts, Setting
from shimshift.model.spec import CgroupDriver, Containerd, NodeMigrationSpec, Registry, SecretKeyRef
from shimshift.rendering import ClientCert, RegistryMaterial
from tests import pki

PEM = pki.CA_PEM
KEY = pki.CLIENT_KEY_PEM
CLIENT_CERT = pki.CLIENT_CERT_PEM

VALID_HOSTS = [
    "docker.io",
    "quay.io",
    "registry.shimshift.test",
    "registry.shimshift.test:5000",
    "10.1.2.3:5000",
    "_default",
    "registry.k8s.io",
]
BAD_HOSTS = ["bad host", "-leading.dash", "a/b", "../etc"]
VALID_MIRRORS = [
    "https://mirror.shimshift.test",
    "https://mirror.shimshift.test:5000",
    "http://10.1.2.3:5000",
    "https://mirror.shimshift.test/v2/",
    "https://10.30.1.2:443",
]
BAD_MIRRORS = [
    "ftp://mirror.shimshift.test",
    "mirror.shimshift.test",
    "https://",
    "https://h:99999",
    "https://h/?q=1",
]
hosts = st.sampled_from(VALID_HOSTS + BAD_HOSTS)
mirror_urls = st.one_of(
    st.sampled_from(VALID_MIRRORS + BAD_MIRRORS),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from('"\n\\'), max_size=20
    ),
)


def rarely(draw: st.DrawFn, bad: bool) -> bool:
    """True about one time in eight when bad inputs are wanted."""
    return bad and draw(st.integers(0, 7)) == 3


@st.composite
def registries(draw: st.DrawFn, bad: bool = True) -> tuple[tuple[Registry, ...], RegistryMaterial]:
    count = draw(st.integers(0, 3))
    chosen: list[str] = []
    for _ in range(count):
        host = draw(st.sampled_from(BAD_HOSTS)) if rarely(draw, bad) else draw(st.sampled_from(VALID_HOSTS))
        if host not in chosen:
            chosen.append(host)
    regs: list[Registry] = []
    cas: dict[str, str] = {}
    clients: dict[str, ClientCert] = {}
    for host in chosen:
        plain = (draw(st.booleans()) and host not in ("docker.io", "_default")) or rarely(draw, bad)
        ca_kind = draw(st.sampled_from(["none", "bundle", "secret"]))
        client = draw(st.sampled_from(["none", "secret"]))
        if ca_kind == "secret" and not rarely(draw, bad):
            cas[host] = PEM
        if client == "secret" and not rarely(draw, bad):
            clients[host] = ClientCert(CLIENT_CERT, KEY)
        mirrors = [
            draw(mirror_urls) if rarely(draw, bad) else draw(st.sampled_from(VALID_MIRRORS))
            for _ in range(draw(st.integers(0, 2)))
        ]
        regs.append(
            Registry(
                host=host,
                mirrors=tuple(mirrors),
                ca_bundle=PEM if ca_kind == "bundle" else None,
                ca_secret=SecretKeyRef("ca", "ca.crt") if ca_kind == "secret" else None,
                client_cert_secret="client-tls" if client != "none" else None,
                skip_verify=draw(st.booleans()) and not plain,
                plain_http=plain,
            )
        )
    return tuple(regs), RegistryMaterial(cas, clients)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8))
daemon_jsons = st.fixed_dictionaries(
    {},
    optional={
        "registry-mirrors": st.lists(mirror_urls, max_size=3),
        "insecure-registries": st.lists(
            st.one_of(
                hosts, st.sampled_from(["10.30.0.0/16", "127.0.0.0/8", "http://10.1.2.3:5000", "not/a/cidr"])
            ),
            max_size=3,
        ),
        "exec-opts": st.just(["native.cgroupdriver=systemd"]),
        "log-driver": st.just("json-file"),
        "log-opts": st.just({"max-size": "10m"}),
        "data-root": st.just("/data/docker"),
        "live-restore": st.booleans(),
        "default-ulimits": st.just({"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}}),
        "bip": st.just("172.18.0.1/16"),
        "unknown-future-key": json_scalars,
    },
)


@st.composite
def docker_certs(draw: st.DrawFn) -> tuple[DockerCertFiles, ...]:
    out = []
    for host in draw(st.lists(hosts, max_size=2, unique=True)):
        base = f"/etc/docker/certs.d/{host}"
        with_key = draw(st.booleans())
        out.append(
            DockerCertFiles(
                host=host,
                ca_certs={f"{base}/ca.crt": PEM} if draw(st.booleans()) else {},
                client_certs=(f"{base}/client.cert",) if draw(st.booleans()) else (),
                client_keys={f"{base}/client.key": "0" * 64} if with_key else {},
            )
        )
    return tuple(out)


CRI = "io.containerd.grpc.v1.cri"
#: (key path, value) fragments: valid settings containerd 1.6 reads...
VALID_FRAGMENTS: list[tuple[tuple[str, ...], Any]] = [
    (("oom_score",), 0),
    (("grpc", "max_recv_message_size"), 16777216),
    (("debug", "level"), "warn"),
    (("metrics", "grpc_histogram"), False),
    (("timeouts", "io.containerd.timeout.shim.cleanup"), "5s"),
    (("plugins", CRI, "max_concurrent_downloads"), 5),
    (("plugins", CRI, "stats_collect_period"), 10),
    (("plugins", CRI, "enable_selinux"), False),
    (("plugins", CRI, "containerd", "snapshotter"), "native"),
    (("plugins", CRI, "containerd", "discard_unpacked_layers"), True),
    (("plugins", CRI, "cni", "max_conf_num"), 2),
    (("plugins", CRI, "containerd", "runtimes", "runc", "options", "NoPivotRoot"), False),
    (("plugins", "io.containerd.gc.v1.scheduler", "pause_threshold"), 0.03),
    (("plugins", "io.containerd.gc.v1.scheduler", "deletion_threshold"), 10),
    (("plugins", "io.containerd.internal.v1.restart", "interval"), "20s"),
    (("plugins", "io.containerd.monitor.v1.cgroups", "no_prometheus"), True),
]
#: ...and ones containerd would ignore, reject, or that fight the spec's own fields.
BAD_FRAGMENTS: list[tuple[tuple[str, ...], Any]] = [
    (("bogus_top_level",), 1),
    (("grpc", "adress"), "/x"),
    (("oom_score",), "zero"),
    (("plugins", CRI, "sandbox_imagee"), "x/pause:1"),
    (("plugins", CRI, "max_concurent_downloads"), 5),
    (("plugins", CRI, "containerd", "runtimes", "runc", "options", "SystemdCgroupp"), True),
    (("plugins", CRI + "x", "foo"), 1),
    (("plugins", "io.containerd.gc.v1.scheduler", "deletion_treshold"), 1),
    (("plugins", "io.containerd.grpc.v1.content", "anything"), 1),
    (("version",), 2),
    (("disabled_plugins",), ["cri"]),
    (("disabled_plugins",), [CRI]),
    (("plugins", CRI, "sandbox_image"), "x/pause:1"),
    (("plugins", CRI, "registry", "mirrors", "docker.io", "endpoint"), ["https://m.test"]),
    (("plugins", CRI, "containerd", "runtimes", "runc", "options", "SystemdCgroup"), False),
]


def _nest(pairs: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for path, value in pairs:
        node = doc
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = value
    return doc


@st.composite
def extra_fragments(draw: st.DrawFn, bad: bool = True) -> str:
    pairs = draw(st.lists(st.sampled_from(VALID_FRAGMENTS), max_size=4, unique_by=lambda p: p[0]))
    if rarely(draw, bad):
        pairs.append(draw(st.sampled_from(BAD_FRAGMENTS)))
        pairs = list({p[0]: p for p in pairs}.values())
    if rarely(draw, bad) and rarely(draw, bad):
        return "[plugins\nnot toml"
    return tomlkit.dumps(_nest(pairs)) if pairs else ""


current_configs = st.sampled_from(
    [
        None,
        'disabled_plugins = ["cri"]\n',
        'version = 2\noom_score = -999\n[plugins."io.containerd.grpc.v1.cri"]\n  max_concurrent_downloads = 4\n',
        'disabled_plugins = ["cri", "aufs"]\n[plugins.cri]\n  sandbox_imagee = "x"\n[plugins.cri.registry.mirrors."docker.io"]\n'
        '  endpoint = ["https://mirror.shimshift.test"]\n',
    ]
)


@st.composite
def render_inputs(draw: st.DrawFn, bad: bool = True) -> tuple[NodeMigrationSpec, NodeFacts, RegistryMaterial]:
    regs, material = draw(registries(bad))
    containerd = Containerd(
        config_version=draw(st.sampled_from([None, 2])),
        cgroup_driver=draw(st.sampled_from([CgroupDriver.AUTO, CgroupDriver.SYSTEMD])),  # kubelet: systemd
        import_docker_config=draw(st.booleans()),
        registries=regs,
        extra_config=draw(extra_fragments(bad=bad)),
        sandbox_image=draw(st.sampled_from([None, "registry.shimshift.test/pause:3.9"])),
    )
    spec = dataclasses.replace(BASE_SPEC, containerd=containerd)
    facts = NodeFacts(
        node="prop-node",
        containerd_version="1.6.20~ds1",
        containerd_config=draw(current_configs),
        daemon_json=draw(daemon_jsons),
        docker_certs=draw(docker_certs()),
        kubelet=KubeletFacts(
            version=draw(st.sampled_from(["v1.23.17", "v1.27.16", None])),
            cgroup_driver=Setting("systemd", "/var/lib/kubelet/config.yaml", "cgroupDriver"),
        ),
    )
    return spec, facts, material


def _base_spec() -> NodeMigrationSpec:
    from shimshift.model import parse_nodemigration
    from shimshift.resources import load_crd

    manifest = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "prop"},
        "spec": {"nodeNames": ["prop-node"]},
    }
    return parse_nodemigration(manifest, load_crd()).spec


BASE_SPEC = _base_spec()
