"""Findings for every Docker-era setting of a node that the migration does not carry over. Pure.

Each daemon.json key, each dockershim-era kubelet flag (in the kubelet's flags files and in the admin's
systemd units under /etc/systemd/system, which the switch edits alike, and in packaged units under /lib
and /usr/lib, which it does not; one finding per flag and unit file, saying what the switch does to
that file) and each of cri-dockerd's flags is decided by the
tables of `shimshift.model.dockerera`: translated settings need nothing; one that would break the
node is a blocker, one that changes something for the pods a warning, one with no meaning under
containerd a note. Entries of translated settings that could not be carried (a mirror URL that is not one, an
address range of insecure registries, a client certificate without its key, a setting of the current
config.toml that is dropped) are warnings too. So nothing that stays behind is only a row of the
report's settings table: it counts in the verdict and in `shimshift plan`'s exit status.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from shimshift.model import keys
from shimshift.model.dockerera import (
    DAEMON_JSON_IMPORTED,
    Fate,
    Rule,
    cri_dockerd_flag_fate,
    daemon_json_fate,
    is_dockershim_era_flag,
    kubelet_flag_fate,
    log_rotation,
)
from shimshift.model.facts import NodeFacts
from shimshift.model.kubeletunits import EDITABLE_DIR, kubelet_facts_unit_flags, switch_edits
from shimshift.model.kubenet import kubenet_node, pod_cidrs
from shimshift.model.proxy import DAEMON_JSON_PROXIES, no_proxy_covers
from shimshift.model.runtimes import docker_runtimes, missing_binaries
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.findings import Finding, Level
from shimshift.rendering.proxy import containerd_proxy
from shimshift.rendering.values import NodeLayout
from shimshift.steps.facts.cni import cni_dir_carried, lookup, shown_value, unit_flag_rule, unit_flag_what
from shimshift.steps.filesection import FileSection
from shimshift.steps.kubeletfiles import explicit_log_rotation, kubelet_minor, switched_flag

DAEMON_JSON_REFUSED = "DaemonJsonRefused"
DAEMON_JSON_NOT_CARRIED = "DaemonJsonNotCarried"
DAEMON_JSON_IGNORED = "DaemonJsonIgnored"
LOG_ROTATION_KUBELET_KEPT = "LogRotationKubeletKept"
SETTING_NOT_CARRIED = "SettingNotCarried"
KUBELET_FLAG_REFUSED = "KubeletFlagRefused"
KUBELET_FLAG_NOT_CARRIED = "KubeletFlagNotCarried"
KUBELET_FLAG_IGNORED = "KubeletFlagIgnored"
KUBELET_FLAG_CARRIED = "KubeletFlagCarried"
KUBELET_UNIT_FLAG_EDITED = "KubeletUnitFlagEdited"
CRI_DOCKERD_FLAG_REFUSED = "CriDockerdFlagRefused"
CRI_DOCKERD_FLAG_NOT_CARRIED = "CriDockerdFlagNotCarried"
CRI_DOCKERD_FLAG_IGNORED = "CriDockerdFlagIgnored"
CRI_DOCKERD_FLAG_CARRIED = "CriDockerdFlagCarried"
PROXY_NO_PROXY_INCOMPLETE = "ProxyNoProxyIncomplete"
RUNTIME_BINARY_MISSING = "RuntimeBinaryMissing"
#: What containerd must reach without the proxy, by a name NO_PROXY has to cover.
NO_PROXY_REQUIRED = {
    ".svc": "kubernetes.default.svc",
    ".cluster.local": "kubernetes.default.svc.cluster.local",
    "localhost": "localhost",
    "127.0.0.1": "127.0.0.1",
}

_LEVELS = {Fate.REFUSED: Level.BLOCKER, Fate.REPORTED: Level.WARNING, Fate.IRRELEVANT: Level.INFO}
_DAEMON_CODES = {
    Fate.REFUSED: DAEMON_JSON_REFUSED,
    Fate.REPORTED: DAEMON_JSON_NOT_CARRIED,
    Fate.IRRELEVANT: DAEMON_JSON_IGNORED,
}
_FLAG_CODES = {
    Fate.REFUSED: KUBELET_FLAG_REFUSED,
    Fate.REPORTED: KUBELET_FLAG_NOT_CARRIED,
    Fate.IRRELEVANT: KUBELET_FLAG_IGNORED,
}
_CRI_DOCKERD_CODES = {
    Fate.REFUSED: CRI_DOCKERD_FLAG_REFUSED,
    Fate.REPORTED: CRI_DOCKERD_FLAG_NOT_CARRIED,
    Fate.IRRELEVANT: CRI_DOCKERD_FLAG_IGNORED,
}


def daemon_json_rule(
    spec: NodeMigrationSpec,
    key: str,
    value: Any,
    daemon: Mapping[str, Any] | None = None,
    snapshotters: Mapping[str, str] | None = None,
) -> Rule:
    """The table's rule, except that the registry keys are not carried when the spec imports nothing."""
    rule = daemon_json_fate(key, value, daemon, snapshotters)
    if key in DAEMON_JSON_IMPORTED and not spec.containerd.import_docker_config:
        return Rule(
            Fate.REPORTED,
            "spec.containerd.importDockerConfig is false, so it is not carried into containerd",
            "set importDockerConfig to true, or give the same registries in spec.containerd.registries",
        )
    return rule


