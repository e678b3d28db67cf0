"""The SSH runner against a real sshd: argv arrives verbatim, timeouts bite on both ends, round trips
are counted, a cut connection is reported and healed, and host keys are verified before anything runs."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from shimshift.engine import is_transient
from shimshift.model.spec import HostKeyPolicy
from shimshift.remote import (
    CommandError,
    CommandTimeout,
    ConnectionLost,
    HostKeyError,
    NodeConnection,
    PrivateKeyError,
    SshTarget,
    fingerprint,
)
from shimshift.remote.connection import AuthenticationFailed
from tests.integration.remote.conftest import LocalSshd, _keygen

pytestmark = pytest.mark.integration


def injections(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"$(touch {m})",
        f"; touch {m}",
        f"`touch {m}`",
        f"\ntouch {m}\n",
        f"' ; touch {m} '",
        f'" ; touch {m} "',
        f"&& touch {m}",
        f"| touch {m}",
        f"$(touch${{IFS}}{m})",
        "*",
        "-n",
        "~root",
    ]


def test_a_command_returns_its_argv_status_output_and_duration(sshd: LocalSshd) -> None:
    with sshd.connect() as conn:
        r = conn.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.argv, r.exit_status, r.stdout, r.stderr) == (
        ("sh", "-c", "echo out; echo err >&2; exit 3"),
        3,
        b"out\n",
        b"err\n",
    )
    assert r.duration > 0


def test_injected_strings_arrive_verbatim_and_run_nothing(sshd: LocalSshd, tmp_path: Path) -> None:
    marker = tmp_path / "x"
    values = injections(marker)
    with sshd.connect() as conn:
        for value in values:
            r = conn.run(["printf", "%s", value], check=True)
            assert r.stdout.decode() == value
        r = conn.run(["sh", "-c", 'for a do printf "[%s]" "$a"; done', "sh", *values], check=True)
    assert r.stdout.decode() == "".join(f"[{v}]" for v in values)
    assert not marker.exists()


def test_stdin_bytes_arrive_unchanged(sshd: LocalSshd) -> None:
    data = bytes(range(256)) * 4000
    with sshd.connect() as conn:
        r = conn.run(["sha256sum"], stdin=data, check=True)
    assert r.text.split()[0] == hashlib.sha256(data).hexdigest()


def test_a_failing_command_raises_with_its_status_and_stderr_when_checked(sshd: LocalSshd) -> None:
    with (
        sshd.connect() as conn,
        pytest.raises(CommandError, match=r"node local-node: .* exited 2: .*No such file"),
    ):
        conn.run(["ls", "/nonexistent-shimshift"], check=True)


def test_a_command_that_overruns_its_timeout_is_killed(sshd: LocalSshd, tmp_path: Path) -> None:
    with sshd.connect() as conn:
        with pytest.raises(CommandTimeout, match=r"did not finish within 1s"):
            conn.run(["sh", "-c", 'sleep 30; touch "$1"', "sh", str(tmp_path / "late")], timeout=1)
        assert conn.run(["true"]).ok  # the connection is still usable
    assert not (tmp_path / "late").exists()


def test_round_trips_and_handshakes_are_counted(sshd: LocalSshd) -> None:
    with sshd.connect() as conn:
        for _ in range(3):
            conn.run(["true"])
        assert (conn.round_trips, conn.connects) == (3, 1)


def test_a_dropped_connection_is_reconnected_on_the_next_command(sshd: LocalSshd) -> None:
    with sshd.connect() as conn:
        conn.run(["true"])
        assert conn.transport is not None
        conn.transport.close()
        assert conn.run(["echo", "back"]).text == "back\n"
        assert conn.connects == 2


def test_a_connection_cut_during_a_command_is_reported_as_lost(sshd: LocalSshd) -> None:
    with sshd.connect() as conn:
        conn.run(["true"])
        transport = conn.transport
        assert transport is not None
        threading.Timer(0.5, transport.close).start()
        with pytest.raises(ConnectionLost, match=r"re-run the step"):
            conn.run(["sleep", "5"])
        assert conn.run(["true"]).ok


def test_a_host_key_mismatch_is_refused_before_any_command_runs(sshd: LocalSshd, tmp_path: Path) -> None:
    wrong_pub = (sshd.dir / "id_ed25519.pub").read_text().split()[:2]  # a valid key, not the host's
    known = f"[{sshd.host}]:{sshd.port} {' '.join(wrong_pub)}\n"
    conn = sshd.connect(known_hosts=known)
    marker = tmp_path / "ran"
    with pytest.raises(HostKeyError) as e:
        conn.run(["touch", str(marker)])
    host_key = paramiko.PKey.from_type_string(*_split(sshd.host_public_key))
    wrong_key = paramiko.PKey.from_type_string(*_split(" ".join(wrong_pub)))
    assert "HOST KEY MISMATCH" in str(e.value)
    assert fingerprint(host_key) in str(e.value) and fingerprint(wrong_key) in str(e.value)
    assert not marker.exists()
    assert conn.round_trips == 0


SOURCE = "the private key in Secret shimshift-system/ssh, key 'ssh-privatekey',"


@pytest.mark.parametrize("kind", ["public key pasted", "passphrase-protected", "truncated"])
def test_a_private_key_that_does_not_load_is_refused_before_connecting_and_not_retried(
    sshd: LocalSshd, tmp_path: Path, kind: str
) -> None:
    if kind == "public key pasted":
        text = (sshd.dir / "id_ed25519.pub").read_text()
    elif kind == "passphrase-protected":
        key = tmp_path / "locked"
        _keygen(key)
        subprocess.run(["ssh-keygen", "-q", "-p", "-N", "secret", "-f", str(key)], check=True, timeout=20)
        text = key.read_text()
    else:
        text = sshd.private_key[: len(sshd.private_key) // 2]
    conn = sshd.connect(private_key=text, private_key_source=SOURCE)
    with pytest.raises(PrivateKeyError) as e:
        conn.run(["true"])
    message = str(e.value)
    assert message.startswith(f"node local-node: {SOURCE} is not an SSH private key shimshift can load")
    assert "unencrypted OpenSSH or PEM private key" in message and "Not retried" in message
    assert text.strip().splitlines()[-1] not in message  # never the key's text
    assert not is_transient(e.value)
    assert conn.connects == 0 and conn.round_trips == 0


def test_a_key_the_node_does_not_accept_stays_a_transient_authentication_failure(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    key = tmp_path / "stranger"
    _keygen(key)
    with pytest.raises(AuthenticationFailed, match="SSH authentication as root failed") as e:
        sshd.connect(private_key=key.read_text()).run(["true"])
    assert is_transient(e.value)  # a node still being provisioned may not have the key yet


def test_an_unknown_host_is_refused_under_strict(sshd: LocalSshd) -> None:
    with pytest.raises(HostKeyError, match=r"not in known_hosts .*AcceptNew"):
        sshd.connect(known_hosts="").run(["true"])


def test_accept_new_learns_the_key_and_returns_it_for_recording(sshd: LocalSshd) -> None:
    with sshd.connect(known_hosts="", host_key_policy=HostKeyPolicy.ACCEPT_NEW) as conn:
        conn.run(["true"])
        (learned,) = conn.learned_host_keys
    assert learned.line == f"[{sshd.host}]:{sshd.port} {sshd.host_public_key}"
    # the recorded line is enough for a strict connection afterwards
    with sshd.connect(known_hosts=learned.line + "\n") as conn:
        assert conn.run(["true"]).ok


def test_a_jump_host_carries_the_connection(sshd: LocalSshd) -> None:
    opts = sshd.options(jump=SshTarget("jump", sshd.host, sshd.port))
    with NodeConnection(SshTarget("behind-jump", sshd.host, sshd.port), opts) as conn:
        assert conn.run(["echo", "via jump"]).text == "via jump\n"
        assert conn.connects == 2  # the jump host and the node


def _split(line: str) -> tuple[str, bytes]:
    kind, b64 = line.split()[:2]
    return kind, base64.b64decode(b64)


def test_a_daemon_that_keeps_the_output_open_does_not_hold_the_command(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    pidfile = tmp_path / "daemon.pid"
    with sshd.connect() as conn:
        # the background sleep inherits stdout, as a sloppy init script's daemon would
        r = conn.run(["sh", "-c", 'sleep 60 & echo $! > "$1"; echo started', "sh", str(pidfile)], timeout=15)
        assert (r.exit_status, r.text) == (0, "started\n")
        assert conn.run(["kill", pidfile.read_text().strip()]).ok
