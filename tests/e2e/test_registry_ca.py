"""Registry CA material through the whole product on a testbed node (the operator process as the chart's
ServiceAccount on the real API server, a fake node with real sshd, containerd 1.6 and dockerd, its
kubelet registered with its node certificate): what caSecretRef names reaches the node as
certs.d/<host>/ca.crt (mode 0644, world-readable) only if it is X.509 certificates.

Before, `caSecretRef: {name: <the SSH key Secret>, key: ssh-privatekey}` migrated a node
and its ca.crt was byte-identical to the operator's SSH private key. Now that spec is invalid (naming
both fields) and nothing runs; a copy of the key in another Secret is refused at the node's facts step,
before the lock, cordon and drain; and a real CA is still written, works for a CRI pull, and the Plan
mode report said so beforehand (it used to call every caSecretRef registry a blocker, "was not
resolved", while Migrate then succeeded).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from testbed.controlplane.api import RealKubeApi
from testbed.nodes import Cluster
from testbed.nodes.layout import REGISTRY_HOST

from shimshift.model import keys
from shimshift.model.status import NodePhase, Phase
from tests.e2e.conftest import (
    Operator,
    eventually,
    operator_namespace,
    raw_status,
    secret,
    ssh_operator,
)
from tests.e2e.realapi import RealCluster, RealStack, nodes_on_real_api, real_test_cluster
from tests.e2e.test_testbed import ssh_migration

pytestmark = [pytest.mark.e2e, pytest.mark.realapi, pytest.mark.root, pytest.mark.timeout(420)]

#: Docker on this profile trusts the registry as an insecure one (no CA): after the migration only the
#: spec's CA lets containerd verify it.
PROFILE = "kubeadm-cgroupfs"
CA_FILE = f"{keys.CONTAINERD_CERTS_DIR}/{REGISTRY_HOST}/ca.crt"
HOSTS_FILE = f"{keys.CONTAINERD_CERTS_DIR}/{REGISTRY_HOST}/hosts.toml"
IMAGE = f"{REGISTRY_HOST}/team/app:2.0"  # only in the registry (testbed seeding), never in Docker
#: the registry CA Secrets the operator reads (in its namespace): the chart grants them by name
CA_SECRETS = ("copied", "registry-ca")


@pytest.fixture(scope="module")
def testbed(testbed_root: Path, realapi_stack: RealStack) -> Iterator[tuple[Cluster, RealStack, RealKubeApi]]:
    prefix = os.environ.get("SHIMSHIFT_TESTBED_PREFIX", "pytest")
    with (
        Cluster.up(f"{prefix}-{os.getpid()}-regca", [PROFILE], root=testbed_root) as nodes,
        nodes_on_real_api(realapi_stack, nodes, extra_secrets=CA_SECRETS) as baseline,
    ):
        eventually(
            lambda: _runtime(baseline, nodes.nodes[0].name).startswith("docker://"), 60, "kubelet on Docker"
        )
        yield nodes, realapi_stack, baseline


@pytest.fixture
def stack(
    testbed: tuple[Cluster, RealStack, RealKubeApi], tmp_path: Path
) -> Iterator[tuple[Cluster, RealCluster]]:
    """The node and the real API server through the proxy, reset after the test to the module's
    baseline (the Node and the SSH Secrets kept)."""
    nodes, real, baseline = testbed
    with real_test_cluster(real, tmp_path, baseline) as api:
        yield nodes, api


@pytest.fixture
def operator(stack: tuple[Cluster, Any], tmp_path: Path) -> Iterator[Operator]:
    _, api = stack
    op = ssh_operator(api, tmp_path)
    op.start()
    yield op
    op.stop()


def _runtime(api: Any, name: str) -> str:
    node = api.get("nodes", name) or {}
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", ""))


def _status(api: Any, name: str) -> dict[str, Any]:
    return raw_status(api, name)


def _settled(api: Any, name: str) -> dict[str, Any] | None:
    status = _status(api, name)
    return status if status.get("phase") in (Phase.FAILED, Phase.PAUSED, Phase.SUCCEEDED) else None


def _registry_migration(nodes: Cluster, name: str, mode: str, ca_ref: dict[str, str]) -> dict[str, Any]:
    return ssh_migration(
        nodes,
        name,
        mode=mode,
        nodeNames=[nodes.nodes[0].name],
        containerd={"registries": [{"host": REGISTRY_HOST, "caSecretRef": ca_ref}]},
    )


def _created(diff: str) -> str:
    """The content of a file a plan's unified diff creates (from /dev/null)."""
    lines = diff.splitlines(keepends=True)
    assert lines[0].startswith("--- /dev/null"), diff[:200]
    return "".join(line[1:] for line in lines[3:] if line.startswith("+"))


