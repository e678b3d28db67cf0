"""The plan's eviction predictions against the API emulator's Eviction API on the same cluster.

The emulator's own controllers create the example's workloads (Deployments, StatefulSets) on four
worker nodes with the example's PDBs; `shimshift snapshot` reads that cluster and `shimshift plan`
plans from the snapshot. Then every pod the plan would evict is evicted with dryRun=All (nothing is
deleted): each answer (201 / 429 / 500) must be the one the report predicted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi.runner import KubeApi
from testbed.waiting import wait_until

from shimshift.entry.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "snapshot"
WORKERS = ("worker-01", "worker-02", "worker-03", "worker-04")
ANSWER = {"Allowed": 201, "NoBudget": 429, "MultiplePDBs": 500}


def objects(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())["items"]
    return items


def fresh(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a user would apply it: no uid, owner references or status."""
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}


def wait_ready(kubeapi: KubeApi, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]]:
        pods = [
            p
            for p in kubeapi.list("pods")
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions", [])
            )
        ]
        return pods if len(pods) >= count else []

    return wait_until(
        ready, timeout, what=f"{count} pods Ready (the emulator starting the workloads)", interval=0.2
    )


def test_every_predicted_eviction_answer_is_what_the_eviction_api_says(
    kubeapi: KubeApi, tmp_path: Path
) -> None:
    kubeapi.seed([n for n in objects("nodes") if n["metadata"]["name"] in WORKERS])
    workloads = [
        fresh(o)
        for o in objects("deployments") + objects("statefulsets")
        if o["metadata"]["namespace"] in ("shop", "data", "tenants")
    ]
    kubeapi.seed(workloads)
    kubeapi.seed([fresh(o) for o in objects("poddisruptionbudgets")])
    replicas = sum(w["spec"]["replicas"] for w in workloads)
    assert len(wait_ready(kubeapi, replicas)) >= replicas

    out = io.StringIO()
    assert (
        main(
            [
                "snapshot",
                "-o",
                str(tmp_path / "snap"),
                "--kubeconfig",
                str(kubeapi.kubeconfig),
                "--facts",
                str(EXAMPLE / "facts"),
            ],
            out,
        )
        == 0
    )
    out = io.StringIO()
    main(
        [
            "plan",
            "--snapshot",
            str(tmp_path / "snap"),
            "-f",
            str(REPO / "examples" / "fleet-plan.yaml"),
            "--format",
            "json",
        ],
        out,
    )
    report = json.loads(out.getvalue())
    predicted = [p for n in report["nodes"] for p in n["pods"] if p["action"] == "Evict"]
    assert len(predicted) >= replicas
    assert {p["verdict"] for p in predicted} >= {"Allowed", "NoBudget"}  # shop/payments never allows

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeapi.kubeconfig), client_configuration=configuration)
    api = client.CoreV1Api(client.ApiClient(configuration))
    mismatches = []
    for pod in predicted:
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod["name"], namespace=pod["namespace"]))
        try:
            api.create_namespaced_pod_eviction(pod["name"], pod["namespace"], body, dry_run="All")
            status = 201
        except ApiException as e:
            status = e.status
        if status != ANSWER[pod["verdict"]]:
            mismatches.append((pod["namespace"], pod["name"], pod["verdict"], status))
    assert not mismatches
    assert len(kubeapi.list("pods")) == replicas  # the dry runs deleted nothing
