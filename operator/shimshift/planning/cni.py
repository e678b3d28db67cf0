"""The node's CNI state as containerd's CRI plugin will find it after the switch. Pure.

containerd's CRI plugin (go-cni) lists the *.conf, *.conflist and *.json files of its CNI conf_dir,
sorts them by name and loads the first `max_conf_num` of them (1 by default; 0 loads all): a second
configuration left behind by an earlier CNI is ignored, and the node's pods get the first one's
network, whichever that is. A file it loads that is not valid JSON, or names no plugin type, fails
the whole CNI setup. No configuration at all leaves the node NotReady ("cni plugin not initialized")
until one appears, which is fine only when a CNI DaemonSet on the node writes one. Every plugin type
a loaded configuration names must be an executable in one of the bin directories, else every pod
sandbox fails. The directories are the rendered config.toml's (the carried --cni-conf-dir and
--cni-bin-dir, else containerd's defaults); verify then requires NetworkReady from `crictl info`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shimshift.model.dockerera import CNI_BIN_DIR, CNI_CONF_DIR, cni_dir_key, node_cni_dirs
from shimshift.model.facts import NodeFacts
from shimshift.planning.cluster import Pod
from shimshift.planning.findings import Finding, Level, name_some
from shimshift.planning.settings import _lookup, rendered_config
from shimshift.steps.filesection import FileSection

CNI_CONFIGS_IGNORED = "CniConfigsIgnored"
CNI_CONFIG_MISSING = "CniConfigMissing"
CNI_CONFIG_AWAITED = "CniConfigAwaited"
CNI_CONFIG_INVALID = "CniConfigInvalid"
CNI_PLUGINS_MISSING = "CniPluginsMissing"
CNI_NOT_CHECKED = "CniNotChecked"
#: containerd's default max_conf_num
DEFAULT_MAX_CONF_NUM = 1
_EXTRA = "spec.containerd.extraConfig"


def containerd_cni(config: Mapping[str, Any]) -> tuple[str, tuple[str, ...], int]:
    """conf_dir, bin directories and max_conf_num of a rendered config.toml (schema 2, 3 or 4),
    containerd's defaults where it sets none."""
    for schema in (2, 3):
        conf = _lookup(config, cni_dir_key("cni-conf-dir", schema))
        bin_key = cni_dir_key("cni-bin-dir", schema)
        one, many = _lookup(config, bin_key), _lookup(config, bin_key + "s")
        num = _lookup(config, bin_key.rsplit(".", 1)[0] + ".max_conf_num")
        if conf is None and one is None and many is None and num is None:
            continue
        bins = tuple(str(d) for d in many) if isinstance(many, list) else (str(one),) if one else ()
        return (
            str(conf).rstrip("/") if conf else CNI_CONF_DIR,
            tuple(b.rstrip("/") for b in bins) or (CNI_BIN_DIR,),
            num if isinstance(num, int) and not isinstance(num, bool) else DEFAULT_MAX_CONF_NUM,
        )
    return CNI_CONF_DIR, (CNI_BIN_DIR,), DEFAULT_MAX_CONF_NUM


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


def writes_cni_config(pod: Pod, conf_dir: str) -> bool:
    """A DaemonSet pod mounting the conf dir (or a directory above it) from the host: a CNI agent."""
    if pod.owner is None or pod.owner.kind != "DaemonSet":
        return False
    for v in pod.volumes:
        if v.host_path is not None and v.host_path.startswith("/"):
            host = v.host_path.rstrip("/")
            if conf_dir == host or conf_dir.startswith(host + "/"):
                return True
    return False