@lru_cache(maxsize=64)
def _parsed(text: str) -> Mapping[str, Any]:
    """A rendered config.toml, parsed once for the look-alike nodes that share it."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def rendered_config(section: FileSection) -> Mapping[str, Any]:
    for change in section.changes:
        if change.path == keys.CONTAINERD_CONFIG and change.after is not None:
            return _parsed(change.after)
    return {}


def _daemon_findings(spec: NodeMigrationSpec, facts: NodeFacts) -> Iterator[Finding]:
    daemon = facts.daemon_json or {}
    for key in sorted(daemon):
        rule = daemon_json_rule(spec, key, daemon[key], daemon, facts.snapshotters)
        if key == "log-opts":
            kept = _kubelet_kept(facts)
            if kept is not None:
                yield kept
                if rule.fate is not Fate.REFUSED:
                    continue
        if rule.fate is Fate.TRANSLATED:
            continue
        verb = {
            Fate.REFUSED: "would break the node",
            Fate.REPORTED: "is not carried over",
            Fate.IRRELEVANT: "has no meaning under containerd",
        }[rule.fate]
        if rule.text.startswith("carried as "):
            verb = "is carried over, not all of it as it was"
        yield Finding(
            _DAEMON_CODES[rule.fate],
            _LEVELS[rule.fate],
            f"daemon.json {key} = {shown_value(daemon[key])} {verb}: {rule.text}",
            rule.advice,
            facts.node,
            f"daemon.json {key}",
        )


def _kubelet_kept(facts: NodeFacts) -> Finding | None:
    """A note when the node's kubelet already sets its own log rotation, which the switch keeps."""
    rotation = log_rotation(facts.daemon_json)
    if rotation is None or rotation.max_size is None:
        return None
    explicit = explicit_log_rotation(facts.kubelet)
    if not explicit:
        return None
    docker = {"containerLogMaxSize": rotation.max_size, "containerLogMaxFiles": rotation.max_files}
    carried = [f"{k} {v}" for k, v in docker.items() if k not in explicit and v is not None]
    return Finding(
        LOG_ROTATION_KUBELET_KEPT,
        Level.INFO,
        "daemon.json log-opts: the kubelet already sets its own "
        + ", ".join(explicit.values())
        + ", which the switch keeps"
        + (f"; carried from Docker: {', '.join(carried)}" if carried else ""),
        "",
        facts.node,
        "daemon.json log-opts",
    )


