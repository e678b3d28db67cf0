"""`shimshift plan` and `shimshift snapshot`: the dry-run report from a workstation.

`plan` reads a NodeMigration and either a snapshot directory (`--snapshot DIR`, offline, for
air-gapped review) or the live cluster (kubeconfig/context; node facts from `--facts DIR`), builds the
report with `shimshift.planning.build.build_plan` and prints it as Markdown, JSON or HTML. Its exit
status is the report's verdict, so CI can gate on it:

    0  clean: nothing blocks the migration and there is nothing to read first
    1  the inputs are invalid (manifest, snapshot, cluster unreachable): no report
    2  warnings: the migration can run; read the warnings first
    3  blockers: the migration would fail; fix them first

(argparse's own usage errors also exit 2 before any report exists; CI should pass valid flags.)

`snapshot` writes the directory `plan --snapshot` reads. Neither command changes anything anywhere:
the cluster is only listed, and node facts are copied from files the read-only probe wrote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from shimshift.entry.manifests import read_documents
from shimshift.model import parse_nodemigration
from shimshift.model.errors import Problem, ShimshiftError, ValidationError
from shimshift.model.facts import NodeFacts
from shimshift.model.factsjson import facts_from_mapping
from shimshift.model.gates import GateReading
from shimshift.model.limits import MAX_FACTS_BYTES, InputLimitError, json_loads, read_text
from shimshift.model.migration import NodeMigration
from shimshift.planning.apiserver import ApiServers, api_server_hosts
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Cluster, build_cluster, parse_node
from shimshift.planning.report import PlanReport
from shimshift.planning.report_formats import render_report
from shimshift.planning.selection import select_nodes
from shimshift.planning.snapshot import CONTROLLER_KINDS, FACTS_DIR, load_snapshot, write_snapshot
from shimshift.rendering import RegistryMaterial
from shimshift.resources import load_crd
from shimshift.steps.facts.refuse import node_kind

EXIT_INVALID = 1
FORMATS = ("markdown", "json", "html")


def _read_cluster(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    # Imported here: the Kubernetes client is loaded only by the commands that talk to a cluster.
    from shimshift.kube.snapshot import read_cluster_from

    return read_cluster_from(args.kubeconfig, args.context)


def _live_api_servers(args: argparse.Namespace, cluster: Cluster) -> ApiServers:
    """Where the API servers run: the cluster's kube-apiserver mirror pods and default/kubernetes."""
    from shimshift.kube.apiservers import read_endpoint_count_from

    count, why = read_endpoint_count_from(args.kubeconfig, args.context)
    return ApiServers(api_server_hosts(cluster.pods), count, why)


def read_migration(path: str) -> NodeMigration:
    docs, problems = read_documents(Path(path))
    if problems:
        raise ValidationError(problems, source=path)
    if len(docs) != 1:
        raise ValidationError(
            [Problem("", f"expected exactly one NodeMigration, found {len(docs)}")], source=path
        )
    return parse_nodemigration(docs[0].body, load_crd(), source=path)


def render(report: PlanReport, fmt: str) -> str:
    return render_report(report, fmt)


def _facts_dir(directory: Path) -> dict[str, NodeFacts]:
    out: dict[str, NodeFacts] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            raw = json_loads(read_text(path, MAX_FACTS_BYTES))
        except (UnicodeDecodeError, InputLimitError, json.JSONDecodeError) as e:
            raise ValidationError([Problem("", f"refused: {e}")], source=str(path)) from e
        facts = facts_from_mapping(raw, source=str(path))
        out[facts.node] = facts
    return out


def _now(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.now(dt.UTC)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError as e:
        raise ValidationError([Problem("--now", f"{text!r} is not an ISO 8601 time: {e}")]) from e


def probe_facts(
    args: argparse.Namespace, migration: NodeMigration, nodes: list[str], out: TextIO
) -> dict[str, NodeFacts]:
    """Facts of `nodes` from the read-only SSH probe, as the operator's Plan mode gathers them: the SSH
    key and known_hosts come from the Secrets spec.ssh names, in namespace --probe-namespace."""
    from shimshift.entry.nodeport import ssh_node_port
    from shimshift.kube.api import Kube, load_api_client

    kube = Kube(load_api_client(args.kubeconfig, args.context))
    port = ssh_node_port(kube, args.probe_namespace, migration, pin_host_keys=False)  # a plan writes nothing
    facts: dict[str, NodeFacts] = {}

    def probe(node: str) -> None:
        try:
            facts[node] = port.facts(node)
        except ShimshiftError as e:  # the report marks the node NoFacts; one node never stops a plan
            print(f"warning: facts of node {node}: {e}", file=out)

    try:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="shimshift-probe") as pool:
            list(pool.map(probe, nodes))
    finally:
        for node in nodes:
            port.drop(node)  # close the SSH connections (SshNodePort keeps them for the operator)
        kube.close()
    return facts


