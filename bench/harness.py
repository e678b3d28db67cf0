"""What the benchmarks that migrate testbed nodes share: the workload the drain meets, the wait for a
node Ready on a runtime, and one migration by the shipped operator (`shimshift run` over SSH) from
the NodeMigration's creation to its settled phase. Imported by `node_downtime.py` and
`rollout_testbed.py` (run as scripts, so this directory is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.nodes.images import kube_proxy_image

APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in every node's Docker (testbed seeding)
SETTLED = ("Succeeded", "Failed", "Paused")


def ready_on(node: Mapping[str, Any], runtime: str) -> bool:
    """The Node object is Ready and reports a `<runtime>` containerRuntimeVersion ("docker://")."""
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    version = str((status.get("nodeInfo") or {}).get("containerRuntimeVersion", ""))
    return ready and version.startswith(runtime)


def workload(kubelet_version: str, replicas: int) -> list[dict[str, Any]]:
    """What the drain meets: a Deployment `web` of `replicas` pods (no budget) and a kube-proxy
    DaemonSet pod on every node, which verify waits for."""
    web, proxy = {"app": "web"}, {"k8s-app": "kube-proxy"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": web},
                "template": {
                    "metadata": {"labels": web},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{"name": "app", "image": APP_IMAGE}],
                    },
                },
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": proxy},
                "template": {
                    "metadata": {"labels": proxy},
                    "spec": {
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "kube-proxy", "image": kube_proxy_image(kubelet_version)}],
                    },
                },
            },
        },
    ]


def ssh_secrets(nodes: Any) -> list[dict[str, Any]]:
    """The Secrets the NodeMigration's spec.ssh names: the testbed's key and known_hosts."""
    from tests.e2e.conftest import secret

    return [
        secret("ssh", "ssh-privatekey", nodes.private_key.read_text()),
        secret("known-hosts", "known_hosts", nodes.known_hosts.read_text()),
    ]


@dataclass(frozen=True)
class Migrated:
    """How one migration ended: its NodeMigration's phase, the wall time (from the operator's first
    status write on it to that phase) and the operator's log tail."""

    phase: str
    wall_s: float
    log_tail: str


def migrate(
    api: Any, nodes: Any, workdir: Path, name: str, spec: Mapping[str, Any], timeout: float
) -> Migrated:
    """Start the shipped operator, create NodeMigration `name` (Migrate mode over SSH to the testbed's
    nodes, `spec` added), wait at most `timeout` s for it to settle, stop the operator."""
    from testbed.waiting import wait_until
    from tests.e2e.conftest import Operator

    operator = Operator(api.kubeconfig, workdir, {}, ssh=True)
    operator.start()
    try:
        api.seed(
            {
                "apiVersion": "shimshift.io/v1alpha1",
                "kind": "NodeMigration",
                "metadata": {"name": name},
                "spec": {
                    "mode": "Migrate",
                    **spec,
                    "ssh": {
                        "user": "root",
                        "port": nodes.ssh_port,
                        "privateKeySecretRef": {"name": "ssh"},
                        "knownHostsSecretRef": {"name": "known-hosts"},
                    },
                },
            }
        )

        def phase() -> str | None:
            obj = api.get("nodemigrations.shimshift.io", name) or {}
            return (obj.get("status") or {}).get("phase")

        # the clock starts at the operator's first status write, not at its start-up
        wait_until(phase, 120, what="the operator to take the NodeMigration up", interval=0.1)
        started = time.monotonic()
        final = wait_until(
            lambda: (p := phase()) in SETTLED and p, timeout, what="the migration to settle", interval=0.2
        )
        wall = time.monotonic() - started
    finally:
        operator.stop()
    return Migrated(str(final), wall, "" if final == "Succeeded" else operator.logs()[-3000:])
