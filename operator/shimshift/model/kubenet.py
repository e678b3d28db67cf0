"""dockershim's kubenet as a CNI configuration containerd's CRI loads. Pure values.

A kubelet started with `--network-plugin=kubenet` networks its pods with dockershim's built-in bridge:
kubenet ran the CNI plugins bridge (bridge `cbr0`, the node's gateway), host-local (addresses from the
Node's `spec.podCIDR`) and loopback itself, from a configuration it wrote nowhere. containerd has no
such plugin, so without a configuration in its CNI conf_dir the node goes NotReady after the switch
("cni plugin not initialized"). The translation writes kubenet's network as a conflist there: bridge
`cbr0` with `isGateway`, host-local IPAM on the Node's podCIDR(s) with a default route, and portmap
for hostPort (which dockershim's kubenet did with its own hostport code); containerd's CRI sets up
loopback itself. The kubelet's flags are read wherever they are set, its flags files and its systemd
units (`model.kubeletunits.command_flags`). The bridge's MTU is kubenet's: `--network-plugin-mtu`,
else the smallest MTU of the node's interfaces (up, not loopback or point-to-point, at least 576),
else 1460, as kubenet chose it (without it the bridge plugin would leave the kernel's 1500). kubenet's
`--hairpin-mode` becomes the bridge's `hairpinMode` (hairpin-veth) or `promiscMode`
(promiscuous-bridge, kubenet's default). The bridge masquerades the pods' traffic that leaves the pod
CIDR (`ipMasq`), where kubenet's own iptables rule masqueraded what left `--non-masquerade-cidr`.
Without a podCIDR on the Node object there is nothing to allocate from, and the flag stays a blocker.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from shimshift.model.facts import NodeFacts
from shimshift.model.kubeletunits import command_flags

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
    value = _flag(command_flags(facts.kubelet), "network-plugin")
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


#: kubenet's bridge MTU when no interface was suitable (kubenet_linux.go's fallbackMTU)
KUBENET_FALLBACK_MTU = 1460
#: the smallest MTU kubenet took from an interface
KUBENET_MIN_LINK_MTU = 576


def kubenet_mtu(facts: NodeFacts) -> tuple[int | None, str]:
    """The MTU of kubenet's bridge on this node and where it comes from: `--network-plugin-mtu` when
    it is above 0, else what kubenet chose itself (the smallest MTU of the node's interfaces, or 1460
    when none is suitable); (None, why) when the probe did not read the interfaces."""
    raw = _flag(command_flags(facts.kubelet), "network-plugin-mtu") or _flag(
        facts.cri_dockerd_flags, "network-plugin-mtu"
    )
    if raw is not None and raw.strip().isdigit() and int(raw) > 0:
        return int(raw), "--network-plugin-mtu"
    if facts.min_link_mtu is None:
        return None, "the node's interfaces were not probed"
    if facts.min_link_mtu >= KUBENET_MIN_LINK_MTU:
        return facts.min_link_mtu, "the smallest MTU of the node's interfaces, as kubenet chose it"
    return KUBENET_FALLBACK_MTU, "kubenet's fallback: no interface of the node was suitable"


def kubenet_config(cidrs: Sequence[str], hairpin_mode: str | None = None, mtu: int | None = None) -> str:
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
    if mtu is not None:
        bridge["mtu"] = mtu
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
    flags = command_flags(facts.kubelet)
    hairpin = _flag(flags, "hairpin-mode") or _flag(facts.cri_dockerd_flags, "hairpin-mode")
    return kubenet_config(cidrs, hairpin, kubenet_mtu(facts)[0])
