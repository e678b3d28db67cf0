"""Teardown leaves nothing behind, also after the process that brought nodes up was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.nodes import Cluster, cleanup_stale, processes
from testbed.nodes.cluster import is_owned
from testbed.nodes.hygiene import leftovers
from testbed.nodes.processes import marked_processes
from testbed.nodes.profiles import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]

HOLDER = """
import sys, time
from pathlib import Path
from testbed.nodes import Cluster
Cluster.up("killed", ["kubeadm-cgroupfs", "cri-dockerd"], root=Path(sys.argv[1]))
print("READY", flush=True)
time.sleep(600)
"""


@pytest.fixture
def private_root(testbed_root: Path) -> Iterator[Path]:
    prefix = f"{testbed_root.name}-hygiene-"
    for leftover in testbed_root.parent.glob(prefix + "*"):  # from a killed session
        if not processes.pid_alive(int(leftover.name.removeprefix(prefix))):
            cleanup_stale(leftover, include_detached=True)
            leftover.rmdir()
    root = testbed_root.parent / f"{prefix}{os.getpid()}"
    yield root
    cleanup_stale(root, include_detached=True)
    if root.exists():
        root.rmdir()


def test_teardown_leaves_no_processes_mounts_namespaces_or_files(private_root: Path) -> None:
    cluster = Cluster.up("clean", ["kubeadm-systemd", "kubespray"], root=private_root)
    assert marked_processes(private_root)
    cluster.down()
    assert leftovers(private_root) == []


def test_state_of_a_killed_test_process_is_detected_and_cleaned(private_root: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(private_root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert holder.stdout is not None  # stdout=PIPE
    try:
        assert holder.stdout.readline().strip() == "READY"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()
    stale = leftovers(private_root)
    assert any("process" in item for item in stale), "the killed run should have left its nodes running"
    started = time.monotonic()
    assert cleanup_stale(private_root) == [private_root / "killed"]
    assert time.monotonic() - started < 5
    assert leftovers(private_root) == []


def test_a_cluster_in_use_by_a_live_process_is_not_cleaned_as_stale(testbed_cluster: Cluster) -> None:
    assert cleanup_stale(testbed_cluster.dir.parent) == []
    assert all(n.exec(["true"]).exit_status == 0 for n in testbed_cluster.nodes)


def test_the_machine_holds_no_testbed_state_but_that_of_live_clusters(testbed_cluster: Cluster) -> None:
    root = testbed_cluster.dir.parent
    # live: this session's, another session's running at the same time, or one left up by the CLI
    live = {p.name for p in root.iterdir() if is_owned(p) or (p / "detached").exists()}
    assert testbed_cluster.name in live
    assert leftovers(root, allowed=live) == []


def test_the_cli_brings_nodes_up_and_tears_them_down(
    private_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from testbed.__main__ import main

    assert main(["--root", str(private_root), "up", "--nodes", "2", "--name", "cli", "--no-registry"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [n["profile"] for n in described["nodes"]] == ["kubeadm-systemd", "kubeadm-cgroupfs"]
    assert cleanup_stale(private_root) == [], "a cluster left up by the CLI is not stale"
    assert marked_processes(private_root)
    assert main(["--root", str(private_root), "down", "--name", "cli"]) == 0
    assert leftovers(private_root) == []
