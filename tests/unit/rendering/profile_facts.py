"""NodeFacts of a testbed node profile, built from the very files the testbed writes on such a node.

`examples/facts/<profile>.json` are these facts as files (regenerate with SHIMSHIFT_REGEN_GOLDEN=1);
a test checks they still agree with testbed/nodes/profiles.py.
"""

from __future__ import annotations

import json

from testbed.nodes.layout import REGISTRY_HOST
from testbed.nodes.profiles import PROFILES, ProfileName, render_node_files

from shimshift.model.facts import DockerCertFiles, KubeletFacts, KubeletLayout, NodeFacts, Setting

#: A fixed CA certificate for example facts (what a probe of a testbed node reads from certs.d); a real
#: X.509 certificate (valid 2026-2126), since shimshift refuses to carry anything else.
EXAMPLE_CA = """\
-----BEGIN CERTIFICATE-----
MIIBUzCB+6ADAgECAhQbC1jVUXGo+kRaI0YJh/gzKa560TAKBggqhkjOPQQDAjAf
MR0wGwYDVQQDDBRzaGltc2hpZnQgZXhhbXBsZSBDQTAgFw0yNjAxMDEwMDAwMDBa
GA8yMTI2MDEwMTAwMDAwMFowHzEdMBsGA1UEAwwUc2hpbXNoaWZ0IGV4YW1wbGUg
Q0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQFufoTCKaC4EcgDEAsvHpk9ZlI
SVExKCBnZYQuHzQvcS5Xmvaca13qFJ5ZaR7mxSdWYw4PlSmtWPdSVriD6hvwoxMw
ETAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIC6jzjF0w0M4bDxx
/Gruaf/WUXJXqztR0FABctvwvb14AiAYb5DqbqC3q0qU6FA7B0TSzKzWkh0bbV9T
2VM7o37BwA==
-----END CERTIFICATE-----
"""


def profile_facts(name: ProfileName) -> NodeFacts:
    p = PROFILES[name]
    node = f"{p.name.value}-1"
    files = render_node_files(p, node, "127.0.0.21", "127.0.0.1\tlocalhost\n", EXAMPLE_CA)
    certs = tuple(
        DockerCertFiles(host=path.split("/")[4], ca_certs={path: text})
        for path, text in sorted(files.items())
        if path.startswith("/etc/docker/certs.d/")
    )
    if p.layout == "kubespray":
        config_file = "/etc/kubernetes/kubelet-config.yaml"
        layout, flags_file = KubeletLayout.KUBESPRAY_ENV, "/etc/kubernetes/kubelet.env"
    elif p.layout == "cri-dockerd":
        config_file = "/var/lib/kubelet/config.yaml"
        layout, flags_file = KubeletLayout.KUBELET_CONFIGURATION, "/var/lib/kubelet/kubeadm-flags.env"
    else:
        config_file = "/var/lib/kubelet/config.yaml"
        layout, flags_file = KubeletLayout.KUBEADM_FLAGS, "/var/lib/kubelet/kubeadm-flags.env"
    flag = "pod-infra-container-image"
    return NodeFacts(
        node=node,
        os_release="Debian GNU/Linux 12 (bookworm)",
        docker_version="20.10.24+dfsg1",
        docker_running=True,
        docker_cgroup_driver=p.cgroup_driver,
        containerd_version=p.containerd_version,
        crictl_version=f"v{p.crictl}" if p.crictl else None,
        containerd_config=files["/etc/containerd/config.toml"],
        cri_enabled=False,
        daemon_json=json.loads(files["/etc/docker/daemon.json"]),
        docker_certs=certs,
        kubelet=KubeletFacts(
            version=f"v{p.kubelet_version}",
            layout=layout,
            flags_file=flags_file,
            config_file=config_file,
            cgroup_driver=Setting(p.cgroup_driver, config_file, "cgroupDriver"),
            pod_infra_image=Setting(p.sandbox_image, flags_file, f"--{flag}"),
        ),
    )


def all_profiles() -> list[ProfileName]:
    return list(ProfileName)


__all__ = ["REGISTRY_HOST", "all_profiles", "profile_facts"]
