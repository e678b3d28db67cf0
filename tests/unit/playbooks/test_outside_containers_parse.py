"""The probe's list of Docker's running containers: the kubelet's (dockershim's label or `k8s_` name)
are left out, the rest are named with image and restart policy, bounded; RKE1, k3s and RKE2 nodes are
recognised from what they leave on the node."""

from __future__ import annotations

import json

from shimshift.model.facts import Distribution, NodeFacts
from shimshift.model.factsjson import facts_from_json_text, facts_from_mapping, facts_to_json_text
from shimshift.steps.facts.parse import parse_facts
from tests.unit.playbooks.probe import node_files, probe_output

# what `docker inspect --format '[{{json .Name}},{{json .Config.Image}},
# {{json .HostConfig.RestartPolicy.Name}},{{json .Config.Labels}}]'` prints on a dockershim node
KUBE_PROXY = (
    '["/k8s_kube-proxy_kube-proxy-x7_kube-system_0a1b_0","sha256:'
    + "d" * 64
    + '","no",{"annotation.io.kubernetes.container.hash":"6c0a6c5b","io.kubernetes.container.logpath":'
    '"/var/log/pods/kube-system_kube-proxy-x7_0a1b/kube-proxy/0.log","io.kubernetes.container.name":'
    '"kube-proxy","io.kubernetes.docker.type":"container","io.kubernetes.pod.name":"kube-proxy-x7",'
    '"io.kubernetes.pod.namespace":"kube-system","io.kubernetes.pod.uid":"0a1b"}]'
)
PAUSE = (
    '["/k8s_POD_kube-proxy-x7_kube-system_0a1b_0","k8s.gcr.io/pause:3.6","no",'
    '{"io.kubernetes.docker.type":"podsandbox","io.kubernetes.pod.name":"kube-proxy-x7",'
    '"io.kubernetes.pod.namespace":"kube-system","io.kubernetes.pod.uid":"0a1b","k8s-app":"kube-proxy"}]'
)
REGISTRY = '["/registry","registry:2","always",{}]'
ETCD = '["/etcd","quay.io/coreos/etcd:v3.4.13","unless-stopped",null]'
RKE_KUBELET = (
    '["/kubelet","rancher/hyperkube:v1.20.15-rancher1","always",{"io.rancher.rke.container.name":"kubelet"}]'
)


def _facts(running: str, *, status: str = "0", exists: tuple[str, ...] = ()) -> NodeFacts:
    output = probe_output(node_files("kubeadm-systemd"), overrides={"docker-running": (running, status)})
    extra = "".join(f"exists:{p}\t\t0\n" for p in exists)
    output = output.replace("shimshift-facts\tend\n", extra + "shimshift-facts\tend\n")
    return parse_facts("n1", output, kubelet_version="v1.23.17")


def test_only_containers_the_kubelet_did_not_create_are_listed_with_image_and_restart_policy() -> None:
    facts = _facts("\n".join([KUBE_PROXY, PAUSE, REGISTRY, ETCD]) + "\n")

    assert [(c.name, c.image, c.restart_policy) for c in facts.outside_containers] == [
        ("etcd", "quay.io/coreos/etcd:v3.4.13", "unless-stopped"),
        ("registry", "registry:2", "always"),
    ]
    assert facts.outside_containers_more == 0
    assert facts.distribution is None
    assert facts.unreadable == {}


def test_a_k8s_name_without_the_label_is_still_the_kubelets() -> None:
    facts = _facts('["/k8s_app_web-1_default_9f_0","nginx:1.25","no",{}]\n')
    assert facts.outside_containers == ()


def test_the_list_is_bounded_and_the_rest_is_counted() -> None:
    lines = [f'["/job-{i:03}","busybox:1.36","no",{{}}]' for i in range(57)]
    facts = _facts("\n".join(lines) + "\n")

    assert len(facts.outside_containers) == 50
    assert facts.outside_containers[0].name == "job-000"
    assert facts.outside_containers_more == 7


def test_a_node_without_running_containers_lists_none() -> None:
    facts = _facts("")
    assert facts.outside_containers == () and facts.unreadable == {}


def test_a_failed_or_foreign_listing_is_named_not_guessed() -> None:
    assert _facts("", status="124").unreadable == {"docker containers outside the kubelet": "timed out"}
    garbled = _facts("registry registry:2 always\n" + REGISTRY + "\n")
    assert [c.name for c in garbled.outside_containers] == ["registry"]
    assert "docker inspect" in garbled.unreadable["docker containers outside the kubelet"]


def test_rke1_is_recognised_by_its_kubelet_container() -> None:
    facts = _facts(RKE_KUBELET + "\n")
    assert facts.distribution == Distribution.RKE1
    assert "rancher/hyperkube" in facts.distribution_evidence


def test_a_kubelet_container_of_another_image_is_rke1_only_with_rkes_certificates() -> None:
    line = '["/kubelet","registry.corp/kubelet:v1.21.14","always",{}]\n'
    assert _facts(line).distribution is None
    assert _facts(line, exists=("/etc/kubernetes/ssl",)).distribution == Distribution.RKE1


def test_k3s_and_rke2_are_recognised_by_their_files() -> None:
    assert _facts("", exists=("/usr/local/bin/k3s",)).distribution == Distribution.K3S
    rke2 = _facts("", exists=("/var/lib/rancher/rke2", "/etc/rancher/rke2"))
    assert rke2.distribution == Distribution.RKE2
    assert rke2.distribution_evidence == "/var/lib/rancher/rke2 and /etc/rancher/rke2 exist"
    assert _facts("", exists=("/etc/kubernetes/ssl",)).distribution is None


def test_facts_round_trip_and_old_facts_files_without_the_fields_still_load() -> None:
    facts = _facts(REGISTRY + "\n" + RKE_KUBELET + "\n")
    assert facts_from_json_text(facts_to_json_text(facts)) == facts

    old = json.loads(facts_to_json_text(facts))
    for key in ("outside_containers", "outside_containers_more", "distribution", "distribution_evidence"):
        del old[key]
    loaded = facts_from_mapping(old)
    assert loaded.outside_containers == () and loaded.distribution is None
