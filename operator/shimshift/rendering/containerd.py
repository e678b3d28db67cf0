"""render_node_config: (spec, node facts, secret material) -> the containerd files to write, and a report.

Pure. The template is rendered with TOML-quoted values, the admin's own settings from the current
config.toml are merged under it and the spec's extra fragment over it (tomlkit), and the result is
parsed back with tomllib and checked (checks.py) before anything is returned: a config that would
leave kubelet without a working CRI is a RenderError, never a file.
"""

from __future__ import annotations

import copy
import posixpath
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import tomlkit
import tomlkit.items

from shimshift.model.dockerera import CNI_CONF_DIR, carried_snapshotter, node_cni_dirs
from shimshift.model.errors import Problem, RenderError
from shimshift.model.facts import NodeFacts
from shimshift.model.kubeletunits import command_flags
from shimshift.model.kubenet import KUBENET_BRIDGE, KUBENET_FILE, kubenet_translation, pod_cidrs
from shimshift.model.limits import InputLimitError, toml_loads
from shimshift.model.spec import CgroupDriver, NodeMigrationSpec
from shimshift.model.unsafe import unsafe_problems, unsafe_settings
from shimshift.rendering.checks import Expected, check_config, check_hosts
from shimshift.rendering.containerd_keys import unknown_keys
from shimshift.rendering.docker import DockerTranslation, docker_cgroup_driver, translate_docker_config
from shimshift.rendering.existing import CRI_NAMES, changes, dropped_credentials, read_existing
from shimshift.rendering.limits import containerd_limits
from shimshift.rendering.proxy import containerd_proxy
from shimshift.rendering.registries import carried_ca_problems, merge_intents, plan_hosts, spec_intents
from shimshift.rendering.runtimes import containerd_runtimes
from shimshift.rendering.sandbox import choose_sandbox_image
from shimshift.rendering.templating import render_template
from shimshift.rendering.ulimits import containerd_ulimits
from shimshift.rendering.values import (
    NodeLayout,
    NotCarried,
    RegistryMaterial,
    RenderedConfig,
    RenderedFile,
    RenderReport,
    TranslatedHost,
)

EXTRA = "spec.containerd.extraConfig"


class RenderProblems(RenderError):
    """The spec cannot be rendered for this node; every problem names its field path."""

    def __init__(self, node: str, problems: list[Problem]) -> None:
        self.node = node
        self.problems = tuple(problems)
        super().__init__(f"node {node}: " + "; ".join(str(p) for p in self.problems))


#: The newest config schema of each containerd release line that changed it: 1.x reads 2, 2.0-2.2
#: read 3 (and refuse 4), 2.3 introduced 4 and converts an older file at every start with a warning.
SCHEMA_4_FROM = (2, 3)


def newest_schema(major: int, minor: int | None) -> int:
    """The config schema containerd `major.minor` reads without converting it (minor None: 2.0's)."""
    if major <= 1:
        return 2
    if major == 2 and (minor is None or (major, minor) < SCHEMA_4_FROM):
        return 3
    return 4


def choose_config_version(spec_version: int | None, facts: NodeFacts) -> tuple[int, str, list[str]]:
    major = facts.containerd_major
    minor = facts.containerd_minor
    warnings: list[str] = []
    if spec_version is not None:
        if spec_version >= 3 and major == 1:
            raise RenderProblems(
                facts.node,
                [
                    Problem(
                        "spec.containerd.configVersion",
                        f"{spec_version} needs containerd 2.x, the node runs {facts.containerd_version} "
                        f"(1.x reads a version {spec_version} file as version 2 and ignores every CRI "
                        "table); use 2 or auto",
                    )
                ],
            )
        if spec_version == 4 and major is not None and newest_schema(major, minor) < 4:
            raise RenderProblems(
                facts.node,
                [
                    Problem(
                        "spec.containerd.configVersion",
                        f"4 needs containerd 2.3 or newer, the node runs {facts.containerd_version} "
                        "(which refuses to start: expected config version equal to or less than 3); "
                        "use 3 or auto",
                    )
                ],
            )
        if major is not None and major >= 2 and spec_version < newest_schema(major, minor):
            newest = newest_schema(major, minor)
            warnings.append(
                f"config version {spec_version} on containerd {facts.containerd_version} is converted "
                f"to {newest} at every start (with a warning in its log); prefer {newest} (auto)"
            )
        return spec_version, "spec.containerd.configVersion", warnings
    if major is None:
        raise RenderProblems(
            facts.node,
            [
                Problem(
                    "spec.containerd.configVersion",
                    "is auto but the node's containerd version is unknown; set 2 (containerd 1.6/1.7), "
                    "3 (containerd 2.0-2.2) or 4 (containerd 2.3+), or fix the facts probe",
                )
            ],
        )
    version = newest_schema(major, minor)
    return version, f"auto: containerd {facts.containerd_version}", warnings


