"""The node's CNI state as containerd's CRI plugin will find it after the switch: what the plan reports
(`planning.cni`, `planning.settings` for the CNI flags) and what the facts step refuses, decided once
here so the two agree. Pure.

containerd's CRI plugin (go-cni) lists the *.conf, *.conflist and *.json files of its CNI conf_dir,
sorts them by name and loads the first `max_conf_num` of them (1 by default; 0 loads all): a second
configuration left behind by an earlier CNI is ignored, and the node's pods get the first one's
network, whichever that is. A file it loads that is not valid JSON, or names no plugin type, fails
the whole CNI setup. No configuration at all leaves the node NotReady ("cni plugin not initialized")
until one appears, which is fine only when a CNI DaemonSet on the node writes one. Every plugin type
a loaded configuration names must be an executable in one of the bin directories, else every pod
sandbox fails. The directories are the rendered config.toml's (the carried --cni-conf-dir and
--cni-bin-dir, else containerd's defaults); verify then requires NetworkReady from `crictl info`.

The dockershim flags that decide the node's network (`--network-plugin`, `--cni-bin-dir`,
`--cni-conf-dir`, in the kubelet's flags files and units and in cri-dockerd's unit) are decided by
`model.dockerera`; those it refuses block the node here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shimshift.model.dockerera import (
    CNI_BIN_DIR,
    CNI_CONF_DIR,
    Fate,
    Rule,
    cni_dir_key,
    cri_dockerd_flag_fate,
    kubelet_flag_fate,
    node_cni_dirs,
)
from shimshift.model.facts import NodeFacts
from shimshift.model.kubeletunits import (
    ENV_FILE,
    UnitFlag,
    command_flags,
    editable,
    kubelet_facts_unit_flags,
    switch_edits,
)
from shimshift.model.kubenet import KUBENET_FILE, kubenet_node, kubenet_translation, pod_cidrs
from shimshift.rendering.redact import redact_text
from shimshift.steps.kubeletfiles import is_dockershim_flag, kubelet_minor

CNI_CONFIGS_IGNORED = "CniConfigsIgnored"
CNI_CONFIG_MISSING = "CniConfigMissing"
CNI_CONFIG_AWAITED = "CniConfigAwaited"
CNI_CONFIG_INVALID = "CniConfigInvalid"
CNI_PLUGINS_MISSING = "CniPluginsMissing"
CNI_NOT_CHECKED = "CniNotChecked"
KUBELET_FLAG_REFUSED = "KubeletFlagRefused"
CRI_DOCKERD_FLAG_REFUSED = "CriDockerdFlagRefused"
#: the dockershim flags that decide the node's network under containerd
NETWORK_FLAGS = ("network-plugin", "cni-bin-dir", "cni-conf-dir")
#: containerd's default max_conf_num
DEFAULT_MAX_CONF_NUM = 1
_EXTRA = "spec.containerd.extraConfig"
_MAX_VALUE = 120


@dataclass(frozen=True)
class CniProblem:
    """One finding about the node's CNI: `level` is "blocker", "warning" or "info"."""

    code: str
    level: str
    message: str
    advice: str
    subject: str

    @property
    def blocker(self) -> bool:
        return self.level == "blocker"


