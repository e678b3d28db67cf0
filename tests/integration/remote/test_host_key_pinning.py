"""Trust on first use that holds: against a real sshd whose host key changes, `hostKeyPolicy: AcceptNew`
pins the first key it sees (through a `HostKeyStore`, the Node annotation in the operator) and refuses
any other key afterwards, before authenticating, with both fingerprints in the error: on a reconnect
of the same connection, on a new connection (an operator restart, another NodeMigration) and through
the engine, where the refusal is the node's last error, an Event and not worth retrying."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import paramiko
import pytest
from testbed.kubeapi import KubeApi
from testbed.waiting import WaitTimeout, wait_until

from shimshift.engine import Engine, is_transient
from shimshift.entry.nodeport import ssh_node_port
from shimshift.kube.api import MERGE_PATCH, Kube, load_api_client
from shimshift.model import keys
from shimshift.model.errors import RemoteError
from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration, parse_nodemigration
from shimshift.model.spec import HostKeyPolicy
from shimshift.model.status import NodePhase, StepState
from shimshift.remote import HostKeyError, NodeConnection, SshNodePort, SshOptions, SshTarget, fingerprint
from shimshift.remote.hostkeys import HostKeyPin
from shimshift.resources import load_crd
from tests.integration.remote.conftest import LocalSshd, RotatingSshd
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, manifest

pytestmark = pytest.mark.integration


def fp(public_line: str) -> str:
    kind, b64 = public_line.split()[:2]
    return fingerprint(paramiko.PKey.from_type_string(kind, base64.b64decode(b64)))


class DictStore:
    """A HostKeyStore in a test's hands: what was saved, and when (round trips run so far)."""

    where = "the test's store"
    rekey = "clear the test's store"

    def __init__(self, pin: HostKeyPin | None = None) -> None:
        self.pin = pin
        self.saved: list[HostKeyPin] = []
        self.round_trips_at_save: list[int] = []
        self.conn: NodeConnection | None = None
        self.loads = 0  # one per handshake

    def load(self) -> HostKeyPin | None:
        self.loads += 1
        return self.pin

    def save(self, pin: HostKeyPin) -> HostKeyPin:
        self.saved.append(pin)
        self.round_trips_at_save.append(self.conn.round_trips if self.conn else -1)
        if self.pin is None:
            self.pin = pin
        return self.pin


def accept_new(server: RotatingSshd | LocalSshd, **kw: object) -> SshOptions:
    base: dict[str, object] = {
        "known_hosts": "",
        "host_key_policy": HostKeyPolicy.ACCEPT_NEW,
        "private_key": server.private_key,
        "connect_timeout": 10.0,
        "command_timeout": 30.0,
    }
    base.update(kw)
    return SshOptions(**base)  # type: ignore[arg-type]


def target(server: RotatingSshd | LocalSshd) -> SshTarget:
    return SshTarget("node-a", server.host, server.port)


def authentications(server: RotatingSshd) -> int:
    return server.log.count("Accepted publickey")


def wait_for_preauth_close(server: RotatingSshd, before: int) -> None:
    """sshd logs "[preauth]" when a client leaves before authenticating; wait up to 10 s for that line
    (no line in time is not itself a failure: the caller's assertions on the log decide)."""
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: server.log.count("[preauth]") > before, 10, what="sshd's [preauth] line", interval=0.05
        )


def assert_refused_before_auth(server: RotatingSshd, conn: NodeConnection, tmp_path: Path, old: str) -> str:
    marker = tmp_path / "ran"
    auths, preauth = authentications(server), server.log.count("[preauth]")
    with pytest.raises(HostKeyError) as e:
        conn.run(["touch", str(marker)])
    message = str(e.value)
    assert "HOST KEY MISMATCH" in message
    assert fp(old) in message and fp(server.host_public_key) in message
    assert not is_transient(e.value)
    assert not marker.exists()
    wait_for_preauth_close(server, preauth)
    assert authentications(server) == auths, "the client authenticated to a server with a changed key"
    return message


def test_the_same_connection_reconnecting_after_close_refuses_a_rotated_key_before_authenticating(
    rotating_sshd: RotatingSshd, tmp_path: Path
) -> None:
    conn = NodeConnection(target(rotating_sshd), accept_new(rotating_sshd))
    assert conn.run(["true"]).ok
    first = rotating_sshd.host_public_key
    assert conn.host_key == HostKeyPin.parse(f"ssh-ed25519 {fp(first)}")
    conn.close()
    rotating_sshd.rotate()
    message = assert_refused_before_auth(rotating_sshd, conn, tmp_path, first)
    assert "first use" in message
    assert len(conn.learned_host_keys) == 1