def choose_systemd_cgroup(driver: CgroupDriver, facts: NodeFacts) -> tuple[bool, str]:
    kubelet = facts.kubelet.cgroup_driver.value if facts.kubelet.cgroup_driver else None
    if driver is not CgroupDriver.AUTO:
        if kubelet is not None and kubelet != driver.value:
            raise RenderProblems(
                facts.node,
                [
                    Problem(
                        "spec.containerd.cgroupDriver",
                        f"is {driver.value} but the kubelet's cgroupDriver is {kubelet} "
                        f"({facts.kubelet.cgroup_driver.file if facts.kubelet.cgroup_driver else ''}); "
                        "they must match or pods restart periodically: use auto",
                    )
                ],
            )
        return driver is CgroupDriver.SYSTEMD, f"spec.containerd.cgroupDriver = {driver.value}"
    if kubelet in ("systemd", "cgroupfs"):
        where = facts.kubelet.cgroup_driver.file if facts.kubelet.cgroup_driver else "kubelet"
        return kubelet == "systemd", f"auto: the kubelet's cgroupDriver is {kubelet} ({where})"
    docker = docker_cgroup_driver(facts)
    if docker in ("systemd", "cgroupfs"):
        return (
            docker == "systemd",
            f"auto: kubelet's driver unknown; Docker's (which dockershim matched) is {docker}",
        )
    raise RenderProblems(
        facts.node,
        [
            Problem(
                "spec.containerd.cgroupDriver",
                "is auto but neither the kubelet's nor Docker's cgroup driver is known on this node; "
                "set systemd or cgroupfs",
            )
        ],
    )


def parse_extra(
    text: str, version: int, allowed: Collection[str] = ()
) -> tuple[dict[str, Any], list[Problem]]:
    """The spec's TOML fragment, parsed, and every reason it may not be merged (unsafe ones included)."""
    if not text.strip():
        return {}, []
    try:
        doc = toml_loads(text)
    except tomllib.TOMLDecodeError as e:
        return {}, [Problem(EXTRA, f"is not valid TOML: {e}")]
    except InputLimitError as e:
        return {}, [Problem(EXTRA, f"refused: {e}")]
    problems = [Problem(EXTRA, f"{path}: {message}") for path, message in unknown_keys(doc, version)]
    if "version" in doc:
        problems.append(Problem(EXTRA, "must not set version; use spec.containerd.configVersion"))
    disabled = doc.get("disabled_plugins", [])
    if isinstance(disabled, list) and any(str(p) in CRI_NAMES or ".cri" in str(p) for p in disabled):
        problems.append(Problem(EXTRA, "must not disable the CRI plugin: kubelet could not use containerd"))
    plugins = doc.get("plugins", {}) if isinstance(doc.get("plugins"), Mapping) else {}
    managed = {
        2: {
            ("io.containerd.grpc.v1.cri", "sandbox_image"): "spec.containerd.sandboxImage",
            ("io.containerd.grpc.v1.cri", "registry"): "spec.containerd.registries",
        },
        3: {
            ("io.containerd.cri.v1.images", "pinned_images"): "spec.containerd.sandboxImage",
            ("io.containerd.cri.v1.images", "registry"): "spec.containerd.registries",
        },
    }[min(version, 3)]
    for (plugin, key), instead in managed.items():
        if isinstance(plugins.get(plugin), Mapping) and key in plugins[plugin]:
            problems.append(Problem(EXTRA, f'must not set plugins."{plugin}".{key}; use {instead}'))
    cri_runtime = "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"
    runc_opts = (
        ((plugins.get(cri_runtime) or {}).get("containerd") or {})
        .get("runtimes", {})
        .get("runc", {})
        .get("options")
    )
    if isinstance(runc_opts, Mapping) and "SystemdCgroup" in runc_opts:
        problems.append(
            Problem(EXTRA, "must not set SystemdCgroup of runc; use spec.containerd.cgroupDriver")
        )
    problems += unsafe_problems(doc, allowed)
    return doc, problems


def _fill_missing(target: Any, source: Mapping[str, Any]) -> None:
    """Add keys of `source` that `target` lacks (rendered settings win over the admin's)."""
    for key, value in source.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(target[key], Mapping):
            _fill_missing(target[key], value)


