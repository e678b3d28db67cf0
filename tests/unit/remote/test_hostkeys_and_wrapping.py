"""Host-key parsing and fingerprints, and the argv a node really runs (timeout, sudo): pure parts of
the SSH boundary, checked without a server."""

from __future__ import annotations

import base64
import hashlib

import paramiko
import pytest

from shimshift.model.spec import HostKeyPolicy, JumpHost, Ssh
from shimshift.remote import NodeConnection, SshOptions, SshTarget, fingerprint, parse_known_hosts
from shimshift.remote.hostkeys import known_hosts_name

PUB = "AAAAC3NzaC1lZDI1NTE5AAAAILEK3VxQq61AoRaRkx7fqv5sPOVNn+SeNXCgo81KgquD"


def test_known_hosts_text_with_ports_hashes_markers_and_junk_is_understood() -> None:
    hashed = paramiko.HostKeys.hash_host("node-9.example")
    text = "\n".join(
        [
            "# comment",
            f"[10.0.0.5]:2222 ssh-ed25519 {PUB}",
            f"{hashed} ssh-ed25519 {PUB}",
            f"@cert-authority *.example ssh-ed25519 {PUB}",
            "garbage line",
            "",
        ]
    )
    keys = parse_known_hosts(text)
    assert keys.lookup("[10.0.0.5]:2222") is not None
    assert keys.lookup("10.0.0.5") is None
    assert keys.lookup("node-9.example") is not None


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