def test_a_new_connection_given_the_persisted_pin_refuses_a_rotated_key(
    rotating_sshd: RotatingSshd, tmp_path: Path
) -> None:
    store = DictStore()
    with NodeConnection(target(rotating_sshd), accept_new(rotating_sshd), host_keys=store) as conn:
        assert conn.run(["true"]).ok
    first = rotating_sshd.host_public_key
    assert store.pin == HostKeyPin.parse(f"ssh-ed25519 {fp(first)}")
    rotating_sshd.rotate()
    # an operator restart: a fresh connection object that knows only what the store kept
    restarted = NodeConnection(
        target(rotating_sshd), accept_new(rotating_sshd), host_keys=DictStore(store.pin)
    )
    message = assert_refused_before_auth(rotating_sshd, restarted, tmp_path, first)
    assert "the test's store" in message and "clear the test's store" in message


def test_a_first_connection_persists_the_pin_before_any_command_runs(rotating_sshd: RotatingSshd) -> None:
    store = DictStore()
    conn = NodeConnection(target(rotating_sshd), accept_new(rotating_sshd), host_keys=store)
    store.conn = conn
    assert conn.run(["true"]).ok
    conn.close()
    assert conn.run(["true"]).ok  # the same key again: verified, not saved again
    assert store.saved == [HostKeyPin.parse(f"ssh-ed25519 {fp(rotating_sshd.host_public_key)}")]
    assert store.round_trips_at_save == [0]


def test_a_pin_that_cannot_be_persisted_refuses_the_connection(
    rotating_sshd: RotatingSshd, tmp_path: Path
) -> None:
    class Unwritable(DictStore):
        def save(self, pin: HostKeyPin) -> HostKeyPin:
            raise RemoteError("the Node could not be annotated (injected)")

    marker = tmp_path / "ran"
    conn = NodeConnection(target(rotating_sshd), accept_new(rotating_sshd), host_keys=Unwritable())
    auths = authentications(rotating_sshd)
    with pytest.raises(RemoteError, match="could not be annotated"):
        conn.run(["touch", str(marker)])
    assert not marker.exists() and authentications(rotating_sshd) == auths


def test_a_key_pinned_first_by_another_connection_wins_over_the_one_presented(
    rotating_sshd: RotatingSshd, tmp_path: Path
) -> None:
    """Two connections racing to pin: the store keeps the first pin, the loser is refused."""
    other = HostKeyPin("ssh-ed25519", "SHA256:" + "A" * 43)

    class Raced(DictStore):
        def save(self, pin: HostKeyPin) -> HostKeyPin:
            self.saved.append(pin)
            return other

    conn = NodeConnection(target(rotating_sshd), accept_new(rotating_sshd), host_keys=Raced())
    with pytest.raises(HostKeyError, match="HOST KEY MISMATCH") as e:
        conn.run(["touch", str(tmp_path / "ran")])
    assert other.fingerprint in str(e.value) and fp(rotating_sshd.host_public_key) in str(e.value)
    assert not (tmp_path / "ran").exists()


def test_known_hosts_wins_over_the_pin_for_a_listed_host(rotating_sshd: RotatingSshd) -> None:
    """A host listed in known_hosts is checked against it (RejectPolicy), whatever the pin says."""
    listed = f"[{rotating_sshd.host}]:{rotating_sshd.port} {rotating_sshd.host_public_key}\n"
    stale = DictStore(HostKeyPin("ssh-ed25519", "SHA256:" + "B" * 43))
    with NodeConnection(
        target(rotating_sshd), accept_new(rotating_sshd, known_hosts=listed), host_keys=stale
    ) as conn:
        assert conn.run(["true"]).ok
    assert stale.saved == []
    rotating_sshd.rotate()
    with pytest.raises(HostKeyError, match="HOST KEY MISMATCH"):
        NodeConnection(target(rotating_sshd), accept_new(rotating_sshd, known_hosts=listed)).run(["true"])


def test_strict_ignores_the_store_and_refuses_an_unlisted_host(rotating_sshd: RotatingSshd) -> None:
    pin = HostKeyPin.parse(f"ssh-ed25519 {fp(rotating_sshd.host_public_key)}")
    conn = NodeConnection(
        target(rotating_sshd),
        accept_new(rotating_sshd, host_key_policy=HostKeyPolicy.STRICT),
        host_keys=DictStore(pin),
    )
    with pytest.raises(HostKeyError, match="not in known_hosts"):
        conn.run(["true"])


