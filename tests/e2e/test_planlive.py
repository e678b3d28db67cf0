"""`shimshift plan` against the testbed: the real API server (through the fault proxy, which logs every
request) and fake nodes with real sshd, containerd and dockerd, their kubelets registered with their
node certificates. The plan probes the nodes over SSH (read-only) with the Secrets spec.ssh names, as
the operator's Plan mode does, and the test asserts that nothing changed: only GETs in the proxy's
request log, the nodes' files byte for byte, their daemons' processes and the fake systemctl's call log.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.controlplane.api import RealKubeApi
from testbed.nodes import Cluster

from shimshift.entry.cli import main
from tests.e2e.conftest import eventually, secret
from tests.e2e.realapi import RealCluster, RealStack, nodes_on_real_api, real_test_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.root, pytest.mark.timeout(240)]

SCRATCH_PROFILES = ["kubeadm-systemd", "kubeadm-cgroupfs"]
READ_ONLY_SYSTEMCTL = {"is-active", "is-enabled", "is-failed", "show", "status", "cat", "list-units"}
WATCHED = (
    "/etc/containerd/config.toml",
    "/etc/docker/daemon.json",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/var/lib/kubelet/config.yaml",
    "/etc/default/kubelet",
)


@pytest.fixture(scope="module")
def testbed(
    scratch_cluster: Cluster, realapi_stack: RealStack
) -> Iterator[tuple[Cluster, RealStack, RealKubeApi]]:
    with nodes_on_real_api(realapi_stack, scratch_cluster) as baseline:
        yield scratch_cluster, realapi_stack, baseline


@pytest.fixture
def stack(
    testbed: tuple[Cluster, RealStack, RealKubeApi], tmp_path: Path
) -> Iterator[tuple[Cluster, RealCluster]]:
    nodes, real, baseline = testbed
    with real_test_cluster(real, tmp_path, baseline) as api:
        yield nodes, api


def _state(node: Any) -> dict[str, Any]:
    files = {}
    for path in WATCHED:
        local = node.view(path)
        files[path] = hashlib.sha256(local.read_bytes()).hexdigest() if local.exists() else None
    certs = node.view("/etc/containerd/certs.d")
    listing = sorted(str(p.relative_to(certs)) for p in certs.rglob("*")) if certs.exists() else []
    procs = node.exec(
        ["sh", "-c", "ps -eo pid=,comm= | grep -E 'dockerd|containerd$|kubelet' || true"]
    ).stdout
    return {
        "files": files,
        "certs.d": listing,
        "processes": sorted(procs.split("\n")),
        "systemctl": node.systemctl_calls(),
    }


def test_a_live_plan_probes_the_nodes_over_ssh_and_changes_nothing(
    stack: tuple[Cluster, RealCluster], tmp_path: Path
) -> None:
    nodes, api = stack
    names = [n.name for n in nodes.nodes]

    def on_docker() -> bool:
        found = [api.get("nodes", n) or {} for n in names]
        return all(
            str(
                ((o.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", "")
            ).startswith("docker://")
            for o in found
        )

    eventually(on_docker, 60, "the fake kubelets to register on Docker")
    api.seed(
        [
            secret("ssh", "ssh-privatekey", nodes.private_key.read_text()),
            secret("known-hosts", "known_hosts", nodes.known_hosts.read_text()),
        ]
    )
    manifest = tmp_path / "plan.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "shimshift.io/v1alpha1",
                "kind": "NodeMigration",
                "metadata": {"name": "plan"},
                "spec": {
                    "mode": "Plan",
                    "nodeNames": names,
                    "ssh": {
                        "user": "root",
                        "port": nodes.ssh_port,
                        "privateKeySecretRef": {"name": "ssh"},
                        "knownHostsSecretRef": {"name": "known-hosts"},
                    },
                },
            }
        )
    )
    before = {n.name: _state(n) for n in nodes.nodes}
    first = len(api.requests)

    out = io.StringIO()
    status = main(
        [
            "plan",
            "-f",
            str(manifest),
            "--kubeconfig",
            str(api.kubeconfig),
            "--probe-namespace",
            "default",
            "--format",
            "json",
        ],
        out,
    )

    report = json.loads(out.getvalue()[out.getvalue().index("{") :])
    assert status in (0, 2, 3)
    assert [n["name"] for n in report["nodes"]] == sorted(names)
    for node in report["nodes"]:
        assert node["runtime"] is not None, node["findings"]  # facts were probed
        assert node["containerd"]["computed"] and node["kubelet"]["computed"], node["findings"]
        assert any(
            c["path"] == "/etc/containerd/config.toml" and c["changed"] for c in node["containerd"]["changes"]
        )
    assert not [f for f in report["blockers"] if f["code"] in ("NoFacts", "FactUnreadable")]
    # The kubelets heartbeat (PATCH nodes/<name>/status) straight to the API server, not through the
    # proxy; were one logged, it would not be the plan's. Every other request is the plan's.
    ours = [
        r for r in list(api.requests)[first:] if not (r.resource == "nodes" and r.subresource == "status")
    ]
    assert ours and {r.method for r in ours} == {"GET"}, sorted(
        {(r.method, r.resource, r.subresource) for r in ours}
    )
    after = {n.name: _state(n) for n in nodes.nodes}
    for name, state in after.items():
        calls = state.pop("systemctl")
        old_calls = before[name].pop("systemctl")
        assert calls[: len(old_calls)] == old_calls
        new_verbs = {c["argv"][0] for c in calls[len(old_calls) :]}
        assert new_verbs <= READ_ONLY_SYSTEMCTL, (
            f"{name}: the probe ran systemctl {new_verbs - READ_ONLY_SYSTEMCTL}"
        )
    assert after == before  # files, certs.d and the daemons' processes
