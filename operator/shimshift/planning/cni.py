"""The node's CNI state as containerd's CRI plugin will find it after the switch, as plan findings.
Pure. The decisions are `steps.facts.cni`'s, which the facts step refuses a node by too, so a node
the plan blocks for its network is never changed; this module turns them into findings and finds the
CNI DaemonSets: a DaemonSet pod on the node mounting containerd's conf_dir from the host writes a
configuration there, so an empty directory is a warning instead of a blocker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shimshift.model.facts import NodeFacts
from shimshift.planning.cluster import Pod
from shimshift.planning.findings import Finding, Level
from shimshift.planning.settings import rendered_config
from shimshift.steps.facts.cni import (
    CNI_CONFIG_AWAITED,
    CNI_CONFIG_INVALID,
    CNI_CONFIG_MISSING,
    CNI_CONFIGS_IGNORED,
    CNI_NOT_CHECKED,
    CNI_PLUGINS_MISSING,
    DEFAULT_MAX_CONF_NUM,
    cni_problems,
    containerd_cni,
    node_cni,
    plugin_types,
)
from shimshift.steps.filesection import FileSection

__all__ = [
    "CNI_CONFIGS_IGNORED",
    "CNI_CONFIG_AWAITED",
    "CNI_CONFIG_INVALID",
    "CNI_CONFIG_MISSING",
    "CNI_NOT_CHECKED",
    "CNI_PLUGINS_MISSING",
    "DEFAULT_MAX_CONF_NUM",
    "cni_findings",
    "cni_writers",
    "containerd_cni",
    "plugin_types",
    "writes_cni_config",
]

_LEVELS = {"blocker": Level.BLOCKER, "warning": Level.WARNING, "info": Level.INFO}


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


def cni_writers(pods: Iterable[Pod], conf_dir: str) -> tuple[str, ...]:
    """The DaemonSets whose pod (of `pods`, the node's) mounts `conf_dir` from the host, sorted."""
    return tuple(
        sorted({p.owner.name for p in pods if p.owner is not None and writes_cni_config(p, conf_dir)})
    )


def cni_findings(facts: NodeFacts, containerd: FileSection | None, pods: Sequence[Pod] = ()) -> list[Finding]:
    """What containerd's CRI will make of the node's CNI directories; none from facts without them."""
    config = rendered_config(containerd) if containerd is not None else {}
    conf_dir, _bins, _num = node_cni(facts, config)
    return [
        Finding(p.code, _LEVELS[p.level], p.message, p.advice, facts.node, p.subject)
        for p in cni_problems(facts, config, cni_writers(pods, conf_dir))
    ]