def cni_findings(facts: NodeFacts, containerd: FileSection | None, pods: Sequence[Pod] = ()) -> list[Finding]:
    """What containerd's CRI will make of the node's CNI directories; none from facts without them."""
    if not facts.cni_conf_dirs:
        return []  # facts of a probe that did not list CNI directories
    node = facts.node
    config = rendered_config(containerd) if containerd is not None else {}
    conf_dir, bin_dirs, max_num = containerd_cni(config)
    if not config:  # not rendered: the directories the renderer carries from the node's flags
        carried = node_cni_dirs(facts.kubelet.flags, facts.cri_dockerd_flags, bin_dirs=True)
        conf_dir, bin_dirs = carried.conf_dir or conf_dir, carried.bin_dirs or bin_dirs
    if conf_dir not in facts.cni_conf_dirs:
        return [
            Finding(
                CNI_NOT_CHECKED,
                Level.INFO,
                f"containerd's CNI conf_dir {conf_dir} was not listed by the facts probe, so its "
                "configurations are not checked",
                "",
                node,
                conf_dir,
            )
        ]
    names = facts.cni_conf_dirs[conf_dir]
    if not names:
        return [_none(node, conf_dir, pods)]
    loaded = names[:max_num] if max_num > 0 else names
    out: list[Finding] = []
    if len(loaded) < len(names):
        ignored = names[len(loaded) :]
        out.append(
            Finding(
                CNI_CONFIGS_IGNORED,
                Level.WARNING,
                f"{conf_dir} holds {len(names)} CNI configurations and containerd's CRI loads the first "
                f"{len(loaded)} by name (max_conf_num {max_num}): it loads {name_some(list(loaded))} and "
                f"ignores {name_some(list(ignored))}",
                f"remove the configurations no CNI uses any more from {conf_dir} (leftovers of an earlier "
                f"CNI), or, for several networks, set max_conf_num in {_EXTRA}",
                node,
                conf_dir,
            )
        )
    out += _plugins(facts, conf_dir, loaded, bin_dirs)
    return out


def _none(node: str, conf_dir: str, pods: Iterable[Pod]) -> Finding:
    writers = sorted(p.owner.name for p in pods if p.owner is not None and writes_cni_config(p, conf_dir))
    if writers:
        return Finding(
            CNI_CONFIG_AWAITED,
            Level.WARNING,
            f"{conf_dir} holds no CNI configuration: the node is NotReady under containerd until the "
            f"DaemonSet {name_some(writers)} (which mounts it) writes one",
            "check that the CNI DaemonSet's pod writes its configuration on start; verify waits for "
            "NetworkReady",
            node,
            conf_dir,
        )
    return Finding(
        CNI_CONFIG_MISSING,
        Level.BLOCKER,
        f"{conf_dir} holds no CNI configuration (*.conf, *.conflist, *.json) and no DaemonSet pod on the "
        "node mounts it: containerd's CRI would leave the node NotReady (cni plugin not initialized)",
        f"install the cluster's CNI configuration in {conf_dir} (or run its DaemonSet on the node), "
        "then plan again",
        node,
        conf_dir,
    )


def _plugins(
    facts: NodeFacts, conf_dir: str, loaded: Sequence[str], bin_dirs: Sequence[str]
) -> list[Finding]:
    out: list[Finding] = []
    known = all(d in facts.cni_bin_dirs for d in bin_dirs)
    present = {n for d in bin_dirs for n in facts.cni_bin_dirs.get(d, ())}
    for name in loaded:
        path = f"{conf_dir}/{name}"
        text = facts.cni_configs.get(path)
        if text is None:
            continue  # not read (more files than the probe reads)
        types = plugin_types(name, text)
        if types is None:
            out.append(
                Finding(
                    CNI_CONFIG_INVALID,
                    Level.BLOCKER,
                    f"{path} is not a CNI configuration containerd can load (not JSON, or no plugin "
                    "type): containerd's CRI fails its CNI setup and the node stays NotReady",
                    f"fix or remove {path}",
                    facts.node,
                    path,
                )
            )
            continue
        missing = sorted({t for t in types if t not in present})
        if known and missing:
            out.append(
                Finding(
                    CNI_PLUGINS_MISSING,
                    Level.WARNING,
                    f"{path} runs CNI plugin(s) {', '.join(missing)}, which are not in containerd's CNI "
                    f"bin director{'y' if len(bin_dirs) == 1 else 'ies'} {', '.join(bin_dirs)}: pod "
                    "sandboxes would fail to start",
                    "install the missing plugin binaries there (the CNI's DaemonSet may copy them on "
                    f"start), or point containerd at their directory (bin_dir in {_EXTRA})",
                    facts.node,
                    path,
                )
            )
    return out