def _flag_findings(spec: NodeMigrationSpec, facts: NodeFacts, containerd: FileSection) -> Iterator[Finding]:
    config = rendered_config(containerd) if containerd.computed else {}
    seen: set[str] = set()
    for name, value in facts.kubelet.flags:
        if not is_dockershim_era_flag(name) or name in seen:
            continue
        seen.add(name)
        carried = name in ("cni-bin-dir", "cni-conf-dir") and cni_dir_carried(config, name, value)
        rule = kubelet_flag_fate(
            name, value, carried=carried, pod_cidrs=pod_cidrs(facts), kubenet=kubenet_node(facts)
        )
        found = _flag_finding(
            rule,
            carried,
            KUBELET_FLAG_CARRIED,
            _FLAG_CODES,
            f"kubelet --{name}={shown_value(value)}",
            facts.node,
            f"--{name}",
        )
        if found is not None:
            yield found
    yield from _unit_findings(spec, facts, config)


def _flag_finding(
    rule: Rule,
    carried: bool,
    carried_code: str,
    codes: Mapping[Fate, str],
    what: str,
    node: str,
    subject: str,
) -> Finding | None:
    """The finding of one flag by its fate: a note when the node's CNI directory is carried into
    containerd's config, none for another translated flag, else the fate's code and level."""
    if rule.fate is Fate.TRANSLATED:
        return (
            Finding(carried_code, Level.INFO, f"{what}: {rule.text}", "", node, subject) if carried else None
        )
    return Finding(codes[rule.fate], _LEVELS[rule.fate], f"{what}: {rule.text}", rule.advice, node, subject)


def _unit_findings(spec: NodeMigrationSpec, facts: NodeFacts, config: Mapping[str, Any]) -> Iterator[Finding]:
    """Dockershim-era flags set in the kubelet's systemd units, one finding per flag and file, saying
    what the switch does to that file: in an admin's unit (/etc/systemd/system) it takes the flag out
    (or rewrites it) as in a flags file, decided alike (`steps.facts.cni.unit_flag_rule`); a packaged
    unit (/lib, /usr/lib) it does not edit, so the flag stays on the kubelet's command line."""
    minor = kubelet_minor(facts.kubelet.version) or 0
    endpoint = spec.kubelet.runtime_endpoint
    seen: set[tuple[str, str]] = set()
    for flag in kubelet_facts_unit_flags(facts.kubelet):
        if not is_dockershim_era_flag(flag.name) or (flag.path, flag.name) in seen:
            continue
        seen.add((flag.path, flag.name))
        what = unit_flag_what(flag)
        keep, new = switched_flag(flag.name, flag.value, minor, endpoint)
        edited = switch_edits(flag) and not flag.unsafe and (keep, new) != (True, flag.value)
        action = (
            f"the switch removes it from {flag.path}"
            if edited and not keep
            else f"the switch sets it to {new} in {flag.path}"
            if edited
            else f"the switch leaves it in {flag.path}"
        )
        rule = unit_flag_rule(facts, config, flag)
        if rule is None:
            yield Finding(
                KUBELET_FLAG_IGNORED,
                Level.INFO,
                f"{what} is not on the kubelet's command line ({flag.why_not_live})"
                + (f"; {action}" if edited else ""),
                "",
                facts.node,
                f"--{flag.name}",
            )
            continue
        if not switch_edits(flag):
            if rule.fate is Fate.REFUSED:
                yield Finding(
                    KUBELET_FLAG_REFUSED,
                    Level.BLOCKER,
                    f"{what}: {rule.text}",
                    rule.advice,
                    facts.node,
                    f"--{flag.name}",
                )
                continue
            yield Finding(
                KUBELET_FLAG_NOT_CARRIED,
                Level.WARNING,
                f"{what}: it stays on the kubelet's command line as it is (a dockershim-only flag does "
                "nothing with a remote runtime before kubelet 1.24 and stops kubelet 1.24+ from starting; "
                "a runtime flag may win over the switch's own, depending on its place)",
                f"move it out of {flag.path} into a drop-in under {EDITABLE_DIR}kubelet.service.d/ or the "
                "kubelet's flags file, which the switch edits, then plan again",
                facts.node,
                f"--{flag.name}",
            )
            continue
        if rule.fate is Fate.TRANSLATED:
            yield Finding(
                KUBELET_UNIT_FLAG_EDITED,
                Level.INFO,
                f"{what}: {rule.text}; {action}",
                "",
                facts.node,
                f"--{flag.name}",
            )
            continue
        yield Finding(
            _FLAG_CODES[rule.fate],
            _LEVELS[rule.fate],
            f"{what}: {rule.text}; {action}",
            rule.advice,
            facts.node,
            f"--{flag.name}",
        )