def _untouched(nodes: Cluster, api: Any) -> None:
    """The node's containerd certs.d holds no CA for the registry, and the node is as it was."""
    node = nodes.nodes[0]
    ca = node.view(CA_FILE)
    assert not ca.exists(), ca.read_text()[:80]
    assert _runtime(api, node.name).startswith("docker://")
    obj = api.get("nodes", node.name) or {}
    assert not obj["spec"].get("unschedulable")
    assert keys.LOCK_ANNOTATION not in (obj["metadata"].get("annotations") or {})


def test_a_registry_ca_naming_the_ssh_key_secret_is_refused_and_never_reaches_the_node(
    stack: tuple[Cluster, Any], operator: Operator
) -> None:
    nodes, api = stack
    key = nodes.private_key.read_text()
    api.seed(_registry_migration(nodes, "steal", "Migrate", {"name": "ssh", "key": "ssh-privatekey"}))

    def refused() -> Any:
        conditions = _status(api, "steal").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Valid" and c["status"] == "False"), None)

    eventually(
        lambda: refused() or _settled(api, "steal"), 200, "the NodeMigration to be refused or settle", 0.5
    )
    ca = nodes.nodes[0].view(CA_FILE)
    assert not (ca.exists() and ca.read_text() == key), (
        f"{CA_FILE} on the node is the operator's SSH private key"
    )
    _untouched(nodes, api)
    condition = refused()
    assert condition is not None and condition["reason"] == "InvalidSpec", _status(api, "steal")
    assert (
        "spec.containerd.registries[0].caSecretRef: names Secret ssh, which spec.ssh.privateKeySecretRef "
        "names too" in condition["message"]
    ), condition
    assert not _status(api, "steal").get("nodes"), "an invalid NodeMigration acts on no node"
    assert key.splitlines()[1] not in json.dumps(_status(api, "steal")) + operator.logs()
    api.delete("nodemigrations.shimshift.io", "steal")


def test_a_copy_of_the_ssh_key_in_another_secret_is_refused_at_facts_before_the_node_is_touched(
    stack: tuple[Cluster, Any], operator: Operator
) -> None:
    nodes, api = stack
    api.seed(secret("copied", "ca.crt", nodes.private_key.read_text(), operator_namespace(api)))
    api.seed(_registry_migration(nodes, "copy", "Migrate", {"name": "copied"}))

    status = eventually(lambda: _settled(api, "copy"), 200, "the migration to settle", 0.5)
    ca = nodes.nodes[0].view(CA_FILE)
    assert not (ca.exists() and "PRIVATE KEY" in ca.read_text()), f"{CA_FILE} on the node holds the SSH key"
    (record,) = status["nodes"]
    assert record["phase"] == NodePhase.FAILED, (status, operator.logs()[-3000:])
    assert record["lastError"]["step"] == "facts", record["lastError"]
    message = record["lastError"]["message"]
    assert f"registry {REGISTRY_HOST}: Secret copied (key ca.crt): PEM block 1 is a private key" in message
    assert [s["id"] for s in record["steps"]] in (["facts"], ["facts", "rollback"]), record["steps"]
    _untouched(nodes, api)
    key_line = nodes.private_key.read_text().splitlines()[1]
    assert key_line not in json.dumps(status) + operator.logs()
    api.delete("nodemigrations.shimshift.io", "copy")


