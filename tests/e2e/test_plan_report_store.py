"""A Plan-mode report too large for one ConfigMap, end to end: the operator process plans a fleet of
400 nodes and 20,000 pods on the API emulator (which refuses what a real server refuses: a ConfigMap's
data over 1 MiB, an object over 1.5 MiB), stores the report gzipped and split over several ConfigMaps,
and `shimshift report` and the documented kubectl pipeline give back every format whole: byte for byte
what `shimshift plan` renders offline from a snapshot of the same cluster (the origin line aside: facts
taken at another time, from a snapshot)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.kubeapi import KubeApi
from testbed.kubeapi.limits import MAX_CONFIGMAP_BYTES, MAX_STORED_BYTES

from shimshift.entry.cli import main
from shimshift.model import keys
from shimshift.model.facts import NodeFacts
from shimshift.model.factsjson import facts_to_json_text
from shimshift.model.status import Phase
from tests.e2e.conftest import Operator, eventually, migration, status_of

#: SHIMSHIFT_E2E_PLAN_NODES and _PODS run it on a larger fleet by hand (e.g. 5000 and 30: the bench's).
NODES = int(os.environ.get("SHIMSHIFT_E2E_PLAN_NODES", "400"))
PODS_PER_NODE = int(os.environ.get("SHIMSHIFT_E2E_PLAN_PODS", "50"))
PLAN_SECONDS = max(300, NODES)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(PLAN_SECONDS + 300)]


def _sim_facts(node: str) -> NodeFacts:
    """tests/e2e/simnodes.py's facts of a node, as the operator probes them there."""
    return NodeFacts(node=node, docker_version="20.10.24", containerd_version="1.6.20", docker_running=True)


def _fleet() -> list[dict[str, Any]]:
    rng = random.Random(18)
    objects: list[dict[str, Any]] = []
    for i in range(NODES):
        name = f"w-{i:04d}"
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"pool": "workers"}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {
                        "containerRuntimeVersion": "docker://20.10.24",
                        "kubeletVersion": "v1.23.17",
                    },
                },
            }
        )
        for j in range(PODS_PER_NODE):
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"app-{rng.getrandbits(64):016x}",
                        "namespace": f"team-{j % 7}",
                        # left alone by the emulator's simulated kubelet: the pods stay as seeded
                        "annotations": {"testbed.shimshift.io/external-kubelet": "true"},
                    },
                    "spec": {
                        "nodeName": name,
                        "containers": [{"name": "c", "image": "registry.example/app:1"}],
                    },
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                }
            )
    return objects


def _cli(*argv: str) -> None:
    out = io.StringIO()
    status = main(list(argv), out)
    assert status in (0, 2, 3), out.getvalue()


def test_a_plan_too_large_for_a_configmap_is_stored_split_and_read_back_whole(
    cluster: KubeApi, operator_factory: Callable[..., Operator], tmp_path: Path
) -> None:
    fleet = _fleet()
    for start in range(0, len(fleet), 2000):  # each seed call is one turn of the emulator's loop
        cluster.seed(fleet[start : start + 2000])
    operator_factory().start()
    cluster.seed(migration(mode="Plan"))
    eventually(lambda: status_of(cluster).phase == Phase.PLANNED, PLAN_SECONDS, "the plan")
    assert status_of(cluster).report_config_map == "default/m-plan"

    # stored gzipped over several ConfigMaps, each within what a real server accepts
    pieces = cluster.list("configmaps", "default", label_selector=f"{keys.REPORT_LABEL}=m")
    names = sorted(cm["metadata"]["name"] for cm in pieces)
    assert len(names) >= 2 and names[0] == "m-plan", names
    for cm in pieces:
        assert cm["metadata"]["ownerReferences"][0]["name"] == "m"
        size = sum(len(k) + len(base64.b64decode(v)) for k, v in (cm.get("binaryData") or {}).items())
        assert (
            size + sum(len(k) + len(v.encode()) for k, v in (cm.get("data") or {}).items())
            <= MAX_CONFIGMAP_BYTES
        )
        assert len(json.dumps(cm)) <= MAX_STORED_BYTES

    # the offline rendering: a snapshot of the same cluster, with the facts the operator probed
    kubeconfig = str(cluster.kubeconfig)
    facts = tmp_path / "facts"
    facts.mkdir()
    for i in range(NODES):
        node = f"w-{i:04d}"
        (facts / f"{node}.json").write_text(facts_to_json_text(_sim_facts(node)))
    snap = tmp_path / "snapshot"
    _cli("snapshot", "-o", str(snap), "--kubeconfig", kubeconfig, "--facts", str(facts))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump(migration(mode="Plan")))

    stored: dict[str, str] = {}
    for fmt in ("json", "md", "html"):
        target = tmp_path / f"stored.{fmt}"
        _cli("report", "m", "-n", "default", "--kubeconfig", kubeconfig, "--format", fmt, "-o", str(target))
        stored[fmt] = target.read_text()
    op = json.loads(stored["json"])
    assert len(op["nodes"]) == NODES
    assert sum(len(n["pods"]) for n in op["nodes"]) == NODES * PODS_PER_NODE

    for fmt, plan_fmt in (("json", "json"), ("md", "markdown"), ("html", "html")):
        offline = tmp_path / f"offline.{fmt}"
        _cli(
            "plan", "--snapshot", str(snap), "-f", str(manifest), "--format", plan_fmt,
            "--now", op["generatedAt"], "-o", str(offline),
        )  # fmt: skip
        text = offline.read_text()
        if fmt == "json":
            cli = json.loads(text)
            assert (cli["factsTakenAt"], op["factsTakenAt"]) != ("", "")
            cli["factsTakenAt"], cli["source"] = op["factsTakenAt"], op["source"]
            assert cli == op
            continue
        snap_meta = json.loads((snap / "snapshot.json").read_text())
        origin = f"from facts taken {snap_meta['takenAt']} ({snap_meta['source']})"
        assert text.count(origin) == 1, origin
        assert text.replace(origin, f"from facts taken {op['factsTakenAt']}") == stored[fmt], fmt

    # the kubectl pipeline of docs/plan-reports.md gives the same Markdown
    listed = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "-n", "default", "get", "cm", "-l", f"{keys.REPORT_LABEL}=m", "-o", "json"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    joined = subprocess.run(
        [
            "jq", "-j",
            '[.items[].binaryData // {} | to_entries[] | select(.key | startswith("report.md.gz."))]'
            " | sort_by(.key) | .[].value",
        ],
        input=listed, capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert gzip.decompress(base64.b64decode(joined)).decode() == stored["md"]