# ---- @revoked -----------------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_even_when_known_hosts_lists_it(sshd: LocalSshd, tmp_path: Path) -> None:
    known = sshd.known_hosts + f"@revoked * {sshd.host_public_key}\n"
    marker = tmp_path / "ran"
    with pytest.raises(HostKeyError, match=r"REVOKED.*@revoked") as e:
        sshd.connect(known_hosts=known).run(["touch", str(marker)])
    assert fp(sshd.host_public_key) in str(e.value)
    assert not is_transient(e.value) and not marker.exists()


def test_a_revoked_key_is_refused_even_when_pinned(sshd: LocalSshd) -> None:
    known = f"@revoked [{sshd.host}]:{sshd.port} {sshd.host_public_key}\n"
    pin = HostKeyPin.parse(f"ssh-ed25519 {fp(sshd.host_public_key)}")
    conn = NodeConnection(
        SshTarget("node-a", sshd.host, sshd.port),
        accept_new(sshd, known_hosts=known),
        host_keys=DictStore(pin),
    )
    with pytest.raises(HostKeyError, match="REVOKED"):
        conn.run(["true"])


# ---- through the engine -------------------------------------------------------------------------------


def test_a_changed_host_key_fails_the_node_at_once_with_both_fingerprints_in_status_and_an_event(
    rotating_sshd: RotatingSshd,
) -> None:
    clock = Clock()
    cluster = FakeCluster([FakeNode("node-a")], clock)
    cluster.create(
        manifest(
            ssh={
                "privateKeySecretRef": {"name": "ssh"},
                "hostKeyPolicy": "AcceptNew",
                "port": rotating_sshd.port,
            }
        )
    )
    first = rotating_sshd.host_public_key
    store = DictStore(HostKeyPin.parse(f"ssh-ed25519 {fp(first)}"))
    rotating_sshd.rotate()
    ports: list[SshNodePort] = []

    def node_ports(migration: object) -> SshNodePort:
        if not ports:
            m = cluster.get("m")
            ports.append(
                SshNodePort(
                    m.name,
                    m.spec,
                    lambda node: NodeConnection(
                        SshTarget(node, rotating_sshd.host, rotating_sshd.port),
                        accept_new(rotating_sshd),
                        host_keys=store,
                    ),
                )
            )
        return ports[0]

    engine = Engine(cluster, node_ports, clock=clock, monotonic=lambda: clock.now.timestamp())
    engine.reconcile(cluster.get("m"))
    record = cluster.status().node("node-a")
    assert record is not None
    assert record.phase == NodePhase.FAILED
    (facts,) = [s for s in record.steps if s.id == StepId.FACTS]
    assert facts.state == StepState.FAILED
    assert store.loads == 1  # one handshake, not retried: a changed key does not change back by waiting
    assert record.last_error is not None
    assert fp(first) in record.last_error.message
    assert fp(rotating_sshd.host_public_key) in record.last_error.message
    reasons = [(node, reason) for _, node, warning, reason, _ in cluster.events if warning]
    assert ("node-a", "HostKeyMismatch") in reasons
    (message,) = [m for _, _, _, reason, m in cluster.events if reason == "HostKeyMismatch"]
    assert fp(first) in message and fp(rotating_sshd.host_public_key) in message


def test_the_verified_fingerprint_is_recorded_in_the_node_status(rotating_sshd: RotatingSshd) -> None:
    port = SshNodePort(
        "m",
        FakeCluster([], Clock()).create(manifest()).spec,
        lambda node: NodeConnection(
            SshTarget(node, rotating_sshd.host, rotating_sshd.port), accept_new(rotating_sshd)
        ),
    )
    assert port.host_key_fingerprint("node-a") == ""
    assert port.connection("node-a").run(["true"]).ok
    assert port.host_key_fingerprint("node-a") == f"ssh-ed25519 {fp(rotating_sshd.host_public_key)}"
    port.close()


# ---- the operator's wiring: the pin lives on the Node ------------------------------------------------


def _seed(kubeapi: KubeApi, server: RotatingSshd) -> None:
    kubeapi.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "node-a"},
                "status": {"addresses": [{"type": "InternalIP", "address": server.host}]},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "ssh", "namespace": "shimshift-system"},
                "stringData": {"ssh-privatekey": server.private_key},
            },
        ]
    )


def _migration(name: str, port: int, mode: str = "Migrate") -> NodeMigration:
    body = manifest(
        name, ssh={"privateKeySecretRef": {"name": "ssh"}, "hostKeyPolicy": "AcceptNew", "port": port}
    )
    body["spec"]["mode"] = mode
    return parse_nodemigration(body, load_crd())