def _override(target: Any, source: Mapping[str, Any]) -> None:
    """Set every key of `source` on `target` (the spec's extra fragment wins)."""
    for key, value in source.items():
        if isinstance(value, Mapping) and key in target and isinstance(target[key], Mapping):
            _override(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _plain(doc: Any) -> Any:
    if isinstance(doc, Mapping):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    if isinstance(doc, tomlkit.items.Item):
        return doc.unwrap()
    return doc


def render_node_config(
    spec: NodeMigrationSpec,
    facts: NodeFacts,
    material: RegistryMaterial | None = None,
    layout: NodeLayout | None = None,
) -> RenderedConfig:
    """Every file containerd needs on `facts.node`, checked, plus the report. Raises RenderError."""
    material = material or RegistryMaterial()
    layout = layout or NodeLayout()
    co = spec.containerd
    version, version_reason, warnings = choose_config_version(co.config_version, facts)
    systemd, cgroup_reason = choose_systemd_cgroup(co.cgroup_driver, facts)

    existing = read_existing(facts.containerd_config, version, facts.node)
    translation = translate_docker_config(facts) if co.import_docker_config else DockerTranslation()
    node_intents = list(translation.intents)
    known = {i.host for i in node_intents}
    node_intents += [i for i in existing.legacy_intents if i.host not in known]
    shadowed = tuple(
        NotCarried(i.source, f"{i.host}: {', '.join(i.mirrors)}", "the daemon.json entry for the same host")
        for i in existing.legacy_intents
        if i.host in known
    )
    translation = replace(
        translation, intents=tuple(node_intents), not_carried=translation.not_carried + shadowed
    )
    s_intents, problems = spec_intents(co.registries, material)
    extra, extra_problems = parse_extra(co.extra_config, version, co.allow_unsafe)
    problems += extra_problems
    if problems:
        raise RenderProblems(facts.node, problems)
    intents, conflicts, translated = merge_intents(s_intents, translation)
    carried = carried_ca_problems(intents, layout.certs_dir)
    if carried:
        raise RenderProblems(facts.node, carried)
    sandbox = choose_sandbox_image(co.sandbox_image, facts, intents)
    plans = plan_hosts(intents, layout, translation.insecure_networks)

    release = (facts.containerd_major or 0, facts.containerd_minor or 0)
    bin_dirs = version >= 4 or (version == 3 and release >= (2, 1))
    cni = node_cni_dirs(command_flags(facts.kubelet), facts.cri_dockerd_flags, bin_dirs=bin_dirs)
    runtimes = containerd_runtimes(facts, systemd)
    ulimits = containerd_ulimits(facts, layout)
    snapshotter = carried_snapshotter(facts.daemon_json, facts.snapshotters)
    storage = (
        (
            TranslatedHost(
                snapshotter, "daemon.json storage-driver", f'the CRI plugin\'s snapshotter = "{snapshotter}"'
            ),
        )
        if snapshotter
        else ()
    )
    template = f"config.v{version}.toml.j2"
    base_text = render_template(
        template,
        {
            "sandbox_image": sandbox.image,
            "systemd_cgroup": systemd,
            "certs_dir": layout.certs_dir,
            "cni_bin_dirs": cni.bin_dirs,
            "cni_bin_dirs_list": cni.as_list,
            "cni_conf_dir": cni.conf_dir,
            "default_runtime": runtimes.default,
            "runtimes": runtimes.runtimes,
            "base_runtime_spec": ulimits.base_spec,
            "snapshotter": snapshotter,
        },
    )
    doc = tomlkit.parse(base_text)
    expected_plain: dict[str, Any] = tomllib.loads(base_text)
    if existing.keep:
        _fill_missing(doc, existing.keep)
        _fill_missing(expected_plain, existing.keep)
    expected = Expected(version, sandbox.image, systemd, layout.certs_dir)
    before_extra = list(check_config(expected_plain, expected))
    if extra:
        _override(doc, tomlkit.parse(co.extra_config))
        _override(expected_plain, extra)
    text = tomlkit.dumps(doc)
    parsed = tomllib.loads(text)
    if parsed != _plain(expected_plain):
        raise RenderError(
            f"node {facts.node}: config.toml did not survive the TOML round trip; a shimshift bug"
        )
    config_problems = list(check_config(parsed, expected))
    if config_problems:
        new = [p for p in config_problems if p not in before_extra]
        located = [Problem(EXTRA, p) for p in new] + [
            Problem(layout.config_file, p) for p in config_problems if p not in new
        ]
        raise RenderProblems(facts.node, located)

    files = [RenderedFile(layout.config_file, text.encode(), 0o644)]
    for plan in plans:
        for path, content, secret in plan.files:
            files.append(RenderedFile(path, content.encode(), 0o600 if secret else 0o644, secret=secret))
    on_node: set[str] = set()
    for certs in facts.docker_certs:
        on_node |= set(certs.ca_certs) | set(certs.client_certs) | set(certs.client_keys)
    available = {f.path for f in files} | on_node
    hosts_problems: list[Problem] = []
    for plan in plans:
        path = posixpath.join(layout.certs_dir, plan.host, "hosts.toml")
        hosts_text = render_template(
            "hosts.toml.j2",
            {
                "host": plan.host,
                "source": plan.source,
                "server": plan.server,
                "server_tls": plan.server_tls,
                "endpoints": plan.endpoints,
            },
        )
        hosts_problems += [Problem(path, p) for p in check_hosts(hosts_text, path, available)]
        files.append(RenderedFile(path, hosts_text.encode(), 0o644))
    if hosts_problems:
        raise RenderProblems(facts.node, hosts_problems)

    proxy = containerd_proxy(facts, layout)
    if proxy.file is not None:
        files.append(proxy.file)
    limits = containerd_limits(facts, layout)
    if limits.file is not None:
        files.append(limits.file)
    if ulimits.file is not None:
        files.append(ulimits.file)
    kubenet = _kubenet(facts, cni.conf_dir or CNI_CONF_DIR)
    if kubenet is not None:
        files.append(kubenet[0])

    warnings += _warnings(spec, facts, sandbox.image, plans)
    dropped = dropped_credentials(existing.parsed, parsed)
    if dropped:
        warnings.append(credentials_warning(dropped, layout.config_file))
    warnings += [s.warning() for s in unsafe_settings(extra)]  # each one named in allowUnsafe
    report = RenderReport(
        config_version=version,
        config_version_reason=version_reason,
        sandbox_image=sandbox.image,
        sandbox_image_reason=sandbox.reason,
        systemd_cgroup=systemd,
        cgroup_reason=cgroup_reason,
        translated=tuple(translated)
        + proxy.translated
        + runtimes.translated
        + limits.translated
        + ulimits.translated
        + storage
        + ((kubenet[1],) if kubenet is not None else ()),
        conflicts=tuple(conflicts),
        not_carried=existing.not_carried
        + translation.not_carried
        + tuple(_cidr_not_carried(n) for n in translation.insecure_networks)
        + proxy.not_carried
        + ulimits.not_carried,
        preserved=existing.preserved,
        proxy_notes=proxy.notes,
        runtime_notes=runtimes.notes,
        limits_notes=limits.notes,
        changes=changes(existing.parsed, parsed),
        warnings=tuple(warnings),
    )
    return RenderedConfig(files=tuple(sorted(files, key=lambda f: f.path)), report=report, layout=layout)


def _kubenet(facts: NodeFacts, conf_dir: str) -> tuple[RenderedFile, TranslatedHost] | None:
    """kubenet's bridge network as a conflist in containerd's CNI conf_dir (`model.kubenet`)."""
    text = kubenet_translation(facts)
    if text is None:
        return None
    path = posixpath.join(conf_dir, KUBENET_FILE)
    row = TranslatedHost(
        "kubenet",
        "kubelet --network-plugin",
        f"{path}: bridge {KUBENET_BRIDGE} (gateway, masquerade), host-local IPAM on the Node's podCIDR "
        f"{', '.join(pod_cidrs(facts))}, portmap; containerd's CRI loads it",
    )
    return RenderedFile(path, text.encode(), 0o644), row


def credentials_warning(dropped: list[str], config_file: str) -> str:
    """The plan says that the node's registry credentials go (redacted), and what supplies them instead."""
    return (
        f"registry credentials in the current {config_file} ({', '.join(dropped)}; shown redacted) are "
        "not carried into the new one: shimshift writes no registry credentials "
        "(spec.containerd.registries has no credential field and extraConfig may not set the CRI "
        "registry). After the switch, credentials come only from the kubelet, with each pull: the "
        "pod's imagePullSecrets, a kubelet credential provider, or a Docker config.json the kubelet "
        "reads (e.g. /var/lib/kubelet/config.json); pulls containerd makes on its own (the sandbox "
        "image) get none. "
        "Move them to one of those before migrating, or pulls that relied on them fail"
    )


def _cidr_not_carried(network: str) -> NotCarried:
    return NotCarried(
        "daemon.json insecure-registries",
        network,
        "containerd has no address-range rule: list each registry of that range in "
        "spec.containerd.registries with skipVerify or plainHTTP (mirror and registry hosts that are "
        "IP addresses inside it were marked insecure)",
    )


def _warnings(spec: NodeMigrationSpec, facts: NodeFacts, sandbox: str, plans: list[Any]) -> list[str]:
    out: list[str] = []
    infra = facts.kubelet.pod_infra_image
    if infra is not None and infra.value != sandbox:
        out.append(
            f"the kubelet's --pod-infra-container-image is {infra.value} ({infra.file}) but containerd will "
            f"use {sandbox}; make sure {sandbox} is pullable or migrated"
        )
    for plan in plans:
        insecure = plan.server_tls.skip_verify or any(e.tls.skip_verify for e in plan.endpoints)
        plain = (plan.server or "").startswith("http://") or any(
            e.url.startswith("http://") for e in plan.endpoints
        )
        if insecure or plain:
            out.append(f"registry {plan.host}: TLS verification is off or plain HTTP is used ({plan.source})")
    return out