def read_registry_material(args: argparse.Namespace, migration: NodeMigration) -> RegistryMaterial | None:
    """The registry Secrets (CA bundles, client pairs) from --probe-namespace, read-only, as the
    operator's Plan mode reads them; None without --probe-namespace (such registries are blockers)."""
    if not args.probe_namespace or not any(
        r.ca_secret or r.client_cert_secret for r in migration.spec.containerd.registries
    ):
        return None
    from shimshift.entry.nodeport import registry_material
    from shimshift.kube.api import Kube, load_api_client

    kube = Kube(load_api_client(args.kubeconfig, args.context))
    try:
        return registry_material(kube, args.probe_namespace, migration.spec)
    finally:
        kube.close()


def read_gates(args: argparse.Namespace, migration: NodeMigration) -> tuple[GateReading, ...] | None:
    """spec.rollout.gates read now (Prometheus, the named objects; token and CA Secrets from
    --probe-namespace), read-only, as the operator's Plan mode reads them; None without
    --probe-namespace (the report lists the gates as not read)."""
    if not args.probe_namespace or not migration.spec.rollout.gates.configured:
        return None
    from shimshift.entry.gateport import LiveGates
    from shimshift.kube.api import Kube, load_api_client
    from shimshift.kube.cluster import KubeCluster

    kube = Kube(load_api_client(args.kubeconfig, args.context))
    try:
        return LiveGates(KubeCluster(kube, args.probe_namespace)).read_gates(migration.spec.rollout.gates)
    finally:
        kube.close()


def _live_cluster(args: argparse.Namespace) -> tuple[Cluster, str]:
    objects: Mapping[str, list[dict[str, Any]]] = _read_cluster(args)
    controllers = [obj for name in CONTROLLER_KINDS for obj in objects.get(name, [])]
    cluster = build_cluster(
        objects["nodes"],
        objects["pods"],
        objects["poddisruptionbudgets"],
        controllers,
        objects.get("runtimeclasses", []),
    )
    return cluster, f"live cluster ({args.context or 'current context'})"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around loading a snapshot and planning (this process only).

    Both allocate millions of small objects that all stay alive until the report is written; every
    generation-2 collection would rescan them for nothing (loading the 150,000-pod benchmark snapshot
    takes twice the CPU time with the collector on). Reference counting still frees what is dropped.
    Here, at the CLI, because the pure planning core leaves process-wide settings alone.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    # A plan allocates a few million small objects that all live until the report is written; the
    # cyclic collector would rescan them again and again for nothing (about a fifth of the run time).
    with gc_paused():
        return _plan(args, out)


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    try:
        migration = read_migration(args.filename)
        now = _now(args.now)
        taken_at = ""
        material = None
        readings = None
        api: ApiServers | None = None
        if args.snapshot:
            snap = load_snapshot(Path(args.snapshot))
            cluster, facts, taken_at, source = snap.cluster, dict(snap.facts), snap.taken_at, snap.source
            source = source or f"snapshot {args.snapshot}"
        else:
            cluster, source = _live_cluster(args)
            api = _live_api_servers(args, cluster)
            facts = _facts_dir(Path(args.facts)) if args.facts else {}
            if args.probe_namespace:
                wanted = [
                    n.name
                    for n in select_nodes(migration.spec, cluster.nodes).selected
                    if n.name not in facts and node_kind(n.labels, n.annotations, n.operating_system) is None
                ]  # Windows and OpenShift nodes are refused from their Node object, never probed
                facts.update(probe_facts(args, migration, wanted, out))
            material = read_registry_material(args, migration)
            readings = read_gates(args, migration)
        report = build_plan(
            migration.spec,
            cluster,
            facts,
            now,
            name=migration.name,
            facts_taken_at=taken_at,
            source=source,
            material=material,
            gate_readings=readings,
            operator_node=args.operator_node or "",
            api_servers=api,
        )
    except (OSError, ValueError, ShimshiftError) as e:
        print(f"error: {e}", file=out)
        return EXIT_INVALID
    text = render(report, args.format)
    if args.output:
        target = Path(args.output)
        part = target.with_name(target.name + ".part")
        part.write_text(text, encoding="utf-8")
        part.replace(target)
        s = report.summary
        print(
            f"wrote {target}: {s.verdict.value} ({s.blockers} blocker(s), {s.warnings} warning(s), "
            f"{s.nodes_selected} node(s) in {s.waves} wave(s))",
            file=out,
        )
    else:
        out.write(text)
    return report.summary.exit_code


