"""containerd's CRI loads the CNI configurations of its conf_dir by name, the first max_conf_num (1):
the plan warns about the ones it ignores, blocks a node with none unless a CNI DaemonSet writes one,
and warns about plugin types missing from the bin directories. The probe lists what it needs."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from shimshift.model.facts import KubeletFacts, NodeFacts
from shimshift.model.factsjson import facts_from_json_text, facts_to_json_text
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import OwnerRef, Pod, Volume
from shimshift.planning.cni import cni_findings, containerd_cni
from shimshift.planning.findings import Level
from shimshift.planning.report import PlanReport, Verdict
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.filesection import FileChange, FileSection
from tests.unit.planning.factory import cluster, node, pod, spec
from tests.unit.playbooks.probe import node_files, probe_output

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)

SCRIPTS = Path(__file__).resolve().parents[3] / "operator" / "shimshift" / "data" / "playbooks" / "scripts"
CALICO = json.dumps({"name": "k8s-pod-network", "plugins": [{"type": "calico"}, {"type": "portmap"}]})
FLANNEL = json.dumps({"name": "cbr0", "plugins": [{"type": "flannel"}, {"type": "portmap"}]})
BRIDGE = json.dumps({"name": "bridge", "type": "bridge"})
BINS = {"/opt/cni/bin": ("bridge", "calico", "host-local", "loopback", "portmap")}


def _facts(
    configs: dict[str, str], bins: dict[str, tuple[str, ...]] | None = None, **fields: object
) -> NodeFacts:
    return NodeFacts(
        node="n1",
        cni_conf_dirs={"/etc/cni/net.d": tuple(sorted(configs))},
        cni_configs={f"/etc/cni/net.d/{n}": t for n, t in configs.items()},
        cni_bin_dirs=BINS if bins is None else bins,
        **fields,  # type: ignore[arg-type]
    )


def _config(toml: str) -> FileSection:
    return FileSection(True, "", (FileChange("/etc/containerd/config.toml", None, toml),))


def test_one_config_whose_plugins_are_all_there_is_clean() -> None:
    assert cni_findings(_facts({"10-calico.conflist": CALICO}), None) == []


def test_a_second_config_is_a_warning_naming_the_one_containerd_loads() -> None:
    (f,) = cni_findings(_facts({"10-flannel.conflist": FLANNEL, "10-calico.conflist": CALICO}), None)

    assert (f.code, f.level, f.subject) == ("CniConfigsIgnored", Level.WARNING, "/etc/cni/net.d")
    # libcni sorts by name: calico before flannel
    assert "loads 10-calico.conflist and ignores 10-flannel.conflist" in f.message
    assert "max_conf_num 1" in f.message and "max_conf_num" in f.advice


def test_max_conf_num_zero_loads_every_config() -> None:
    toml = '[plugins."io.containerd.grpc.v1.cri".cni]\nmax_conf_num = 0\n'
    facts = _facts({"10-calico.conflist": CALICO, "20-bridge.conf": BRIDGE})
    assert cni_findings(facts, _config(toml)) == []


def test_no_config_blocks_unless_a_cni_daemonset_mounts_the_directory() -> None:
    (f,) = cni_findings(_facts({}), None)
    assert (f.code, f.level) == ("CniConfigMissing", Level.BLOCKER)
    assert "NotReady" in f.message

    agent = Pod(
        "kube-system",
        "calico-node-x",
        "n1",
        owner=OwnerRef("DaemonSet", "calico-node"),
        volumes=(Volume("cni-net-dir", host_path="/etc/cni/net.d"),),
    )
    other = Pod(
        "kube-system", "p", "n1", owner=OwnerRef("DaemonSet", "logs"), volumes=(Volume("v", "/var/log"),)
    )
    (f,) = cni_findings(_facts({}), None, [other, agent])
    assert (f.code, f.level) == ("CniConfigAwaited", Level.WARNING)
    assert "calico-node" in f.message and "NotReady" in f.message and "logs" not in f.message


def test_plugin_types_missing_from_the_bin_dirs_are_named() -> None:
    (f,) = cni_findings(_facts({"10-flannel.conflist": FLANNEL}), None)
    assert (f.code, f.level) == ("CniPluginsMissing", Level.WARNING)
    assert "flannel" in f.message and "portmap" not in f.message and "/opt/cni/bin" in f.message


def test_ipam_plugins_are_plugin_binaries_too() -> None:
    conf = json.dumps({"name": "b", "type": "bridge", "ipam": {"type": "whereabouts"}})
    (f,) = cni_findings(_facts({"10-bridge.conf": conf}), None)
    assert f.code == "CniPluginsMissing" and "plugin(s) whereabouts, which" in f.message


def test_carried_directories_come_from_the_rendered_config() -> None:
    toml = (
        'version = 3\n[plugins."io.containerd.cri.v1.runtime".cni]\n'
        'bin_dirs = ["/opt/cni/bin", "/usr/libexec/cni"]\nconf_dir = "/etc/kubernetes/cni/net.d"\n'
    )
    assert containerd_cni(tomllib.loads(toml)) == (
        "/etc/kubernetes/cni/net.d",
        ("/opt/cni/bin", "/usr/libexec/cni"),
        1,
    )
    facts = NodeFacts(
        node="n1",
        cni_conf_dirs={"/etc/cni/net.d": (), "/etc/kubernetes/cni/net.d": ("10-flannel.conflist",)},
        cni_configs={"/etc/kubernetes/cni/net.d/10-flannel.conflist": FLANNEL},
        cni_bin_dirs={"/opt/cni/bin": ("portmap",), "/usr/libexec/cni": ("flannel",)},
    )
    assert cni_findings(facts, _config(toml)) == []


def test_unrendered_config_uses_the_directories_carried_from_the_kubelet_flags() -> None:
    facts = NodeFacts(
        node="n1",
        kubelet=KubeletFacts(flags=(("cni-conf-dir", "/etc/kubernetes/cni/net.d"),)),
        cni_conf_dirs={"/etc/cni/net.d": ("10-calico.conflist",), "/etc/kubernetes/cni/net.d": ()},
    )
    (f,) = cni_findings(facts, None)
    assert (f.code, f.subject) == ("CniConfigMissing", "/etc/kubernetes/cni/net.d")


def test_a_loaded_config_containerd_cannot_read_is_a_blocker() -> None:
    (f,) = cni_findings(_facts({"05-broken.conf": '{"name": "x"}', "10-calico.conflist": CALICO}), None)[-1:]
    assert (f.code, f.level, f.subject) == (
        "CniConfigInvalid",
        Level.BLOCKER,
        "/etc/cni/net.d/05-broken.conf",
    )


def test_facts_without_cni_listings_give_no_finding() -> None:
    assert cni_findings(NodeFacts(node="n1"), None) == []


def test_parse_reads_the_cni_records() -> None:
    out = probe_output(
        {},
        overrides={
            "cni-conf:/etc/cni/net.d": ("10-flannel.conflist\n05-x.conf\n", "0"),
            "cnifile:/etc/cni/net.d/10-flannel.conflist": (FLANNEL, "0"),
            "cni-conf:/etc/kubernetes/cni/net.d": ("", "missing"),
            "cni-bin:/opt/cni/bin": ("flannel\nportmap\n", "0"),
            "cni-bin:/usr/libexec/cni": ("", "2"),
        },
    )
    facts = parse_facts("n1", out)
    assert facts.cni_conf_dirs == {
        "/etc/cni/net.d": ("05-x.conf", "10-flannel.conflist"),
        "/etc/kubernetes/cni/net.d": (),
    }
    assert facts.cni_configs == {"/etc/cni/net.d/10-flannel.conflist": FLANNEL}
    assert facts.cni_bin_dirs == {"/opt/cni/bin": ("flannel", "portmap")}
    assert facts.unreadable["CNI directory /usr/libexec/cni"] == "exit status 2"


def test_the_probe_lists_configs_and_plugins_of_the_flagged_directories(tmp_path: Path) -> None:
    """The CNI block of facts.sh, run with the default directories moved under tmp_path."""
    text = (SCRIPTS / "facts.sh").read_text()
    block = re.search(r"^# CNI: .*?^done\n.*?^done\n", text, re.M | re.S)
    assert block is not None
    conf, bins = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    bins.mkdir()
    (conf / "10-calico.conflist").write_text(CALICO)
    (conf / "99-notes.txt").write_text("x")
    (bins / "calico").write_text("")
    script = block.group(0).replace("/etc/cni/net.d $confdirs", f"{conf}/ $confdirs")
    script = script.replace("/opt/cni/bin $bindirs", f"{bins} $bindirs")
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=20)
    facts = parse_facts("n1", "shimshift-facts\t1\n" + run.stdout + "shimshift-facts\tend\n")
    assert facts.cni_conf_dirs == {str(conf): ("10-calico.conflist",)}
    assert facts.cni_configs == {f"{conf}/10-calico.conflist": CALICO}
    assert facts.cni_bin_dirs == {str(bins): ("calico",)}


def _plan(cni: dict[str, tuple[str, str]], pods: list[dict[str, Any]] | None = None) -> PlanReport:
    facts = parse_facts(
        "n1", probe_output(node_files("kubeadm-systemd"), overrides=cni), kubelet_version="v1.23.17"
    )
    return build_plan(spec(), cluster(nodes=[node("n1")], pods=pods), {"n1": facts}, NOW)


def test_the_plan_counts_cni_findings_in_its_verdict() -> None:
    report = _plan(
        {
            "cni-conf:/etc/cni/net.d": ("10-flannel.conflist\n10-calico.conflist\n", "0"),
            "cnifile:/etc/cni/net.d/10-calico.conflist": (CALICO, "0"),
            "cnifile:/etc/cni/net.d/10-flannel.conflist": (FLANNEL, "0"),
            "cni-bin:/opt/cni/bin": ("calico\nportmap\n", "0"),
        }
    )
    (f,) = [w for w in report.warnings if w.code == "CniConfigsIgnored"]
    assert f.node == "n1" and "ignores 10-flannel.conflist" in f.message
    assert report.summary.verdict != Verdict.CLEAN


def test_the_plan_sees_a_cni_daemonset_pod_on_the_node() -> None:
    cni = {"cni-conf:/etc/cni/net.d": ("", "0"), "cni-bin:/opt/cni/bin": ("", "missing")}
    assert [b.code for b in _plan(cni).blockers if b.code.startswith("Cni")] == ["CniConfigMissing"]
    agent = pod("canal-x", owner=("DaemonSet", "canal"), host_paths={"cni-net-dir": "/etc/cni"})
    report = _plan(cni, [agent])
    assert not [b for b in report.blockers if b.code.startswith("Cni")]
    assert [w.code for w in report.warnings if w.code.startswith("Cni")] == ["CniConfigAwaited"]


def test_cni_facts_survive_a_facts_file() -> None:
    facts = _facts({"10-calico.conflist": CALICO})
    assert facts_from_json_text(facts_to_json_text(facts)) == facts
