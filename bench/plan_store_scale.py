"""A Plan-mode NodeMigration over a large fleet on a real API server: the report stored and read back.

A fresh real control plane (testbed/controlplane, the version of scripts/components/versions; etcd
with its real 1.5 MiB request limit, the API server with its 3 MiB body limit and the ConfigMap's
1 MiB) gets N Node objects (created directly, kept Ready: no kubelet, and the controller manager's
node-monitor grace period is longer than the run) and P pods per node (bound to it, their status
written Running as a kubelet would). The real operator process (`tests/e2e/run_operator.py`, whose
node port is the simulated one of tests/e2e/simnodes.py) plans one NodeMigration in Plan mode over all
of them and stores the report. Then the report is read back whole, by `shimshift report` in each
format and by the kubectl pipeline of docs/plan-reports.md (`kubectl get cm -l ... -o json | jq |
base64 -d | gunzip`), and checked: every node and every pod in the JSON, the pipeline's Markdown byte
for byte the one `shimshift report` gives. One line, exactly:

    plan-store: nodes=N pods=P seed_s=S plan_s=T configmaps=K largest_configmap_kib=C
                json_mib=J md_mib=M html_mib=H report_s=R pipeline_equal=yes

(seed_s: creating the fleet, not the operator's; plan_s: from the NodeMigration's creation to phase
Planned; largest_configmap_kib: the largest stored piece, data + binaryData; report_s: `shimshift
report --format json`, the slowest format to read back.) Goals (docs/plan-reports.md): Markdown <= 4 MiB
and HTML <= 8 MiB at 5,000 nodes / 150,000 pods, the JSON complete, every ConfigMap within 1 MiB.

Run: ``python3 bench/plan_store_scale.py [--nodes 5000] [--pods-per-node 30]``. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "bench"))

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.ports import free_port  # noqa: E402
from testbed.waiting import wait_until  # noqa: E402

import rollout_scale  # noqa: E402
from shimshift.kube.api import MERGE_PATCH, Kube, NotFound, load_api_client  # noqa: E402
from shimshift.model import keys  # noqa: E402
from shimshift.resources import load_crd, load_node_crd  # noqa: E402

NAMESPACES = [f"team-{i}" for i in range(7)]
NODEMIGRATIONS = rollout_scale.NODEMIGRATIONS
SEED_THREADS = 16


def plan_migration() -> dict[str, Any]:
    nm = rollout_scale.nodemigration()
    nm["spec"]["mode"] = "Plan"
    return nm


def make_pod(node: str, j: int, rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"app-{rng.getrandbits(64):016x}", "namespace": NAMESPACES[j % len(NAMESPACES)]},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "registry.example/app:1"}],
        },
    }


RUNNING = {
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "c",
                "ready": True,
                "restartCount": 0,
                "image": "registry.example/app:1",
                "imageID": "",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }
}


def seed_node(kube: Kube, i: int) -> None:
    node = rollout_scale.make_node(i)
    kube.request("POST", "/api/v1/nodes", body={k: v for k, v in node.items() if k != "status"})
    kube.request(
        "PATCH", f"/api/v1/nodes/{node['metadata']['name']}/status", body={"status": node["status"]},
        content_type=MERGE_PATCH,
    )  # fmt: skip


def seed_pods(kube: Kube, i: int, per_node: int) -> None:
    rng = random.Random(i)
    node = rollout_scale.make_node(i)["metadata"]["name"]
    for j in range(per_node):
        pod = make_pod(node, j, rng)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        kube.request("POST", f"/api/v1/namespaces/{ns}/pods", body=pod)
        kube.request(
            "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body=RUNNING, content_type=MERGE_PATCH
        )


def has_default_account(kube: Kube, namespace: str) -> bool:
    try:
        kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    except NotFound:
        return False
    return True


def run(nodes: int, per_node: int, timeout: float, save: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="plan-store-bench-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane.up(
            f"plan-store-{os.getpid()}",
            podlife=False,
            controller_manager_args=[rollout_scale.NODE_MONITOR_GRACE],
        )
        try:
            result = measure(plane.admin_kubeconfig, workdir, nodes, per_node, timeout)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                for report in workdir.glob("report.*"):
                    shutil.copy(report, save / report.name)
            return result
        finally:
            plane.down()


def measure(kubeconfig: Path, workdir: Path, nodes: int, per_node: int, timeout: float) -> dict[str, Any]:
    client = load_api_client(str(kubeconfig))
    client.user_agent = "plan-store-bench"
    kube = Kube(client, request_timeout=120)
    try:
        for crd in (load_crd(), load_node_crd()):
            kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
        for ns in NAMESPACES:
            kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
        for crd in (load_crd(), load_node_crd()):
            name = str(crd["metadata"]["name"])
            wait_until(
                functools.partial(rollout_scale.established, kube, name), 60, what=f"CRD {name} established"
            )
        for ns in NAMESPACES:  # the ServiceAccount admission refuses pods until the controller made it
            wait_until(
                functools.partial(has_default_account, kube, ns), 60, what=f"{ns}'s default ServiceAccount"
            )
        began = time.monotonic()
        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(functools.partial(seed_node, kube), range(nodes)))
            list(pool.map(lambda i: seed_pods(kube, i, per_node), range(nodes)))
        seed_s = time.monotonic() - began

        proc = rollout_scale.start_operator(kubeconfig, workdir, 0.0, free_port())
        try:
            began = time.monotonic()
            kube.request("POST", NODEMIGRATIONS, body=plan_migration())
            phase = ""
            while time.monotonic() - began < timeout and proc.poll() is None:
                phase = str(
                    (kube.request("GET", f"{NODEMIGRATIONS}/scale").get("status") or {}).get("phase", "")
                )
                if phase in ("Planned", "Failed"):
                    break
                time.sleep(1.0)  # a benchmark's progress poll, not a test waiting for a watch
            plan_s = time.monotonic() - began
            if phase != "Planned":
                tail = (workdir / "operator.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"plan-store: the plan ended {phase or 'unfinished'}:\n{tail}")
        finally:
            rollout_scale.stop_operator(proc)

        pieces = (
            kube.request(
                "GET",
                "/api/v1/namespaces/default/configmaps",
                query=[("labelSelector", f"{keys.REPORT_LABEL}=scale")],
            ).get("items")
            or []
        )
        largest = max(
            sum(len(k) + len(v.encode()) for k, v in (cm.get("data") or {}).items())
            + sum(len(k) + len(base64.b64decode(v)) for k, v in (cm.get("binaryData") or {}).items())
            for cm in pieces
        )
        sizes: dict[str, float] = {}
        report_s = 0.0
        for fmt in ("json", "md", "html"):
            target = workdir / f"report.{fmt}"
            began = time.monotonic()
            shimshift(
                "report",
                "scale",
                "-n",
                "default",
                "--kubeconfig",
                str(kubeconfig),
                "--format",
                fmt,
                "-o",
                str(target),
            )
            report_s = max(report_s, time.monotonic() - began)
            sizes[fmt] = target.stat().st_size / 2**20
        report = json.loads((workdir / "report.json").read_text())
        counted = (len(report["nodes"]), sum(len(n["pods"]) for n in report["nodes"]))
        if counted != (nodes, nodes * per_node):
            raise SystemExit(
                f"plan-store: the JSON report holds {counted} (nodes, pods), not {(nodes, nodes * per_node)}"
            )
        equal = pipeline(kubeconfig) == (workdir / "report.md").read_bytes()
        return {
            "nodes": nodes, "pods": nodes * per_node, "seed_s": seed_s, "plan_s": plan_s,
            "configmaps": len(pieces), "largest_configmap_kib": largest / 1024, "sizes": sizes,
            "report_s": report_s, "pipeline_equal": equal,
        }  # fmt: skip
    finally:
        kube.close()


def shimshift(*argv: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'operator'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "shimshift", *argv], env=env, capture_output=True, check=False
    )
    if done.returncode not in (0, 2, 3):  # 2 and 3: the plan's verdict (warnings, blocked)
        raise SystemExit(
            f"plan-store: shimshift {' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()[-2000:]}"
        )


def pipeline(kubeconfig: Path) -> bytes:
    """The Markdown report as docs/plan-reports.md gets it with kubectl: plain in `data` when the
    report fits one ConfigMap, else the gzipped pieces joined by jq."""
    kubectl = [shutil.which("kubectl") or "kubectl", "--kubeconfig", str(kubeconfig), "-n", "default"]
    listed = subprocess.run(
        [*kubectl, "get", "cm", "-l", f"{keys.REPORT_LABEL}=scale", "-o", "json"],
        capture_output=True,
        check=True,
    ).stdout
    if not any(cm.get("binaryData") for cm in json.loads(listed)["items"]):
        jsonpath = "jsonpath={.data.report\\.md}"
        return subprocess.run(
            [*kubectl, "get", "cm", "scale-plan", "-o", jsonpath], capture_output=True, check=True
        ).stdout
    joined = subprocess.run(
        [
            "jq", "-j",
            '[.items[].binaryData // {} | to_entries[] | select(.key | startswith("report.md.gz."))]'
            " | sort_by(.key) | .[].value",
        ],
        input=listed, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return gzip.decompress(base64.b64decode(joined))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--pods-per-node", type=int, default=30)
    p.add_argument("--timeout", type=float, default=3600.0, help="longest plan, seconds")
    p.add_argument("--save", type=Path, help="copy the reports read back into this directory")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    r = run(args.nodes, args.pods_per_node, args.timeout, args.save)
    print(
        f"plan-store: nodes={r['nodes']} pods={r['pods']} seed_s={r['seed_s']:.0f} plan_s={r['plan_s']:.1f} "
        f"configmaps={r['configmaps']} largest_configmap_kib={r['largest_configmap_kib']:.0f} "
        f"json_mib={r['sizes']['json']:.1f} md_mib={r['sizes']['md']:.1f} html_mib={r['sizes']['html']:.1f} "
        f"report_s={r['report_s']:.1f} pipeline_equal={'yes' if r['pipeline_equal'] else 'no'}",
        flush=True,
    )
    return 0 if r["pipeline_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