def run_snapshot(args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.output)
    try:
        objects = _read_cluster(args)
        facts = list(_facts_dir(Path(args.facts)).values()) if args.facts else []
        if args.probe_namespace:
            if not args.filename:
                raise ValidationError(
                    [Problem("--probe-namespace", "needs -f NODEMIGRATION (its ssh and nodes)")]
                )
            migration = read_migration(args.filename)
            known = {f.node for f in facts}
            parsed = [parse_node(n) for n in objects["nodes"]]
            wanted = [n.name for n in select_nodes(migration.spec, parsed).selected if n.name not in known]
            facts += list(probe_facts(args, migration, wanted, out).values())
    except (OSError, ValueError, ShimshiftError) as e:
        print(f"error: {e}", file=out)
        return EXIT_INVALID
    taken = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_snapshot(
        target,
        objects,
        facts,
        taken_at=taken,
        source=f"shimshift snapshot ({args.context or 'current context'})",
        fmt=args.format,
    )
    nodes = {n["metadata"]["name"] for n in objects["nodes"]}
    missing = sorted(nodes - {f.node for f in facts})
    print(
        f"wrote {target}: {len(objects['nodes'])} nodes, {len(objects['pods'])} pods, "
        f"{len(objects['poddisruptionbudgets'])} PDBs, {len(facts)} facts files",
        file=out,
    )
    if missing:
        print(
            f"note: no facts for {len(missing)} node(s) (e.g. {', '.join(missing[:3])}); the plan marks them "
            f"blocked until {target / FACTS_DIR}/<node>.json exists (the operator's Plan mode probes them)",
            file=out,
        )
    return 0


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--filename", required=True, metavar="NODEMIGRATION", help="the NodeMigration manifest"
    )
    p.add_argument(
        "--snapshot", metavar="DIR", help="plan offline from a snapshot directory (shimshift snapshot)"
    )
    p.add_argument("--kubeconfig", help="live cluster: kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="live cluster: kubeconfig context")
    p.add_argument("--facts", metavar="DIR", help="live cluster: directory of <node>.json facts files")
    p.add_argument(
        "--probe-namespace",
        metavar="NS",
        help="live cluster: probe the selected nodes over SSH (read-only), with the Secrets spec.ssh names "
        "read from namespace NS, as the operator's Plan mode does; the registries' CA and client "
        "certificate Secrets are read from NS too (the plan shows their files by hash only), and "
        "spec.rollout.gates are read (Prometheus, the named objects; token and CA Secrets from NS)",
    )
    p.add_argument("--format", choices=FORMATS, default="markdown", help="report format (default markdown)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--now", metavar="TIME", help="report time (ISO 8601), for reproducible reports")
    p.add_argument(
        "--operator-node",
        metavar="NODE",
        help="the node the operator runs on (kubectl get pod -o wide): planned last, as the operator's "
        "own plan and rollout put it",
    )


def add_snapshot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--facts", metavar="DIR", help="directory of <node>.json facts files to include")
    p.add_argument(
        "-f", "--filename", metavar="NODEMIGRATION", help="with --probe-namespace: whose nodes and ssh"
    )
    p.add_argument(
        "--probe-namespace",
        metavar="NS",
        help="probe the NodeMigration's selected nodes over SSH (read-only) for their facts, with the "
        "Secrets spec.ssh names read from namespace NS",
    )
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="object files format")


PLAN_HELP = "print the dry-run plan report (offline from --snapshot, or from the live cluster)"
PLAN_DESCRIPTION = (
    "Build the dry-run plan report of a NodeMigration, offline from a snapshot directory (--snapshot) or "
    "from the live cluster, and print it as Markdown, JSON (schema: docs/plan-report-schema.json) or one "
    "self-contained HTML page. Changes nothing anywhere. Exit status: 0 clean, 1 invalid input (no "
    "report), 2 warnings, 3 blockers."
)
SNAPSHOT_DESCRIPTION = (
    "List nodes, pods, PodDisruptionBudgets and workload controllers of the live cluster (read-only) "
    "and write them, with any facts files given by --facts, as a directory that "
    "`shimshift plan --snapshot` reads anywhere, e.g. on an air-gapped review machine."
)
SNAPSHOT_HELP = "write a snapshot directory (nodes, pods, PDBs, controllers, facts) for offline plans"
