"""The operator's pod on a node with a real kubelet, migrated over SSH by `shimshift run`.

Two nodes on the real 1.24.17 control plane: one with the real kubelet 1.23.17 (dockershim), one with
the model kubelet. The operator's pod is the chart's pod shape (its downward API env, its `/tmp`
emptyDir and `shimshift.io/disposable-empty-dirs: tmp`) in a Deployment preferring the real node,
with a real container (`sleep`) that the real kubelet runs under Docker. The operator process is
started on the host with that pod's values resolved from the pod object (the container is not the
operator: stand-in). Then: the model node is migrated first; the real node last; its drain evicts the
pod, the real kubelet stops its container and confirms the deletion, the test SIGKILLs the operator
(as the kubelet would at the end of the grace period); the Deployment's replacement pod runs on the
migrated model node, its operator resumes the real node at its recorded step and finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from testbed import components
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.cluster import ControlPlane
from testbed.controlplane.fixtures import missing_component
from testbed.nodes import Cluster
from testbed.nodes.fixtures import missing_prerequisites
from testbed.nodes.realkubelet import OLD_CONTROL_PLANE, check_built

from shimshift.model.nodestate import child_name, record_of
from shimshift.model.timestamps import parse_iso
from shimshift.resources import load_crd, load_node_crd
from tests.e2e.conftest import Operator, eventually, secret
from tests.e2e.test_real_kubelet import APP_IMAGE, ready_runtime, ssh_migration

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(600)]

PROFILE = "kubeadm-cgroupfs"
LABELS = {"app.kubernetes.io/name": "shimshift", "app.kubernetes.io/component": "operator"}
FIELDS = {"metadata.name", "metadata.namespace", "spec.nodeName"}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, real_kubelet_host: None
) -> Iterator[tuple[ControlPlane, Cluster, RealKubeApi]]:
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"testbed nodes need {', '.join(missing)} (run scripts/setup as root)")
    try:
        check_built([PROFILE], OLD_CONTROL_PLANE)
    except components.ComponentMissing as e:
        missing_component(str(e))
    root = Path(tmp_path_factory.mktemp("e2eownpod"))
    plane = ControlPlane.up("e2eownpod", root=root / "controlplane", version=OLD_CONTROL_PLANE)
    try:
        with Cluster.up(
            "e2eownpod", [PROFILE, PROFILE], root=root / "nodes", real_kubelet=[True, False]
        ) as cluster:
            cluster.attach_api(
                plane.url,
                plane.admin_kubeconfig,
                node_kubeconfig=plane.node_kubeconfig,
                admin_kubeconfig=plane.admin_kubeconfig,
            )
            yield plane, cluster, RealKubeApi(plane.admin_kubeconfig)
    finally:
        plane.down()


def operator_deployment(prefer: str) -> dict[str, Any]:
    """The chart's pod shape: downward API env, /tmp emptyDir named disposable; a real `sleep`."""
    env = [
        {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for name, path in (
            ("SHIMSHIFT_NAMESPACE", "metadata.namespace"),
            ("SHIMSHIFT_POD_NAME", "metadata.name"),
            ("SHIMSHIFT_NODE_NAME", "spec.nodeName"),
        )
    ]
    preferred = {
        "weight": 100,
        "preference": {
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [prefer]}]
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shimshift", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {"shimshift.io/disposable-empty-dirs": "tmp"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "affinity": {
                        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [preferred]}
                    },
                    "containers": [
                        {
                            "name": "operator",
                            "image": APP_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sleep", "3600"],
                            "env": env,
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def on_docker(api: RealKubeApi, name: str) -> bool:
    return ready_runtime(api, name).startswith("docker://")


def downward(pod: dict[str, Any]) -> dict[str, str]:
    values = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "spec.nodeName": pod["spec"].get("nodeName") or "",
    }
    out = {}
    for var in pod["spec"]["containers"][0]["env"]:
        out[var["name"]] = values[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return out


def operator_pods(api: RealKubeApi) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
    return list(api.list("pods", namespace="default", label_selector=selector))


def running_on(api: RealKubeApi, node: str | None = None) -> dict[str, Any] | None:
    """The operator pod Running (a container running) and not deleting, on `node` when given."""
    for pod in operator_pods(api):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if pod["metadata"].get("deletionTimestamp") or not statuses:
            continue
        up = all("running" in (s.get("state") or {}) for s in statuses)
        if up and (node is None or pod["spec"].get("nodeName") == node):
            return pod
    return None


def test_the_operators_real_kubelet_node_goes_last_its_pod_is_evicted_and_the_replacement_finishes(
    stack: tuple[ControlPlane, Cluster, RealKubeApi], tmp_path: Path
) -> None:
    plane, cluster, api = stack
    real, model = cluster.nodes[0], cluster.nodes[1]
    for name in (real.name, model.name):
        eventually(partial(on_docker, api, name), 90, f"{name} Ready on Docker")
    api.seed([operator_deployment(real.name)])
    first = eventually(lambda: running_on(api), 120, "the operator's pod running")
    assert first["spec"]["nodeName"] == real.name, first["spec"]
    assert first["status"]["containerStatuses"][0]["containerID"].startswith("docker://")

    api.seed([load_crd(), load_node_crd()])
    api.seed(
        [
            secret("ssh", "ssh-privatekey", cluster.private_key.read_text()),
            secret("known-hosts", "known_hosts", cluster.known_hosts.read_text()),
        ]
    )
    env = downward(first)
    assert env["SHIMSHIFT_NODE_NAME"] == real.name
    operator = Operator(
        plane.admin_kubeconfig, tmp_path / "first", {**env, "SHIMSHIFT_NAMESPACE": "default"}, ssh=True
    )
    operator.workdir.mkdir()
    operator.start()
    replacement: Operator | None = None
    began = time.monotonic()
    try:
        manifest = ssh_migration(cluster, "own", [real.name, model.name])
        # no canary: the model kubelet runs no container, a canary there never completes
        del manifest["spec"]["verify"]
        api.seed([manifest])

        def evicted() -> bool:
            pod = api.get("pods", first["metadata"]["name"], "default")
            return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

        eventually(evicted, 400, "the drain to evict the operator's pod", 0.2)
        operator.kill()  # the kubelet stopped the pod: its operator is gone
        killed_at = time.monotonic() - began
        second = eventually(
            lambda: running_on(api, model.name), 120, "the replacement pod on the migrated node"
        )
        replacement = Operator(
            plane.admin_kubeconfig,
            tmp_path / "second",
            {**downward(second), "SHIMSHIFT_NAMESPACE": "default"},
            ssh=True,
        )
        replacement.workdir.mkdir()
        replacement.start()

        def settled() -> str | None:
            phase = ((api.get("nodemigrations.shimshift.io", "own") or {}).get("status") or {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed", "Paused") else None

        phase = eventually(settled, 400, "the migration to settle", 0.5)
    finally:
        operator.stop()
        if replacement is not None:
            replacement.stop()
    status = (api.get("nodemigrations.shimshift.io", "own") or {}).get("status") or {}
    logs = (replacement.logs() if replacement else operator.logs())[-4000:]
    assert phase == "Succeeded", (status, logs)
    records = {
        n: record_of(api.must_get("nodemigrationnodes.shimshift.io", child_name("own", n)))
        for n in (real.name, model.name)
    }
    started_real = parse_iso(records[real.name].started_at)
    finished_model = parse_iso(records[model.name].finished_at)
    assert started_real is not None and finished_model is not None and finished_model <= started_real
    assert ready_runtime(api, real.name).startswith("containerd://")
    assert ready_runtime(api, model.name).startswith("containerd://")
    for name in (real.name, model.name):
        assert not (api.get("nodes", name) or {}).get("spec", {}).get("unschedulable"), name
    # the evicted operator staged the node and drained it; its replacement switched and verified it;
    # neither did the other's steps again
    assert replacement is not None
    said = {"first": operator.logs(), "replacement": replacement.logs()}
    for step, who in (("configure", "first"), ("switch", "replacement"), ("verify", "replacement")):
        lines = {k: f"node {real.name}: {step}" in text for k, text in said.items()}
        assert lines == {k: k == who for k in said}, (step, lines)
    print(
        f"operator pod {first['metadata']['name']} on {real.name} evicted at {killed_at:.1f}s, replaced by "
        f"{second['metadata']['name']} on {model.name}; {real.name} steps: "
        f"{[(s.id, s.state.value) for s in records[real.name].steps]}"
    )
