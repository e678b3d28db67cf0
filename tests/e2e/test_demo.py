"""The README's main command, run once as a user would (without a terminal): `python -m testbed.demo`.

It must end with every demo node Ready on containerd — as real `kubectl get nodes -o wide` prints it —
and leave nothing behind: no process, mount, network namespace or directory of the testbed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.nodes.fixtures import missing_prerequisites
from testbed.nodes.hygiene import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(330)]

ROOT = Path(__file__).resolve().parents[2]
NAME = "demo-e2e"
NODES = [f"{NAME}-node{i}" for i in (1, 2, 3)]


@pytest.fixture
def testbed_root() -> Iterator[Path]:
    """A testbed root of its own (short: node sockets live under it), so other sessions' clusters
    neither disturb the run nor count as its leftovers."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"the demo needs {', '.join(missing)} (run scripts/setup as root)")
    root = Path(tempfile.mkdtemp(prefix="ssdemo-", dir="/tmp"))
    yield root
    if root.exists():  # only after a failure: the demo's own teardown removes its cluster
        subprocess.run(
            [sys.executable, "-m", "testbed", "--root", str(root), "down", "--all"],
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def section(output: str, title: str) -> str:
    """The lines under `$ <title>` up to the next command or section."""
    lines = output.splitlines()
    start = lines.index(f"$ {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(("$ ", "==> "))), len(lines))
    return "\n".join(lines[start:end])


def test_the_demo_moves_every_node_to_containerd_and_leaves_the_machine_clean(testbed_root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}"}  # this tree's shimshift
    try:
        result = subprocess.run(
            [sys.executable, "-m", "testbed.demo", "--name", NAME, "--root", str(testbed_root)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the demo did not finish within 300s; output so far:\n{e.stdout!r}\n{e.stderr!r}")
    output = result.stdout
    assert result.returncode == 0, output[-6000:] + result.stderr[-3000:]

    report = section(
        output, "kubectl -n shimshift-system get configmap demo-plan -o 'jsonpath={.data.report\\.md}'"
    )
    assert report.startswith("# shimshift plan: demo"), report[:500]
    assert all(f"| {node} |" in report for node in NODES), report[:3000]

    before = section(output, "kubectl get nodes -o wide").splitlines()
    nodes_after = output.rsplit("$ kubectl get nodes -o wide", 1)[1]
    after = section("$ kubectl get nodes -o wide" + nodes_after, "kubectl get nodes -o wide").splitlines()
    assert before[0].split()[-1] == after[0].split()[-1] == "CONTAINER-RUNTIME"
    for lines, runtime in ((before, "docker://"), (after, "containerd://")):
        rows = {line.split()[0]: line for line in lines[1:]}
        assert sorted(rows) == NODES, lines
        for node, row in rows.items():
            assert row.split()[1] == "Ready", row
            assert row.split()[-1].startswith(runtime), (node, row)

    pods_after = section(
        "$ kubectl get pods -A -o wide" + output.rsplit("$ kubectl get pods -A -o wide", 1)[1],
        "kubectl get pods -A -o wide",
    ).splitlines()[1:]
    web = [cells for row in pods_after if len(cells := row.split()) > 3 and cells[1].startswith("web-")]
    assert len(web) == 3 and all(cells[3] == "Running" for cells in web), pods_after  # evicted, back

    changes = [line for line in output.splitlines() if re.match(r"\[\s*[\d.]+s\]   \S+-node\d: ", line)]
    steps = {m.group(1) for line in changes if (m := re.search(r"step (\w+)", line))}
    assert {"drain", "configure", "images", "switch", "verify"} <= steps, changes
    assert "every node is on containerd" in output

    # without docker: crictl on a migrated node (kubeadm-systemd, the first profile, has it)
    endpoint = "crictl --runtime-endpoint unix:///run/containerd/containerd.sock"
    ps = section(output, f"ssh root@{NODES[0]} {endpoint} ps").splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "IMAGE", "CREATED"], ps
    images = section(output, f"ssh root@{NODES[0]} {endpoint} images").splitlines()
    assert images[0].split()[:3] == ["IMAGE", "TAG", "IMAGE", "ID"][:3], images
    listed = {tuple(row.split()[:2]) for row in images[1:]}
    assert ("registry.shimshift.test/team/app", "1.0") in listed, images  # moved from Docker

    assert leftovers(testbed_root) == [], "the demo left this behind"
    assert not any(testbed_root.iterdir())


def test_the_live_table_shows_each_nodes_step_and_runtime_on_an_80_column_terminal() -> None:
    from testbed.demo import NodeView, View, render_view

    cordoned = NodeView("demotty-node2", "docker://20.10.24+dfsg1", True, True, "InProgress", "configure")
    done = NodeView("demotty-node1", "containerd://1.6.20~ds1", True, False, "Succeeded", "finish done")
    view = View("Migrate", "Progressing", "1/2", "demotty-node2", "2026-11-28T01:00:00Z", (done, cordoned))

    shown = [line[:79] for line in render_view(view)]  # what Console.redraw keeps of each line

    rows = {line.split()[0]: line.split() for line in shown if line.startswith("demotty-node")}
    assert rows["demotty-node2"][1:4] == ["InProgress", "configure", "Ready,Cordoned"], shown
    assert rows["demotty-node2"][4].startswith("docker://"), shown
    assert rows["demotty-node1"][1:4] == ["Succeeded", "finish", "done"], shown
    assert rows["demotty-node1"][5].startswith("containerd://"), shown
