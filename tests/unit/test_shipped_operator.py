"""The shipped operator has no door for test code: no flag or environment variable names code to import,
and the SSH node port and the node scripts carry no hook that only tests use.

Tests bring their simulated node steps through their own launcher (tests/e2e/run_operator.py), which
hands `shimshift.entry.handlers.run_operator` a factory object; nothing a user can set reaches that parameter.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shimshift.entry.cli import main
from shimshift.remote import SshNodePort

ROOT = Path(__file__).resolve().parents[2]


def test_shimshift_run_has_no_flag_that_names_code_to_import(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--kubeconfig" in help_text
    assert "--node-port" not in help_text
    assert "module:" not in help_text


def test_a_module_named_in_shimshift_node_port_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "shimshift_marker_port.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        "def factory(kube):\n    return lambda migration: None\n"
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
            users: [{name: u, user: {token: t}}]
            contexts: [{name: c, context: {cluster: c, user: u}}]
            current-context: c
            """
        )
    )
    # `shimshift run` up to kopf's event loop, which is replaced by a report of the node ports it got.
    script = (
        "import sys, kopf\n"
        "from shimshift.entry import cli\n"
        "def run(**kwargs):\n"
        "    ports = kwargs['memo'].runtime.engine.node_ports\n"
        "    print('node ports:', type(ports).__module__, type(ports).__qualname__)\n"
        "kopf.run = run\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'operator'}",
        "SHIMSHIFT_NODE_PORT": "shimshift_marker_port:factory",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, "run", "--kubeconfig", str(kubeconfig), "--metrics-port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists(), "the operator imported the module SHIMSHIFT_NODE_PORT named"
    assert "node ports: shimshift.entry.nodeport SshNodePortPool" in result.stdout


def test_the_ssh_node_port_has_no_test_hook() -> None:
    assert not hasattr(SshNodePort, "images_hook")
    assert "images_hook" not in {f.name for f in dataclasses.fields(SshNodePort)}


def test_the_node_scripts_call_systemctl_itself_not_a_wrapper_made_for_a_stand_in() -> None:
    lib = (ROOT / "playbooks" / "scripts" / "lib.sh").read_text()
    assert not re.search(r"^\s*systemctl\s*\(\)", lib, re.MULTILINE)
