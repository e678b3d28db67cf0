"""RuntimeClasses whose handler a node's new containerd configuration has no runtime for. Pure.

A pod of a RuntimeClass asks the node's CRI runtime for that class's `handler`; containerd's CRI
plugin answers with the runtime of that name under `containerd.runtimes`, or fails the pod sandbox
(`no runtime for "<handler>" is configured`). Dockershim knew one handler only, `docker` (its own
name), so a RuntimeClass for Docker's other runtimes could not run there before either; after the
switch each handler must be a runtime of the rendered config.toml: carried from daemon.json
(`rendering.runtimes`), kept from the current config.toml, or set in spec.containerd.extraConfig.
A RuntimeClass whose `scheduling.nodeSelector` does not match the node is not its business.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shimshift.planning.cluster import Node, RuntimeClass
from shimshift.planning.findings import Finding, Level, name_some
from shimshift.planning.settings import rendered_config
from shimshift.steps.filesection import FileSection

RUNTIME_CLASS_HANDLER_MISSING = "RuntimeClassHandlerMissing"
#: the handler dockershim answered to
DOCKERSHIM_HANDLER = "docker"


def configured_runtimes(config: Mapping[str, Any]) -> frozenset[str]:
    """The runtime names of a parsed config.toml's CRI plugin (schema 2, or 3 and 4)."""
    plugins = config.get("plugins")
    names: set[str] = set()
    if not isinstance(plugins, Mapping):
        return frozenset()
    for plugin in ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"):
        containerd = (
            (plugins.get(plugin) or {}).get("containerd")
            if isinstance(plugins.get(plugin), Mapping)
            else None
        )
        runtimes = containerd.get("runtimes") if isinstance(containerd, Mapping) else None
        if isinstance(runtimes, Mapping):
            names |= {str(n) for n in runtimes}
    return frozenset(names)


def runtime_class_findings(
    classes: tuple[RuntimeClass, ...], node: Node, containerd: FileSection
) -> Iterator[Finding]:
    if not classes or not containerd.computed:
        return
    runtimes = configured_runtimes(rendered_config(containerd))
    for rc in sorted(classes, key=lambda c: c.name):
        if rc.handler in runtimes or not rc.applies_to(node.labels):
            continue
        before = (
            "it is dockershim's own name, so its pods ran on Docker and will not start on containerd"
            if rc.handler == DOCKERSHIM_HANDLER
            else "dockershim did not run it either"
        )
        yield Finding(
            RUNTIME_CLASS_HANDLER_MISSING,
            Level.WARNING,
            f"RuntimeClass {rc.name} has handler {rc.handler}, which containerd's new configuration on "
            f"this node has no runtime for (it has {name_some(sorted(runtimes))}): pods of that "
            f"RuntimeClass scheduled here fail to start ({before})",
            f"add the {rc.handler} runtime to daemon.json runtimes (then probe the node again) or as "
            "containerd.runtimes." + rc.handler + " in spec.containerd.extraConfig; or point the "
            "RuntimeClass at a configured runtime, or keep it off this node with scheduling.nodeSelector",
            node.name,
            f"RuntimeClass {rc.name}",
        )
