"""dockershim's kubenet as a CNI configuration containerd's CRI loads. Pure values.

A kubelet started with `--network-plugin=kubenet` networks its pods with dockershim's built-in bridge:
kubenet ran the CNI plugins bridge (bridge `cbr0`, the node's gateway), host-local (addresses from
the Node's `spec.podCIDR`) and loopback itself, from a configuration it wrote nowhere. containerd has
no such plugin, so without a configuration in its CNI conf_dir the node goes NotReady after the switch
("cni plugin not initialized"). The translation writes kubenet's network as a conflist there: bridge
`cbr0` with `isGateway`, host-local IPAM on the Node's podCIDR(s) with a default route, and portmap
for hostPort (which dockershim's kubenet did with its own hostport code); containerd's CRI sets up
loopback itself. kubenet's `--hairpin-mode` becomes the bridge's `hairpinMode` (hairpin-veth) or
`promiscMode` (promiscuous-bridge, kubenet's default). The bridge masquerades the pods' traffic that
leaves the pod CIDR (`ipMasq`), where kubenet's own iptables rule masqueraded what left
`--non-masquerade-cidr`. Without a podCIDR on the Node object there is nothing to allocate from, and
the flag stays a blocker.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from shimshift.model.facts import NodeFacts

#: the file the configure step writes in containerd's CNI conf_dir; `00-` so that containerd, which
#: loads the first configuration by name, loads it rather than a leftover another CNI left there
KUBENET_FILE = "00-shimshift-kubenet.conflist"
#: the CNI plugins the configuration runs (and loopback, which containerd's CRI runs for every pod)
KUBENET_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
KUBENET_BRIDGE = "cbr0"


def _flag(flags: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in flags if n == name), None)


def kubenet_node(facts: NodeFacts) -> bool:
    """The node's kubelet (or cri-dockerd, on 1.24+) runs dockershim's kubenet."""
    value = _flag(facts.kubelet.flags, "network-plugin")
    if value is None:
        value = _flag(facts.cri_dockerd_flags, "network-plugin")
    return value == "kubenet"


def pod_cidrs(facts: NodeFacts) -> tuple[str, ...]:
    """The Node's podCIDRs that are networks (IPv4 and IPv6), normalised; () when it has none."""
    out: list[str] = []
    for cidr in facts.pod_cidrs:
        try:
            out.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            continue
    return tuple(dict.fromkeys(out))


def kubenet_config(cidrs: Sequence[str], hairpin_mode: str | None = None) -> str:
    """The conflist of kubenet's network on `cidrs` (the Node's podCIDRs)."""
    routes = []
    for cidr in cidrs:
        dst = "0.0.0.0/0" if ipaddress.ip_network(cidr).version == 4 else "::/0"
        routes.append({"dst": dst})
    bridge: dict[str, object] = {
        "type": "bridge",
        "bridge": KUBENET_BRIDGE,
        "isGateway": True,
        "ipMasq": True,
    }
    if hairpin_mode == "hairpin-veth":
        bridge["hairpinMode"] = True
    elif hairpin_mode in (None, "", "promiscuous-bridge"):
        bridge["promiscMode"] = True
    bridge["ipam"] = {
        "type": "host-local",
        "ranges": [[{"subnet": cidr}] for cidr in cidrs],
        "routes": routes,
    }
    doc = {
        "cniVersion": "0.4.0",
        "name": "kubenet",
        "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}],
    }
    return json.dumps(doc, indent=2) + "\n"


def kubenet_translation(facts: NodeFacts) -> str | None:
    """The configuration kubenet's network becomes on this node, or None (not kubenet, or no podCIDR)."""
    if not kubenet_node(facts):
        return None
    cidrs = pod_cidrs(facts)
    if not cidrs:
        return None
    hairpin = _flag(facts.kubelet.flags, "hairpin-mode") or _flag(facts.cri_dockerd_flags, "hairpin-mode")
    return kubenet_config(cidrs, hairpin)