def test_the_live_plan_reads_the_registry_secrets_read_only_and_blocks_only_the_missing_one(
    stack: tuple[Cluster, Any], tmp_path: Path
) -> None:
    from shimshift.entry.cli import main

    nodes, api = stack
    assert nodes.registry is not None
    ca_pem = nodes.registry.ca_cert.read_text()
    api.seed(secret("live-ca", "ca.crt", ca_pem))
    body = _registry_migration(nodes, "live", "Migrate", {"name": "live-ca"})
    body["spec"]["containerd"]["registries"].append(
        {"host": "other.example.com", "caSecretRef": {"name": "absent"}}
    )
    manifest = tmp_path / "live.json"
    manifest.write_text(json.dumps(body))
    out = io.StringIO()
    argv = ["plan", "-f", str(manifest), "--kubeconfig", str(api.kubeconfig), "--probe-namespace", "default"]
    status = main([*argv, "--format", "json"], out)
    assert status == 3, out.getvalue()[-2000:]
    report = json.loads(out.getvalue())
    (planned,) = report["nodes"]
    blockers = [f["message"] for f in planned["findings"] if f["level"] == "blocker"]
    assert (
        len(blockers) == 1
        and "registries[1].caSecretRef: registry other.example.com: Secret absent" in blockers[0]
    )
    assert "Secret default/absent does not exist" in blockers[0] and "live-ca" not in blockers[0]
    assert ca_pem.splitlines()[1] not in out.getvalue()
    assert api.get("nodemigrations.shimshift.io", "live") is None  # a plan changes nothing anywhere
    _untouched(nodes, api)


def test_a_valid_ca_secret_is_no_plan_blocker_and_migrate_writes_what_the_plan_showed_and_it_verifies(
    stack: tuple[Cluster, Any], operator: Operator
) -> None:
    nodes, api = stack
    node = nodes.nodes[0]
    assert nodes.registry is not None
    ca_pem = nodes.registry.ca_cert.read_text()
    api.seed(secret("registry-ca", "ca.crt", ca_pem, operator_namespace(api)))
    api.seed(_registry_migration(nodes, "regca", "Plan", {"name": "registry-ca"}))

    eventually(lambda: _status(api, "regca").get("phase") == Phase.PLANNED, 90, "the plan", 0.5)
    where = _status(api, "regca")["reportConfigMap"]
    namespace, _, config_map = where.partition("/")
    report = json.loads((api.get("configmaps", config_map, namespace) or {})["data"]["report.json"])
    (planned,) = report["nodes"]
    assert not [f for f in planned["findings"] if f["level"] == "blocker"], planned["findings"]
    changes = {c["path"]: c for c in planned["containerd"]["changes"]}
    ca_change = changes[CA_FILE]
    assert ca_change["secret"] and hashlib.sha256(ca_pem.encode()).hexdigest()[:12] in ca_change["diff"]
    assert ca_pem.splitlines()[1] not in json.dumps(report)  # the plan names, hashes; never the content

    api.patch("nodemigrations.shimshift.io", "regca", {"spec": {"mode": "Migrate"}})

    status = eventually(lambda: _settled(api, "regca"), 240, "the migration to settle", 0.5)
    assert status["phase"] == Phase.SUCCEEDED, (status, operator.logs()[-3000:])

    ca = node.view(CA_FILE)
    assert ca.read_text() == ca_pem
    assert ca.stat().st_mode & 0o777 == 0o644
    hosts = node.view(HOSTS_FILE).read_text()
    assert f'ca = ["{CA_FILE}"]' in hosts and "skip_verify = true" not in hosts
    assert hosts == _created(changes[HOSTS_FILE]["diff"])  # what the plan showed
    with node.cri_channel() as channel:  # the CA is what lets containerd verify the registry now
        reply = api_pb2_grpc.ImageServiceStub(channel).PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=IMAGE)), timeout=60
        )
    assert reply.image_ref.startswith("sha256:")
