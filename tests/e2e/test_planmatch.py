"""The plan predicts what Migrate mode then does, on the testbed (the real API server behind the
fault proxy, fake nodes with real sshd, containerd and dockerd whose model kubelets register with it,
each with its node certificate, the operator as a separate process and the chart's ServiceAccount).

A live plan probes two nodes over SSH and says which files the migration writes and with which bytes
(containerd config.toml, certs.d hosts.toml, the kubelet flags file, an admin's kubelet drop-in with a
dockershim flag). Then the operator migrates the same nodes with the same spec in Migrate mode, and
every file on the node must be byte for byte what the plan said; the plan had no blockers, and the migration succeeded.

The kubeadm-systemd node combines several Docker-era settings at once, each with its own translation:
the nvidia runtime (a stand-in that runs runc) as Docker's default with default-ulimits, an open-file
limit raised on the running containerd, json-file rotation in log-opts and an HTTP proxy in a
docker.service drop-in. The plan's files for them (containerd's runtime and base spec, its limits and
proxy drop-ins, the kubelet's log rotation) are then the node's, byte for byte.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.nodes import Cluster

from shimshift.entry.plancli import probe_facts
from shimshift.model import keys, parse_nodemigration
from shimshift.model.status import NodePhase, Phase
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import build_cluster
from shimshift.planning.snapshot import CONTROLLER_KINDS
from shimshift.resources import load_crd
from tests.e2e.conftest import Operator, eventually, operator_namespace, raw_status, secret
from tests.e2e.realapi import RealCluster, RealStack
from tests.integration.remote.test_migrate_runtimes import gpu_node

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.root, pytest.mark.timeout(280)]

SCRATCH_PROFILES = ["kubeadm-systemd", "kubespray"]
DROP_IN = "/etc/systemd/system/kubelet.service.d/20-volume.conf"


@pytest.fixture(scope="module")
def stack(
    scratch_cluster: Cluster, realapi_stack: RealStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, RealCluster]]:
    """The nodes' kubelets registered with the session's control plane; at the end they are stopped
    before the Nodes are deleted (a kubelet would register its Node again)."""
    if not realapi_stack.chart_present():
        realapi_stack.install_chart()
    plane = realapi_stack.plane
    api = RealCluster(realapi_stack, tmp_path_factory.mktemp("match"))
    try:
        scratch_cluster.attach_api(plane.url, plane.admin_kubeconfig, node_kubeconfig=plane.node_kubeconfig)
        yield scratch_cluster, api
        refused = {k: n for k, n in api.answers().items() if k[3] == 403}
        assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"
    finally:
        api.close()
        for n in scratch_cluster.nodes:
            n.exec(["systemctl", "stop", "kubelet"], timeout=60)
        api.proxy.reset()
        api.api.reset()
        realapi_stack.clear_events()


DOCKER_PROXY = "/etc/systemd/system/docker.service.d/http-proxy.conf"
PROXY_UNIT = """\
[Service]
Environment="HTTP_PROXY=http://proxy.shimshift.test:3128" "HTTPS_PROXY=http://proxy.shimshift.test:3128"
Environment="NO_PROXY=localhost,127.0.0.1,10.0.0.0/8,.svc,.cluster.local,registry.shimshift.test"
"""


def combine_settings(node: Any) -> None:
    """Docker's rotation and proxy on the node, then its nvidia runtime and limits (Docker restarted
    with them all: the files are ones a real dockerd 20.10 runs with)."""
    daemon = json.loads(node.read(keys.DOCKER_DAEMON_JSON))
    daemon["log-driver"] = "json-file"
    daemon["log-opts"] = {"max-size": "100m", "max-file": "3"}
    node.view(keys.DOCKER_DAEMON_JSON).write_text(json.dumps(daemon, indent=2) + "\n")
    node.view(DOCKER_PROXY).parent.mkdir(parents=True, exist_ok=True)
    node.view(DOCKER_PROXY).write_text(PROXY_UNIT)
    gpu_node(node)  # restarts Docker with every setting above


def _runtime(api: Any, name: str) -> str:
    node = api.get("nodes", name) or {}
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", ""))


def test_the_files_migrate_mode_writes_are_the_ones_the_plan_showed(
    stack: tuple[Cluster, RealCluster], tmp_path: Path
) -> None:
    from shimshift.kube.snapshot import read_cluster_from

    nodes, api = stack
    # a Kubespray node that also sets kubelet flags in an admin's drop-in: the switch takes the
    # dockershim-only one out of that file, as the plan shows
    kubespray = next(n for n in nodes.nodes if n.profile.name == "kubespray")
    kubespray.view(DROP_IN).parent.mkdir(parents=True, exist_ok=True)
    kubespray.view(DROP_IN).write_text(
        "[Service]\n"
        'Environment="KUBELET_VOLUME_PLUGIN=--image-pull-progress-deadline=2m '
        '--volume-plugin-dir=/usr/libexec/kubernetes/kubelet-plugins/volume/exec"\n'
    )
    namespace = operator_namespace(api)  # the operator's Secrets, where the plan probes from too
    names = [n.name for n in nodes.nodes]
    eventually(lambda: all(_runtime(api, n).startswith("docker://") for n in names), 60, "kubelets on Docker")
    combined = next(n for n in nodes.nodes if n.profile.name == "kubeadm-systemd")
    combine_settings(combined)
    api.seed(
        [
            secret("ssh", "ssh-privatekey", nodes.private_key.read_text(), namespace),
            secret("known-hosts", "known_hosts", nodes.known_hosts.read_text(), namespace),
        ]
    )
    body = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "match"},
        "spec": {
            "mode": "Migrate",
            "nodeNames": names,
            "rollout": {"maxUnavailable": 2},
            "ssh": {
                "user": "root",
                "port": nodes.ssh_port,
                "privateKeySecretRef": {"name": "ssh"},
                "knownHostsSecretRef": {"name": "known-hosts"},
            },
        },
    }
    migration = parse_nodemigration(body, load_crd())

    # The plan, exactly as `shimshift plan --probe-namespace <the operator's>` builds it.
    objects = read_cluster_from(str(api.kubeconfig), None)
    controllers = [o for kind in CONTROLLER_KINDS for o in objects.get(kind, [])]
    cluster = build_cluster(objects["nodes"], objects["pods"], objects["poddisruptionbudgets"], controllers)
    args = argparse.Namespace(kubeconfig=str(api.kubeconfig), context=None, probe_namespace=namespace)
    facts = probe_facts(args, migration, names, io.StringIO())
    report = build_plan(migration.spec, cluster, facts, dt.datetime.now(dt.UTC), name="match")
    assert not report.blockers, [f.message for f in report.blockers]
    predicted = {
        (n.name, c.path): c.after
        for n in report.nodes
        for c in (*n.containerd.changes, *n.kubelet.changes)
        if c.changed and not c.secret
    }
    assert {path for _, path in predicted} >= {"/etc/containerd/config.toml"}
    assert any("kubelet" in path for _, path in predicted)
    # the combined node's settings, each in the file the plan says the migration writes
    mine = {path: text for (name, path), text in predicted.items() if name == combined.name}
    assert 'default_runtime_name = "nvidia"' in (mine[keys.CONTAINERD_CONFIG] or ""), mine.keys()
    assert "RLIMIT_NOFILE" in (mine.get(keys.CONTAINERD_BASE_SPEC) or ""), mine.keys()
    assert "LimitNOFILE=20000" in (mine.get(keys.CONTAINERD_LIMITS_DROPIN) or ""), mine.keys()
    assert "HTTP_PROXY=http://proxy.shimshift.test:3128" in (mine.get(keys.CONTAINERD_PROXY_DROPIN) or "")
    assert any("containerLogMaxSize: 100Mi" in (t or "") for t in mine.values()), mine.keys()
    drop_in = predicted[kubespray.name, DROP_IN] or ""
    assert "--image-pull-progress-deadline" not in drop_in and "--volume-plugin-dir" in drop_in

    stack_ = api.stack
    operator = Operator(
        api.operator_kubeconfig,
        tmp_path,
        {k: v for k, v in stack_.operator_env(tmp_path / "sim").items() if not k.startswith("SHIMSHIFT_SIM")},
        ssh=True,
        run_args=[*stack_.chart_args(), "--metrics-port=0"],
    )
    operator.start()
    try:
        api.seed(body)

        def settled() -> Any:
            phase = ((api.get("nodemigrations.shimshift.io", "match") or {}).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 220, "the migration to settle", 0.5)
    finally:
        operator.stop()
    status = raw_status(api, "match")
    assert phase == Phase.SUCCEEDED, (status, operator.logs()[-3000:])
    assert all(r["phase"] == NodePhase.SUCCEEDED for r in status["nodes"])

    by_name = {n.name: n for n in nodes.nodes}
    written = {(name, path): by_name[name].view(path).read_text() for name, path in predicted}
    assert written == predicted
