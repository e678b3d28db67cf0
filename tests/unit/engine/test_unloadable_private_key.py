"""An SSH private key that cannot be loaded fails its node at once, naming the Secret and its key: no
waiting makes it load, so the step is not retried (it used to be, as a guess of "transient")."""

from __future__ import annotations

import base64
from typing import Any

from shimshift.engine import Engine
from shimshift.entry.nodeport import ssh_node_port
from shimshift.model.keys import StepId
from shimshift.model.status import NodePhase, StepState
from shimshift.ports import EngineConfig
from tests.unit.engine.fakes import Clock, FakeCluster, manifest, workers

NAMESPACE = "shimshift-system"


class SecretsAndNodes:
    """The API reads of the SSH node port: Nodes with an address and the two Secrets of `manifest()`."""

    def __init__(self, private_key: str) -> None:
        self.secrets = {
            "ssh": {"ssh-privatekey": private_key},
            "known-hosts": {"known_hosts": "w1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n"},
        }
        self.reads: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> Any:
        assert method == "GET", path
        self.reads.append(path)
        if path.startswith("/api/v1/nodes/"):
            name = path.rsplit("/", 1)[1]
            return {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}, "name": name}
        prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
        assert path.startswith(prefix), path
        data = self.secrets[path.removeprefix(prefix)]
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_an_unloadable_private_key_fails_the_node_once_naming_the_secret_and_key() -> None:
    clock = Clock()
    cluster = FakeCluster(workers(1), clock)
    kube = SecretsAndNodes(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    engine = Engine(
        cluster,
        lambda migration: ssh_node_port(kube, NAMESPACE, migration),  # type: ignore[arg-type]
        config=EngineConfig(drain_pass_wait=5.0),
        clock=clock,
        monotonic=lambda: clock.now.timestamp(),
    )
    cluster.create(manifest())

    engine.reconcile(cluster.get("m"))  # one pass: the facts step fails for good, no "will retry"
    record = cluster.status().node("w1")
    assert record is not None
    facts = next(s for s in record.steps if s.id == StepId.FACTS)
    assert facts.state == StepState.FAILED
    for _ in range(10):  # the rest of the rollout: the node ends Failed, the key never tried again
        engine.reconcile(cluster.get("m"))
        clock.advance(60)
    record = cluster.status().node("w1")
    assert record is not None and record.phase == NodePhase.FAILED
    assert record.last_error is not None
    message = record.last_error.message
    assert f"Secret {NAMESPACE}/ssh" in message and "'ssh-privatekey'" in message
    assert "is not an SSH private key shimshift can load" in message
    assert "not a key" not in message and "BEGIN" not in message  # never the key's text
    warnings = [e for e in cluster.events if e[3] == "StepFailed"]
    assert len(warnings) == 1 and f"Secret {NAMESPACE}/ssh" in warnings[0][4]
