"""A kubenet node (`--network-plugin=kubenet`) gets kubenet's bridge network as a CNI configuration in
containerd's conf_dir, on the Node's podCIDR: the plan shows the file in its diff and a carry-over row,
blocks nothing and warns that the pods' traffic is masqueraded as kubenet did not; without a podCIDR
the flag stays a blocker saying so."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shimshift.model.kubenet import KUBENET_FILE, kubenet_config
from shimshift.planning.build import build_plan
from shimshift.planning.report import PlanReport
from shimshift.steps.facts.parse import parse_facts
from tests.unit.planning.factory import cluster, node, spec
from tests.unit.playbooks.probe import node_files, probe_output

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
PATH = f"/etc/cni/net.d/{KUBENET_FILE}"
PLUGINS = "bridge\nhost-local\nloopback\nportmap\n"


#: a node's interfaces as the probe lists them (name, MTU, flags): lo, an ens5 up at 9001, a cbr0 up at
#: 1450 (kubenet made it), a wireguard tunnel (point-to-point) at 1420, a down interface at 1280
LINKS = "lo 65536 0x9\nens5 9001 0x1003\ncbr0 1450 0x1003\nwg0 1420 0x91\nens6 1280 0x1002\n"


def plan(
    cidr: str | None,
    bins: str = PLUGINS,
    leftover: bool = False,
    hairpin: str = "",
    links: str | None = None,
) -> PlanReport:
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files["/var/lib/kubelet/kubeadm-flags.env"] = (
        f'KUBELET_KUBEADM_ARGS="--network-plugin=kubenet {hairpin} '
        '--pod-infra-container-image=k8s.gcr.io/pause:3.6"\n'
    )
    overrides = {
        "cni-conf:/etc/cni/net.d": ("10-old.conflist\n" if leftover else "", "0"),
        "cni-bin:/opt/cni/bin": (bins, "0"),
    }
    if links is not None:
        overrides["links"] = (links, "0")
    if leftover:
        overrides["cnifile:/etc/cni/net.d/10-old.conflist"] = (
            json.dumps({"name": "old", "plugins": [{"type": "bridge"}]}),
            "0",
        )
    facts = parse_facts("n1", probe_output(files, overrides=overrides), kubelet_version="v1.23.17")
    raw: dict[str, Any] = node("n1")
    if cidr:
        raw["spec"]["podCIDR"] = cidr
    return build_plan(spec(), cluster(nodes=[raw]), {"n1": facts}, NOW)


def written(report: PlanReport) -> dict[str, Any]:
    (n,) = report.nodes
    (change,) = [c for c in n.containerd.changes if c.path == PATH]
    assert change.before is None and change.after is not None
    doc: dict[str, Any] = json.loads(change.after)
    return doc


def test_kubenet_becomes_a_bridge_configuration_on_the_nodes_pod_cidr_and_blocks_nothing() -> None:
    report = plan("10.244.3.0/24")
    assert report.blockers == ()
    # what is not as it was: the masquerading, a warning that counts in the verdict
    (warning,) = [f for f in report.warnings if f.subject == "--network-plugin"]
    assert warning.code == "KubeletFlagNotCarried" and "masquerades" in warning.message
    assert [f.code for f in report.warnings] == ["KubeletFlagNotCarried"]
    doc = written(report)
    bridge, portmap = doc["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"]) == ("bridge", "cbr0", True)
    assert bridge["promiscMode"] is True  # kubenet's default hairpin mode, promiscuous-bridge
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.3.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    assert portmap["type"] == "portmap" and portmap["capabilities"] == {"portMappings": True}
    (n,) = report.nodes
    (row,) = [c for c in n.containerd.carryover if c.source == "kubelet --network-plugin"]
    assert row.carried and PATH in row.outcome and "10.244.3.0/24" in row.outcome
    (change,) = [c for c in n.containerd.changes if c.path == PATH]
    assert '+  "name": "kubenet",' in change.diff


def test_without_a_pod_cidr_kubenet_stays_a_blocker_that_says_why() -> None:
    report = plan(None)
    (b,) = [f for f in report.blockers if f.subject == "--network-plugin"]
    assert b.code == "KubeletFlagRefused" and "no spec.podCIDR" in b.message
    assert "--allocate-node-cidrs" in b.advice
    (n,) = report.nodes
    assert not [c for c in n.containerd.changes if c.path == PATH]


def test_missing_plugins_are_named_and_a_leftover_configuration_is_the_one_ignored() -> None:
    report = plan("10.244.3.0/24", bins="bridge\nloopback\n", leftover=True)
    missing = [f for f in report.warnings if f.code == "CniPluginsMissing"]
    assert len(missing) == 1 and "host-local, portmap" in missing[0].message
    (ignored,) = [f for f in report.warnings if f.code == "CniConfigsIgnored"]
    assert f"it loads {KUBENET_FILE} and ignores 10-old.conflist" in ignored.message


def test_hairpin_veth_and_dual_stack() -> None:
    doc = json.loads(kubenet_config(["10.244.3.0/24", "fd00:10:244:3::/64"], "hairpin-veth"))
    bridge = doc["plugins"][0]
    assert bridge["hairpinMode"] is True and "promiscMode" not in bridge
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:244:3::/64"}]]
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    assert written(plan("10.244.3.0/24", hairpin="--hairpin-mode=hairpin-veth"))["plugins"][0]["hairpinMode"]


def test_the_bridge_keeps_kubenets_mtu_the_flags_else_the_smallest_of_the_nodes_interfaces() -> None:
    # without the flag kubenet took the smallest MTU of the interfaces up (not loopback, not
    # point-to-point): 1450 here, where the bridge plugin alone would leave the kernel's 1500
    (bridge, _) = written(plan("10.244.3.0/24", links=LINKS))["plugins"]
    assert bridge["mtu"] == 1450
    # --network-plugin-mtu wins, and is carried, not reported as lost
    report = plan("10.244.3.0/24", hairpin="--network-plugin-mtu=8950", links=LINKS)
    (bridge, _) = written(report)["plugins"]
    assert bridge["mtu"] == 8950
    assert not [f for f in (*report.warnings, *report.blockers) if f.subject == "--network-plugin-mtu"]
    # no suitable interface: kubenet's own fallback
    (bridge, _) = written(plan("10.244.3.0/24", links="lo 65536 0x9\n"))["plugins"]
    assert bridge["mtu"] == 1460
    # facts from a probe that did not list the interfaces: no mtu key (the kernel's), as before
    (bridge, _) = written(plan("10.244.3.0/24"))["plugins"]
    assert "mtu" not in bridge


def test_the_mtu_flag_on_a_cni_node_is_nothing_lost() -> None:
    from shimshift.model.dockerera import Fate, kubelet_flag_fate

    assert kubelet_flag_fate("network-plugin-mtu", "1450").fate is Fate.IRRELEVANT
    assert kubelet_flag_fate("network-plugin-mtu", "1450", pod_cidrs=("10.0.0.0/24",), kubenet=True).fate is (
        Fate.TRANSLATED
    )
    assert kubenet_config(["10.0.0.0/24"], mtu=1400).count('"mtu": 1400') == 1