def sandbox_image(config: Mapping[str, Any]) -> str | None:
    """The sandbox image of a rendered config.toml (schema 2, or 3 and 4)."""
    for dotted in (
        'plugins."io.containerd.grpc.v1.cri".sandbox_image',
        'plugins."io.containerd.cri.v1.images".pinned_images.sandbox',
    ):
        value = lookup(config, dotted)
        if isinstance(value, str):
            return value
    return None


def _cri_dockerd_findings(facts: NodeFacts, containerd: FileSection) -> Iterator[Finding]:
    """cri-dockerd's flags: where dockershim's network and sandbox settings live on 1.24+ nodes."""
    config = rendered_config(containerd) if containerd.computed else {}
    sandbox = sandbox_image(config)
    seen: set[str] = set()
    for name, value in facts.cri_dockerd_flags:
        if name in seen:
            continue
        seen.add(name)
        carried = name in ("cni-bin-dir", "cni-conf-dir") and cni_dir_carried(config, name, value)
        rule = cri_dockerd_flag_fate(
            name,
            value,
            carried=carried,
            sandbox=sandbox,
            pod_cidrs=pod_cidrs(facts),
            kubenet=kubenet_node(facts),
        )
        found = _flag_finding(
            rule,
            carried,
            CRI_DOCKERD_FLAG_CARRIED,
            _CRI_DOCKERD_CODES,
            f"cri-dockerd --{name}={shown_value(value)} ({facts.cri_dockerd_unit})",
            facts.node,
            f"cri-dockerd --{name}",
        )
        if found is not None:
            yield found


def _mirror_hosts(containerd: FileSection) -> list[str]:
    """The mirror hosts of the rendered certs.d hosts.toml files (`[host."https://mirror"]`)."""
    hosts: list[str] = []
    for change in containerd.changes:
        if not change.path.endswith("/hosts.toml") or change.after is None:
            continue
        table = _parsed(change.after).get("host")
        for url in table if isinstance(table, Mapping) else ():
            host = str(url).split("://", 1)[-1].split("/", 1)[0]
            if host and host not in hosts:
                hosts.append(host)
    return hosts


def _proxy_findings(facts: NodeFacts, containerd: FileSection) -> Iterator[Finding]:
    """A warning when containerd will pull through a proxy whose NO_PROXY leaves out what it must
    reach directly: the cluster's service names, the node itself, the registry mirrors."""
    proxy = containerd_proxy(facts, NodeLayout())
    env = proxy.containerd_env
    if not env.get("HTTP_PROXY") and not env.get("HTTPS_PROXY"):
        return
    no_proxy = env.get("NO_PROXY", "")
    wanted = dict(NO_PROXY_REQUIRED)
    wanted |= {h: h for h in (_mirror_hosts(containerd) if containerd.computed else [])}
    missing = [name for name, host in wanted.items() if not no_proxy_covers(no_proxy, host)]
    if not missing:
        return
    from_json = facts.daemon_json is not None and "proxies" in facts.daemon_json
    own = proxy.file is None
    subject = DAEMON_JSON_PROXIES if from_json and not own else proxy.containerd_env_file
    where = (
        proxy.containerd_env_file
        if own
        else "daemon.json proxies no-proxy or docker.service's Environment=, then probe the node again"
    )
    via = ", ".join(f"{k}={shown_value(env[k])}" for k in ("HTTP_PROXY", "HTTPS_PROXY") if env.get(k))
    yield Finding(
        PROXY_NO_PROXY_INCOMPLETE,
        Level.WARNING,
        f"containerd will pull through {via} ({proxy.containerd_env_file}) with NO_PROXY="
        f"{shown_value(no_proxy) or '(none)'}, which does not cover {', '.join(missing)}: those requests "
        "go to the proxy; the service and pod CIDRs are not checked (the probe does not know them)",
        f"add {', '.join(missing)} (and the service and pod CIDRs) to NO_PROXY in {where}",
        facts.node,
        subject,
    )