def test_the_operator_pins_the_key_on_the_node_and_refuses_a_changed_key_after_a_restart_and_in_a_new_migration(
    kubeapi: KubeApi, rotating_sshd: RotatingSshd, tmp_path: Path
) -> None:
    _seed(kubeapi, rotating_sshd)
    kube = Kube(load_api_client(str(kubeapi.kubeconfig)), request_timeout=10)
    try:
        port = ssh_node_port(kube, "shimshift-system", _migration("m", rotating_sshd.port))
        assert port.connection("node-a").run(["true"]).ok
        first = rotating_sshd.host_public_key
        node = kubeapi.get("nodes", "node-a")
        assert node is not None
        assert node["metadata"]["annotations"][keys.HOST_KEY_ANNOTATION] == f"ssh-ed25519 {fp(first)}"
        port.close()
        rotating_sshd.rotate()
        for migration in (_migration("m", rotating_sshd.port), _migration("other", rotating_sshd.port)):
            restarted = ssh_node_port(kube, "shimshift-system", migration)
            with pytest.raises(HostKeyError, match="HOST KEY MISMATCH") as e:
                restarted.connection("node-a").run(["touch", str(tmp_path / "ran")])
            assert fp(first) in str(e.value) and fp(rotating_sshd.host_public_key) in str(e.value)
            assert keys.HOST_KEY_ANNOTATION in str(e.value)  # where the pin lives, how to re-key
            restarted.close()
        assert not (tmp_path / "ran").exists()
        # re-keying on purpose: remove the annotation, and the next connection learns the new key
        kube.request(
            "PATCH",
            "/api/v1/nodes/node-a",
            body={"metadata": {"annotations": {keys.HOST_KEY_ANNOTATION: None}}},
            content_type=MERGE_PATCH,
        )
        again = ssh_node_port(kube, "shimshift-system", _migration("m", rotating_sshd.port))
        assert again.connection("node-a").run(["true"]).ok
        again.close()
        node = kubeapi.get("nodes", "node-a")
        assert node is not None
        assert node["metadata"]["annotations"][keys.HOST_KEY_ANNOTATION] == (
            f"ssh-ed25519 {fp(rotating_sshd.host_public_key)}"
        )
    finally:
        kube.close()


def test_a_malformed_pin_on_the_node_is_refused_with_what_to_do(
    kubeapi: KubeApi, rotating_sshd: RotatingSshd
) -> None:
    _seed(kubeapi, rotating_sshd)
    kube = Kube(load_api_client(str(kubeapi.kubeconfig)), request_timeout=10)
    try:
        kube.request(
            "PATCH",
            "/api/v1/nodes/node-a",
            body={"metadata": {"annotations": {keys.HOST_KEY_ANNOTATION: "whatever"}}},
            content_type=MERGE_PATCH,
        )
        port = ssh_node_port(kube, "shimshift-system", _migration("m", rotating_sshd.port))
        with pytest.raises(
            HostKeyError, match=r"node node-a: .*shimshift.io/ssh-host-key.*remove the annotation"
        ) as e:
            port.connection("node-a").run(["true"])
        assert not is_transient(e.value)
    finally:
        kube.close()


def test_a_plan_verifies_against_the_pin_but_never_writes_one(
    kubeapi: KubeApi, rotating_sshd: RotatingSshd
) -> None:
    """Plan mode and `shimshift plan --probe` change nothing in the cluster: no pin is written."""
    _seed(kubeapi, rotating_sshd)
    kube = Kube(load_api_client(str(kubeapi.kubeconfig)), request_timeout=10)
    try:
        plan = _migration("p", rotating_sshd.port, mode="Plan")
        port = ssh_node_port(kube, "shimshift-system", plan)
        assert port.connection("node-a").run(["true"]).ok
        port.close()
        node = kubeapi.get("nodes", "node-a")
        assert node is not None and keys.HOST_KEY_ANNOTATION not in (
            node["metadata"].get("annotations") or {}
        )
        probe = ssh_node_port(
            kube, "shimshift-system", _migration("m", rotating_sshd.port), pin_host_keys=False
        )
        assert probe.connection("node-a").run(["true"]).ok
        probe.close()
        node = kubeapi.get("nodes", "node-a")
        assert node is not None and keys.HOST_KEY_ANNOTATION not in (
            node["metadata"].get("annotations") or {}
        )
        # a pin written by a migration binds the plan too
        migrate = ssh_node_port(kube, "shimshift-system", _migration("m", rotating_sshd.port))
        assert migrate.connection("node-a").run(["true"]).ok
        migrate.close()
        rotating_sshd.rotate()
        with pytest.raises(HostKeyError, match="HOST KEY MISMATCH"):
            ssh_node_port(kube, "shimshift-system", plan).connection("node-a").run(["true"])
    finally:
        kube.close()