def shown_value(value: Any) -> str:
    """A setting's value for a report: JSON, URL passwords redacted, cut short."""
    try:
        text = redact_text(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    except (RecursionError, ValueError):  # a value nested past what JSON can write back
        return "(nested too deep to show)"
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    """`plugins."a.b".cni.bin_dir` in a parsed TOML document; None when absent."""
    parts: list[str] = []
    rest = dotted
    while rest:
        if rest.startswith('"'):
            end = rest.index('"', 1)
            parts.append(rest[1:end])
            rest = rest[end + 1 :].removeprefix(".")
        else:
            head, _, rest = rest.partition(".")
            parts.append(head)
    node: Any = doc
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def unit_flag_what(flag: UnitFlag) -> str:
    """How a finding names a kubelet flag in a unit file, and whether the switch edits that file."""
    shown = f"kubelet --{flag.name}" + ("" if flag.value is None else f"={shown_value(flag.value)}")
    if flag.directive == ENV_FILE:
        return (
            f"{shown} in {flag.path} (${flag.variable}), a file the kubelet's unit reads in "
            "EnvironmentFile= and the switch does not edit"
        )
    if editable(flag.path):
        return f"{shown} in {flag.path}"
    return f"{shown} in {flag.path}, a packaged unit the switch does not edit"


def unit_flag_rule(facts: NodeFacts, config: Mapping[str, Any], flag: UnitFlag) -> Rule | None:
    """The fate of a dockershim-era flag in the kubelet's units, by `kubelet_flag_fate` as for the flags
    files: None when it is not on the kubelet's command line. In an admin's unit (/etc/systemd/system)
    the switch edits it as in a flags file, so it is decided alike (kubenet translated on the Node's
    podCIDR, a CNI directory carried); one the switch would have to change but cannot edit safely (its
    value from a variable) is refused. In a packaged unit (/lib, /usr/lib) it stays on the command
    line, decided without what a translation needs."""
    if not flag.live:
        return None
    value = flag.value or ""
    if not switch_edits(flag):
        return kubelet_flag_fate(flag.name, value)
    minor = kubelet_minor(facts.kubelet.version) or 0
    changes = is_dockershim_flag(flag.name, minor) or flag.name in (
        "container-runtime",
        "container-runtime-endpoint",
    )
    if flag.unsafe and changes:
        return Rule(
            Fate.REFUSED,
            f"the switch must take it out of that file but cannot edit it safely: {flag.unsafe}",
            f"write {flag.shown} literally in {flag.path} (or move it to the kubelet's flags file), "
            "then plan again",
        )
    carried = flag.name in ("cni-bin-dir", "cni-conf-dir") and cni_dir_carried(config, flag.name, value)
    return kubelet_flag_fate(
        flag.name, value, carried=carried, pod_cidrs=pod_cidrs(facts), kubenet=kubenet_node(facts)
    )


def cni_dir_carried(config: Mapping[str, Any], flag: str, value: str) -> bool:
    """containerd's rendered config already reads CNI from the kubelet's --cni-bin-dir/--cni-conf-dir."""
    wanted = {v.rstrip("/") for v in value.split(",") if v}
    for schema in (2, 3):
        got = lookup(config, cni_dir_key(flag, schema))
        dirs = lookup(config, cni_dir_key(flag, schema) + "s") if flag == "cni-bin-dir" else None
        found = {str(got).rstrip("/")} if isinstance(got, str) else set()
        if isinstance(dirs, list):
            found |= {str(d).rstrip("/") for d in dirs}
        if wanted and wanted <= found:
            return True
    return False


def containerd_cni(config: Mapping[str, Any]) -> tuple[str, tuple[str, ...], int]:
    """conf_dir, bin directories and max_conf_num of a rendered config.toml (schema 2, 3 or 4),
    containerd's defaults where it sets none."""
    for schema in (2, 3):
        conf = lookup(config, cni_dir_key("cni-conf-dir", schema))
        bin_key = cni_dir_key("cni-bin-dir", schema)
        one, many = lookup(config, bin_key), lookup(config, bin_key + "s")
        num = lookup(config, bin_key.rsplit(".", 1)[0] + ".max_conf_num")
        if conf is None and one is None and many is None and num is None:
            continue
        bins = tuple(str(d) for d in many) if isinstance(many, list) else (str(one),) if one else ()
        return (
            str(conf).rstrip("/") if conf else CNI_CONF_DIR,
            tuple(b.rstrip("/") for b in bins) or (CNI_BIN_DIR,),
            num if isinstance(num, int) and not isinstance(num, bool) else DEFAULT_MAX_CONF_NUM,
        )
    return CNI_CONF_DIR, (CNI_BIN_DIR,), DEFAULT_MAX_CONF_NUM


def node_cni(facts: NodeFacts, config: Mapping[str, Any]) -> tuple[str, tuple[str, ...], int]:
    """containerd's conf_dir, bin directories and max_conf_num on the node: the rendered config's
    (`config` parsed; empty when not rendered: the directories the renderer carries from the flags)."""
    conf_dir, bin_dirs, max_num = containerd_cni(config)
    if not config:
        carried = node_cni_dirs(command_flags(facts.kubelet), facts.cri_dockerd_flags, bin_dirs=True)
        conf_dir, bin_dirs = carried.conf_dir or conf_dir, carried.bin_dirs or bin_dirs
    return conf_dir, bin_dirs, max_num


def plugin_types(name: str, text: str) -> tuple[str, ...] | None:
    """The plugin binaries a config file runs, as go-cni reads it (a .conflist: its plugins; else the
    top-level type), each with its IPAM plugin; None when containerd would refuse the file."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(doc, Mapping):
        return None
    plugins = doc.get("plugins") if name.endswith(".conflist") else [doc]
    if not isinstance(plugins, list) or not plugins:
        return None
    types: list[str] = []
    for plugin in plugins:
        kind = plugin.get("type") if isinstance(plugin, Mapping) else None
        if not isinstance(kind, str) or not kind:
            return None
        types.append(kind)
        ipam = plugin.get("ipam")
        if isinstance(ipam, Mapping) and isinstance(ipam.get("type"), str) and ipam["type"]:
            types.append(ipam["type"])
    return tuple(types)


def _name_some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def cni_problems(
    facts: NodeFacts, config: Mapping[str, Any], writers: Sequence[str] = ()
) -> list[CniProblem]:
    """What containerd's CRI will make of the node's CNI directories (none from facts without them);
    `writers`: the DaemonSets whose pod on the node mounts containerd's conf_dir from the host."""
    if not facts.cni_conf_dirs:
        return []  # facts of a probe that did not list CNI directories
    conf_dir, bin_dirs, max_num = node_cni(facts, config)
    if conf_dir not in facts.cni_conf_dirs:
        return [
            CniProblem(
                CNI_NOT_CHECKED,
                "info",
                f"containerd's CNI conf_dir {conf_dir} was not listed by the facts probe, so its "
                "configurations are not checked",
                "",
                conf_dir,
            )
        ]
    names = facts.cni_conf_dirs[conf_dir]
    configs: Mapping[str, str] = facts.cni_configs
    kubenet = kubenet_translation(facts)
    carried = node_cni_dirs(command_flags(facts.kubelet), facts.cri_dockerd_flags).conf_dir or CNI_CONF_DIR
    if kubenet is not None and conf_dir == carried:  # the configure step writes kubenet's network there
        names = tuple(sorted({*names, KUBENET_FILE}))
        configs = {**configs, f"{conf_dir}/{KUBENET_FILE}": kubenet}
    if not names:
        return [_none(conf_dir, sorted(writers))]
    loaded = names[:max_num] if max_num > 0 else names
    out: list[CniProblem] = []
    if len(loaded) < len(names):
        ignored = names[len(loaded) :]
        out.append(
            CniProblem(
                CNI_CONFIGS_IGNORED,
                "warning",
                f"{conf_dir} holds {len(names)} CNI configurations and containerd's CRI loads the first "
                f"{len(loaded)} by name (max_conf_num {max_num}): it loads {_name_some(list(loaded))} and "
                f"ignores {_name_some(list(ignored))}",
                f"remove the configurations no CNI uses any more from {conf_dir} (leftovers of an earlier "
                f"CNI), or, for several networks, set max_conf_num in {_EXTRA}",
                conf_dir,
            )
        )
    out += _plugins(facts, configs, conf_dir, loaded, bin_dirs)
    return out


def _none(conf_dir: str, writers: Sequence[str]) -> CniProblem:
    if writers:
        return CniProblem(
            CNI_CONFIG_AWAITED,
            "warning",
            f"{conf_dir} holds no CNI configuration: the node is NotReady under containerd until the "
            f"DaemonSet {_name_some(list(writers))} (which mounts it) writes one",
            "check that the CNI DaemonSet's pod writes its configuration on start; verify waits for "
            "NetworkReady",
            conf_dir,
        )
    return CniProblem(
        CNI_CONFIG_MISSING,
        "blocker",
        f"{conf_dir} holds no CNI configuration (*.conf, *.conflist, *.json) and no DaemonSet pod on the "
        "node mounts it: containerd's CRI would leave the node NotReady (cni plugin not initialized)",
        f"install the cluster's CNI configuration in {conf_dir} (or run its DaemonSet on the node), "
        "then plan again",
        conf_dir,
    )


def _plugins(
    facts: NodeFacts,
    configs: Mapping[str, str],
    conf_dir: str,
    loaded: Sequence[str],
    bin_dirs: Sequence[str],
) -> list[CniProblem]:
    out: list[CniProblem] = []
    known = all(d in facts.cni_bin_dirs for d in bin_dirs)
    present = {n for d in bin_dirs for n in facts.cni_bin_dirs.get(d, ())}
    for name in loaded:
        path = f"{conf_dir}/{name}"
        text = configs.get(path)
        if text is None:
            continue  # not read (more files than the probe reads)
        types = plugin_types(name, text)
        if types is None:
            out.append(
                CniProblem(
                    CNI_CONFIG_INVALID,
                    "blocker",
                    f"{path} is not a CNI configuration containerd can load (not JSON, or no plugin "
                    "type): containerd's CRI fails its CNI setup and the node stays NotReady",
                    f"fix or remove {path}",
                    path,
                )
            )
            continue
        missing = sorted({t for t in types if t not in present})
        if known and missing:
            out.append(
                CniProblem(
                    CNI_PLUGINS_MISSING,
                    "warning",
                    f"{path} runs CNI plugin(s) {', '.join(missing)}, which are not in containerd's CNI "
                    f"bin director{'y' if len(bin_dirs) == 1 else 'ies'} {', '.join(bin_dirs)}: pod "
                    "sandboxes would fail to start",
                    "install the missing plugin binaries there (the CNI's DaemonSet may copy them on "
                    f"start), or point containerd at their directory (bin_dir in {_EXTRA})",
                    path,
                )
            )
    return out


def network_flag_blockers(facts: NodeFacts, config: Mapping[str, Any]) -> Iterator[CniProblem]:
    """The node's network flags the migration refuses (`--network-plugin` other than cni, a CNI
    directory containerd would not read), in the kubelet's flags files, its units and cri-dockerd's
    unit, and any flag in the kubelet's units the switch must change but cannot edit safely (its value
    from a variable), with the words the plan's KubeletFlagRefused and CriDockerdFlagRefused blockers
    have: a node the plan blocks is never changed."""
    seen: set[str] = set()
    for name, value in facts.kubelet.flags:
        if name not in NETWORK_FLAGS or name in seen:
            continue
        seen.add(name)
        carried = name != "network-plugin" and cni_dir_carried(config, name, value)
        rule = kubelet_flag_fate(
            name, value, carried=carried, pod_cidrs=pod_cidrs(facts), kubenet=kubenet_node(facts)
        )
        if rule.fate is Fate.REFUSED:
            what = f"kubelet --{name}={shown_value(value)}"
            yield CniProblem(
                KUBELET_FLAG_REFUSED, "blocker", f"{what}: {rule.text}", rule.advice, f"--{name}"
            )
    done: set[tuple[str, str]] = set()
    for flag in kubelet_facts_unit_flags(facts.kubelet):
        if (flag.path, flag.name) in done:
            continue
        done.add((flag.path, flag.name))
        unit_rule = unit_flag_rule(facts, config, flag)
        if unit_rule is not None and unit_rule.fate is Fate.REFUSED:
            yield CniProblem(
                KUBELET_FLAG_REFUSED,
                "blocker",
                f"{unit_flag_what(flag)}: {unit_rule.text}",
                unit_rule.advice,
                f"--{flag.name}",
            )
    seen = set()
    for name, value in facts.cri_dockerd_flags:
        if name not in NETWORK_FLAGS or name in seen:
            continue
        seen.add(name)
        carried = name != "network-plugin" and cni_dir_carried(config, name, value)
        rule = cri_dockerd_flag_fate(
            name, value, carried=carried, pod_cidrs=pod_cidrs(facts), kubenet=kubenet_node(facts)
        )
        if rule.fate is Fate.REFUSED:
            what = f"cri-dockerd --{name}={shown_value(value)} ({facts.cri_dockerd_unit})"
            yield CniProblem(
                CRI_DOCKERD_FLAG_REFUSED,
                "blocker",
                f"{what}: {rule.text}",
                rule.advice,
                f"cri-dockerd --{name}",
            )


def cni_refusal(facts: NodeFacts, config: Mapping[str, Any], writers: Sequence[str] = ()) -> str | None:
    """Why the facts step refuses the node for its network (the plan's first CNI blocker, in its
    words: message and what to do), or None."""
    for problem in (*network_flag_blockers(facts, config), *cni_problems(facts, config, writers)):
        if problem.blocker:
            return f"{problem.message}: {problem.advice}"
    return None
