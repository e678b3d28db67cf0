"""Host-key parsing and fingerprints, and the argv a node really runs (timeout, sudo): pure parts of
the SSH boundary, checked without a server."""

from __future__ import annotations

import base64
import hashlib

import paramiko
import pytest

from shimshift.engine import is_transient
from shimshift.model.spec import HostKeyPolicy, JumpHost, Ssh
from shimshift.remote import (
    HostKeyError,
    HostKeyPin,
    NodeConnection,
    SshOptions,
    SshTarget,
    fingerprint,
    parse_known_hosts,
)
from shimshift.remote.hostkeys import known_hosts_name

PUB = "AAAAC3NzaC1lZDI1NTE5AAAAILEK3VxQq61AoRaRkx7fqv5sPOVNn+SeNXCgo81KgquD"


def test_known_hosts_text_with_ports_hashes_and_junk_is_understood() -> None:
    hashed = paramiko.HostKeys.hash_host("node-9.example")
    text = "\n".join(
        [
            "# comment",
            f"[10.0.0.5]:2222 ssh-ed25519 {PUB}",
            f"{hashed} ssh-ed25519 {PUB}",
            "garbage line",
            "",
        ]
    )
    keys = parse_known_hosts(text)
    assert keys.lookup("[10.0.0.5]:2222") is not None
    assert keys.lookup("10.0.0.5") is None
    assert keys.lookup("node-9.example") is not None
    assert keys.revoked == ()


def test_a_revoked_line_revokes_its_key_for_every_host_and_lists_it_for_none() -> None:
    key = paramiko.Ed25519Key(data=base64.b64decode(PUB))
    keys = parse_known_hosts(f"@revoked node-1.example ssh-ed25519 {PUB}\n")
    assert keys.revoked_key(key)
    assert keys.lookup("node-1.example") is None


def test_a_cert_authority_line_is_refused_with_its_line_and_what_to_do() -> None:
    text = f"node-1 ssh-ed25519 {PUB}\n@cert-authority *.example ssh-ed25519 {PUB}\n"
    with pytest.raises(
        HostKeyError, match=r"known_hosts line 2: @cert-authority .*not supported.*remove"
    ) as e:
        parse_known_hosts(text)
    assert not is_transient(e.value)


def test_an_unreadable_revocation_is_refused_rather_than_dropped() -> None:
    with pytest.raises(HostKeyError, match=r"known_hosts line 1: the @revoked line has no readable key"):
        parse_known_hosts("@revoked * ssh-ed25519 not-base64!\n")


def test_a_pin_is_a_key_type_and_a_sha256_fingerprint_and_nothing_else() -> None:
    key = paramiko.Ed25519Key(data=base64.b64decode(PUB))
    pin = HostKeyPin.of(key)
    assert HostKeyPin.parse(str(pin)) == pin and pin.matches(key)
    assert str(pin) == f"ssh-ed25519 {fingerprint(key)}"
    for bad in ("", "ssh-ed25519", f"ssh-ed25519 {fingerprint(key)} extra", "ssh-ed25519 MD5:ab", "x" * 500):
        with pytest.raises(ValueError, match="is not '<key type> SHA256:"):
            HostKeyPin.parse(bad)


def test_fingerprints_are_in_openssh_sha256_form() -> None:
    key = paramiko.Ed25519Key(data=base64.b64decode(PUB))
    want = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(PUB)).digest()).decode().rstrip("=")
    assert fingerprint(key) == want


def test_known_hosts_names_carry_the_port_unless_it_is_22() -> None:
    assert known_hosts_name("10.0.0.5", 22) == "10.0.0.5"
    assert known_hosts_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"


def test_commands_are_bounded_on_the_node_and_run_under_sudo_for_non_root_users() -> None:
    root = NodeConnection(SshTarget("n", "h"), SshOptions())
    ops = NodeConnection(SshTarget("n", "h", user="ops"), SshOptions())
    assert root.wrap(["ls", "$(x)"], 9.2) == ("timeout", "-k", "5", "10", "ls", "$(x)")
    assert ops.wrap(["ls"], 30) == ("sudo", "-n", "--", "timeout", "-k", "5", "30", "ls")
    assert NodeConnection(SshTarget("n", "h"), SshOptions(sudo=True)).use_sudo


def test_options_from_the_spec_carry_policy_timeouts_and_jump_host() -> None:
    ssh = Ssh(
        user="ops",
        host_key_policy=HostKeyPolicy.ACCEPT_NEW,
        connect_timeout=3,
        command_timeout=40,
        jump_host=JumpHost("bastion", 2200),
    )
    opts = SshOptions.from_spec(ssh, known_hosts="kh", private_key="KEY")
    assert (opts.host_key_policy, opts.connect_timeout, opts.command_timeout) == (
        HostKeyPolicy.ACCEPT_NEW,
        3,
        40,
    )
    assert opts.jump == SshTarget("jump host bastion", "bastion", 2200, "ops")
    assert "KEY" not in repr(opts)


def test_an_argv_that_is_not_a_list_of_strings_is_refused_before_connecting() -> None:
    conn = NodeConnection(SshTarget("n", "h"), SshOptions())
    with pytest.raises(TypeError):
        conn.run([])
    assert conn.round_trips == 0 and conn.connects == 0
