"""`shimshift status` against the API emulator: the view of a running NodeMigration, and the plugin.

We test these aspects:
- one view shows every node's phase, step, attempts and time in its step, the counts with a bar over
  the nodes and one over the images step (a bar of nodes for these records of an older shimshift,
  without bytes to move; the bar in bytes is tests/unit/test_status_view_bytes.py), each node's last
  error or skip reason, and the conditions;
- a NodeMigrationNode record with bytes shows the bytes moved of the bytes to move;
- a missing NodeMigration, or a name no object can have, is one clear line naming it (exit 1);
- `--watch` prints a new view on each change and ends when the migration is Succeeded;
- where NodeMigrationNode child objects exist their records are shown instead of status.nodes[];
- the console script `kubectl-shimshift` on PATH makes `kubectl shimshift status NAME` work.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
from testbed.kubeapi import KubeApi
from testbed.kubeapi.kubectl import find_kubectl
from testbed.waiting import wait_until

from shimshift.entry import cli
from tests.integration.kube.conftest import migration

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
GIB = 1024**3


def step(id_: str, state: str, started: str = "2026-12-06T10:00:00Z", finished: str = "") -> dict[str, Any]:
    out = {"id": id_, "state": state, "startedAt": started}
    if finished:
        out["finishedAt"] = finished
    return out


def running_migration(name: str = "workers") -> dict[str, Any]:
    obj = migration(name)
    obj["status"] = {
        "phase": "Progressing",
        "observedGeneration": 1,
        "reportConfigMap": f"{name}-plan",
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NodesInFlight",
                "message": "2 nodes in flight",
            },
            {"type": "Paused", "status": "False", "reason": "NotActive"},
        ],
        "nodes": [
            {
                "name": "node-a",
                "phase": "Succeeded",
                "step": "done",
                "stepState": "Done",
                "attempts": 1,
                "images": {"transferred": 30, "pulled": 10, "skipped": 2, "bytes": 4 * GIB},
                "steps": [step("images", "Done", finished="2026-12-06T10:05:00Z")],
            },
            {"name": "node-b", "phase": "Skipped", "attempts": 0, "skipReason": "already on containerd"},
            {
                "name": "node-c",
                "phase": "InProgress",
                "step": "images",
                "stepState": "Started",
                "attempts": 1,
                "steps": [step("drain", "Done"), step("images", "Started", started="2026-12-06T10:10:00Z")],
            },
            {
                "name": "node-d",
                "phase": "RolledBack",
                "step": "rollback",
                "stepState": "Done",
                "attempts": 2,
                "lastError": {"step": "switch", "message": "kubelet did not start", "exitCode": 1},
            },
        ],
    }
    return obj


def status(kubeapi: KubeApi, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["status", *args, "--kubeconfig", str(kubeapi.kubeconfig)], out=out)
    return code, out.getvalue()


def test_one_view_shows_every_node_the_counts_the_images_and_the_conditions(
    kubeapi: KubeApi, crd: dict[str, Any]
) -> None:
    kubeapi.seed(running_migration())
    code, text = status(kubeapi, "workers")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "NodeMigration workers  mode Migrate  phase Progressing  generation 1 (observed 1)"
    assert lines[1] == (
        "Nodes   [###############...............] 2/4 done"
        "  (Skipped 1, InProgress 1, Succeeded 1, RolledBack 1)"
    )
    # status.nodes[] records are an older shimshift's: no bytes to move, so the bar counts nodes
    assert lines[2] == (
        "Images  [##########....................] 1/3 nodes' images step done: 40 images moved, 2 skipped,"
        " 4.0 GiB (a bar of nodes: records of an older shimshift hold no bytes to move)"
    )
    assert lines[3].startswith("        node-c: images step running for ")
    assert lines[3].endswith(" (no bytes recorded yet)")
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["NODE", "PHASE", "STEP", "STATE", "ATTEMPTS", "IN", "STEP", "IMAGES"]
    rows = {line.split()[0]: line.split() for line in table[1:8] if line.startswith("node-")}
    assert rows["node-a"][:5] == ["node-a", "Succeeded", "done", "Done", "1"]
    assert rows["node-a"][6:] == ["40", "moved,", "4.0", "GiB"]
    assert rows["node-b"][:5] == ["node-b", "Skipped", "-", "-", "0"]
    assert rows["node-c"][:5] == ["node-c", "InProgress", "images", "Started", "1"]
    assert rows["node-c"][5] != "-", "the time in its running step"
    assert rows["node-d"][:5] == ["node-d", "RolledBack", "rollback", "Done", "2"]
    assert "    skipped: already on containerd" in lines
    assert "    error in switch: kubelet did not start (exit 1)" in lines
    assert "Conditions:" in lines
    assert any(line.split()[:3] == ["Progressing", "True", "NodesInFlight"] for line in lines)
    assert lines[-1] == "Node records from status.nodes. Plan report: ConfigMap workers-plan."


def test_a_missing_migration_is_one_line_naming_it(kubeapi: KubeApi, crd: dict[str, Any]) -> None:
    assert status(kubeapi, "nope") == (1, "error: NodeMigration 'nope' not found\n")
    code, text = status(kubeapi, "a/b")
    assert code == 1
    assert text.startswith("error: cannot read NodeMigration 'a/b': NodeMigration name 'a/b' is not")
    assert "Traceback" not in text and len(text.splitlines()) == 1


def test_unreadable_credentials_are_one_line(tmp_path: Path) -> None:
    out = io.StringIO()
    code = cli.main(["status", "workers", "--kubeconfig", str(tmp_path / "missing")], out=out)
    assert code == 1
    assert out.getvalue().startswith("error: cannot load Kubernetes credentials")


def test_watch_prints_each_change_and_ends_when_the_migration_succeeds(
    kubeapi: KubeApi, crd: dict[str, Any]
) -> None:
    kubeapi.seed(running_migration())
    out = io.StringIO()
    result: list[int] = []
    argv = ["status", "workers", "--watch", "--interval", "0.1", "--kubeconfig", str(kubeapi.kubeconfig)]
    watcher = threading.Thread(target=lambda: result.append(cli.main(argv, out=out)), daemon=True)
    watcher.start()
    wait_until(lambda: "phase Progressing" in out.getvalue(), 20, what="the first view")
    nodes = running_migration()["status"]["nodes"]
    nodes[2] = {**nodes[2], "phase": "Succeeded", "step": "done", "stepState": "Done"}
    kubeapi.patch(
        "nodemigrations.shimshift.io", "workers", {"status": {"nodes": nodes}}, subresource="status"
    )
    wait_until(lambda: "3/4 done" in out.getvalue(), 20, what="the view after a node finished")
    kubeapi.patch(
        "nodemigrations.shimshift.io", "workers", {"status": {"phase": "Succeeded"}}, subresource="status"
    )
    watcher.join(20)
    assert not watcher.is_alive() and result == [0]
    views = [v for v in out.getvalue().split("\n-- ") if "NodeMigration workers" in v]
    assert len(views) == 3
    assert "phase Succeeded" in views[-1]


NODE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "nodemigrationnodes.shimshift.io"},
    "spec": {
        "group": "shimshift.io",
        "scope": "Namespaced",
        "names": {
            "plural": "nodemigrationnodes",
            "singular": "nodemigrationnode",
            "kind": "NodeMigrationNode",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def child(migration_name: str, node: str, phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigrationNode",
        "metadata": {
            "name": f"{migration_name}-{node}",
            "namespace": "shimshift-system",
            "labels": {"shimshift.io/migration": migration_name},
        },
        "spec": {"nodeName": node},
        "status": {"name": node, "phase": phase, "step": "drain", "stepState": "Started", "attempts": 1},
    }


def test_child_objects_are_read_where_they_exist(kubeapi: KubeApi, crd: dict[str, Any]) -> None:
    kubeapi.seed(running_migration())
    kubeapi.seed(NODE_CRD)
    code, text = status(kubeapi, "workers")
    assert code == 0, text
    assert "Node records from status.nodes." in text, "no child objects yet: status.nodes[]"
    kubeapi.seed(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shimshift-system"}},
            child("workers", "node-y", "InProgress"),
            child("workers", "node-x", "Pending"),
            child("other", "node-z", "Failed"),
        ]
    )
    code, text = status(kubeapi, "workers", "--namespace", "shimshift-system")
    assert code == 0, text
    names = [line.split()[0] for line in text.splitlines() if line.startswith("node-")]
    assert names == ["node-x", "node-y"]
    assert "Node records from NodeMigrationNode." in text
    assert "0/2 done" in text
    # a running images step's record, as the operator writes it while the images move
    moving = child("workers", "node-y", "InProgress")
    moving["status"] |= {
        "step": "images",
        "images": {"transferred": 0, "pulled": 0, "skipped": 0, "bytes": 0}
        | {"bytesToMove": 2 * GIB, "bytesMoved": GIB // 2},
    }
    kubeapi.patch(
        "nodemigrationnodes.shimshift.io",
        "workers-node-y",
        {"status": moving["status"]},
        namespace="shimshift-system",
        subresource="status",
    )
    code, text = status(kubeapi, "workers", "--namespace", "shimshift-system")
    assert code == 0, text
    assert "        node-y  [#####...............] 512.0 MiB of 2.0 GiB (25%), images step running" in text


def test_kubectl_finds_the_plugin_on_path(kubeapi: KubeApi, crd: dict[str, Any], tmp_path: Path) -> None:
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl: run scripts/setup (installs .tools/bin/kubectl) or install kubectl")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["kubectl-shimshift"].split(":")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "kubectl-shimshift"  # what pip writes for the console script
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n"
    )
    plugin.chmod(0o755)
    kubeapi.seed(running_migration())
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(kubeapi.kubeconfig),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
    }

    def kubectl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )

    listed = kubectl_run("plugin", "list")
    assert str(plugin) in listed.stdout, listed.stdout + listed.stderr
    shown = kubectl_run("shimshift", "status", "workers")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("NodeMigration workers  mode Migrate  phase Progressing")
    assert "node-d" in shown.stdout
    usage = kubectl_run("shimshift", "status", "--help")
    assert usage.stdout.startswith("usage: kubectl shimshift status")
    missing = kubectl_run("shimshift", "status", "nope")
    assert missing.returncode == 1
    assert missing.stdout == "error: NodeMigration 'nope' not found\n"