def _row_advice(outcome: str) -> str:
    if outcome.startswith("nothing: "):
        return (
            f"nothing carries it ({outcome.removeprefix('nothing: ')}): fix it on the node, or give the "
            "registry in spec.containerd.registries"
        )
    if outcome == "dropped":
        return "it is dropped: set it under its current name in spec.containerd.extraConfig if still needed"
    return f"instead: {outcome}"


def _row_findings(spec: NodeMigrationSpec, facts: NodeFacts, containerd: FileSection) -> Iterator[Finding]:
    """Entries the renderer could not carry that the key findings above do not already name."""
    daemon = facts.daemon_json or {}
    for row in containerd.carryover:
        if row.carried or row.source == "config.toml disabled_plugins":
            continue  # docker-ce's disabled CRI plugin is enabled on purpose (note CriPluginDisabled)
        key = row.source.removeprefix("daemon.json ")
        whole_key = row.source.startswith("daemon.json ") and key in daemon
        rule = daemon_json_rule(spec, key, daemon[key], daemon, facts.snapshotters) if whole_key else None
        if rule is not None and rule.fate is not Fate.TRANSLATED:
            continue  # the whole key is a finding of its own
        yield Finding(
            SETTING_NOT_CARRIED,
            Level.WARNING,
            f"{row.source} {row.value} is not carried over",
            _row_advice(row.outcome),
            facts.node,
            row.source,
        )


def runtime_binary_findings(facts: NodeFacts) -> Iterator[Finding]:
    """A carried runtime whose binary the node lacks: a blocker for Docker's default runtime (every pod
    would fail), else a warning (the pods of its RuntimeClass would). The facts step refuses the node
    for the blocker in the same words (`steps.facts.refuse`)."""
    for missing in missing_binaries(docker_runtimes(facts.daemon_json), facts.runtime_binaries):
        yield Finding(
            RUNTIME_BINARY_MISSING,
            Level.BLOCKER if missing.default else Level.WARNING,
            missing.text,
            missing.advice,
            facts.node,
            f"daemon.json runtimes.{missing.runtime}",
        )


def setting_findings(
    spec: NodeMigrationSpec, facts: NodeFacts | None, containerd: FileSection
) -> list[Finding]:
    """A finding for every Docker-era setting of the node that the migration does not carry over."""
    if facts is None:
        return []
    try:
        return [
            *_daemon_findings(spec, facts),
            *_flag_findings(spec, facts, containerd),
            *_cri_dockerd_findings(facts, containerd),
            *_row_findings(spec, facts, containerd),
            *_proxy_findings(facts, containerd),
            *runtime_binary_findings(facts),
        ]
    except RecursionError:  # a daemon.json value nested past what a check walks: that node's blocker
        return [
            Finding(
                DAEMON_JSON_REFUSED,
                Level.BLOCKER,
                "a setting in the node's daemon.json is nested too deep to read",
                "fix /etc/docker/daemon.json on the node, then probe it again",
                facts.node,
                "daemon.json",
            )
        ]
