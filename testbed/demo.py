"""The shimshift demo: testbed nodes on Docker, a Plan report, a migration to containerd (about a minute).

    python -m testbed.demo [--nodes 3] [--max-unavailable 1] [--keep] [--plain]
                           [--name demo] [--root DIR] [--profiles P1,P2,...] [--timeout 240]

What it does, in order (every Kubernetes step is real ``kubectl`` against the API emulator):

1. brings up the testbed: N fake nodes of different profiles (real sshd, containerd 1.6 and
   dockerd 20.10 each, in their own namespaces), the TLS registry, the API emulator as its own
   process, and the nodes' fake kubelets registering on Docker (``docker://``);
2. applies the NodeMigration CRD, a small workload (a Deployment guarded by a PodDisruptionBudget,
   a DaemonSet), the SSH key and known_hosts Secrets, and a NodeMigration in ``mode: Plan``;
3. starts the operator as a separate process (``shimshift run``), waits for phase ``Planned`` and
   prints the plan report (Markdown, from the ConfigMap the operator wrote);
4. switches the NodeMigration to ``Migrate`` (``kubectl patch``) and shows live progress: the
   ``kubectl get nm`` row and each node's step, redrawn in place on a terminal, one line per change
   otherwise;
5. prints ``kubectl get nodes -o wide`` (the CONTAINER-RUNTIME column now says ``containerd://``),
   then, over SSH on a migrated node that has crictl, ``crictl ps`` and ``crictl images`` (what
   replaces ``docker ps`` and ``docker images``), and the total time;
6. tears everything down (processes, namespaces, mounts, files), also on Ctrl-C, SIGTERM or an
   error, unless ``--keep`` is given: then it prints how to point your own kubectl at it and how to
   tear it down later (``python -m testbed down --name NAME``).

Exit status: 0 when every demo node ends Ready on containerd, 1 otherwise, 130 when interrupted.
Everything the demo starts carries the testbed's process marker, so the testbed's own teardown
(``testbed.nodes.cluster.teardown_dir``) removes the emulator and the operator with the nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

from testbed.kubeapi.kubectl import find_kubectl
from testbed.nodes.cluster import Cluster, cluster_name_problem, teardown_dir
from testbed.nodes.layout import DEFAULT_ROOT, MARKER_ENV
from testbed.nodes.node import ssh_run
from testbed.waiting import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "shimshift-system"
MIGRATION = "demo"
#: Profiles cycled over the demo's nodes: three kubelet layouts, both cgroup drivers, three
#: registry setups (mirror with a CA, insecure registry, air-gapped).
PROFILES = ("kubeadm-systemd", "kubeadm-cgroupfs", "kubespray")
APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in every node's Docker (testbed seeding)
KUBE_PROXY_IMAGE = "k8s.gcr.io/kube-proxy:v1.23.17"
FINAL_PHASES = ("Succeeded", "Failed", "Paused")

T = TypeVar("T")


class DemoError(Exception):
    """A demo step did not happen in time; the message says which and where to look."""


class Interrupted(BaseException):
    """SIGTERM / SIGHUP: unwinds like Ctrl-C so the teardown in ``finally`` runs."""


# --- output -------------------------------------------------------------------------------------


class Console:
    def __init__(self, out: TextIO, tty: bool, started: float) -> None:
        self.out = out
        self.tty = tty
        self.started = started
        self._drawn = 0  # lines of the live display currently on screen (tty only)
        self._shown: list[str] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.tty else text

    def section(self, title: str) -> None:
        self.out.write(f"\n{self._style('==> ' + title, '1;36')}  [{self.elapsed():.0f}s]\n")
        self.out.flush()

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def command(self, argv: Sequence[str]) -> None:
        self.line(self._style("$ " + " ".join(_quote(a) for a in argv), "1"))

    def redraw(self, lines: list[str]) -> None:
        """Replace the previous live display with ``lines`` (terminal only)."""
        width = max(20, shutil.get_terminal_size().columns - 1)
        lines = [line[:width] for line in lines]  # a wrapped line would break the cursor arithmetic
        if lines == self._shown and self._drawn:
            return
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write("".join(line + "\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)
        self._shown = lines

    def end_live(self) -> None:
        self._drawn = 0


def _quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./:=,@%+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def table(rows: list[list[str]], gap: int = 3) -> list[str]:
    """Left-aligned columns separated by three spaces, as kubectl prints them."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [(" " * gap).join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"


# --- processes ------------------------------------------------------------------------------------


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.25,
    log_file: Path | None = None,
) -> T:
    return wait_until(
        check,
        timeout,
        what=what,
        interval=interval,
        error=DemoError,
        detail=(lambda: f"see {log_file}") if log_file else None,
    )


@dataclass
class Demo:
    """Everything the demo started, so ``teardown`` can stop it."""

    name: str
    root: Path
    cluster: Cluster | None = None
    emulator: subprocess.Popen[bytes] | None = None
    operator: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def dir(self) -> Path:
        """Files of the demo (kubeconfig, manifests, logs), inside the testbed cluster's dir."""
        return self.root / self.name / "demo"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """A process marked as part of the testbed cluster (its teardown kills it), in its own
        session so a terminal's Ctrl-C reaches only the demo, which then tears down in order."""
        env = {**os.environ, MARKER_ENV: str(self.root / self.name), "PYTHONPATH": _pythonpath()}
        with (self.dir / log_name).open("ab") as log:
            return subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def api(self, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback http only
            self.url + path, headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http
            return json.loads(response.read())

    def api_or_none(self, path: str) -> Any:
        try:
            return self.api(path)
        except (OSError, ValueError):
            return None

    def teardown(self) -> None:
        cluster_dir = self.root / self.name
        for proc in (self.operator, self.emulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if self.cluster is not None:
            self.cluster.down()  # kills every marked process (nodes, relays, emulator, operator)
        elif cluster_dir.exists():
            teardown_dir(cluster_dir)
        for proc in (self.operator, self.emulator):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def detach(self) -> None:
        """Leave everything running (``--keep``); ``python -m testbed down`` removes it later."""
        if self.cluster is not None:
            self.cluster.detach()
        for proc in (self.operator, self.emulator):
            if proc is not None:
                proc.returncode = 0  # not ours to wait for any more (no ResourceWarning)


def _pythonpath() -> str:
    parts = [str(REPO), str(REPO / "operator")]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


# --- kubectl ------------------------------------------------------------------------------------


class Kubectl:
    def __init__(self, binary: str, demo: Demo, console: Console) -> None:
        self.binary = binary
        self.demo = demo
        self.console = console
        self.env = {
            **os.environ,
            "KUBECONFIG": str(demo.kubeconfig),
            "KUBECACHEDIR": str(demo.dir / "kube-cache"),
        }

    def __call__(self, *args: str, show: bool = True, stdin: str | None = None, quiet: bool = False) -> str:
        """Run ``kubectl ARGS``; show the command and its output unless told not to."""
        if show:
            self.console.command(["kubectl", *args])
        result = subprocess.run(
            [self.binary, *args],
            cwd=REPO,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise DemoError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}"
            )
        if show and not quiet and result.stdout.strip():
            self.console.line(result.stdout.rstrip())
        return result.stdout


# --- what the demo applies --------------------------------------------------------------------


def workload_manifest() -> str:
    return textwrap.dedent(f"""\
        # What the drain meets: a Deployment whose budget allows one pod down at a time,
        # and a DaemonSet (its pods stay, as kubectl drain --ignore-daemonsets leaves them).
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web, namespace: default}}
        spec:
          replicas: 3
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              terminationGracePeriodSeconds: 5
              containers: [{{name: app, image: "{APP_IMAGE}"}}]
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {{name: web, namespace: default}}
        spec:
          minAvailable: 2
          selector: {{matchLabels: {{app: web}}}}
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {{name: kube-proxy, namespace: kube-system}}
        spec:
          selector: {{matchLabels: {{k8s-app: kube-proxy}}}}
          template:
            metadata: {{labels: {{k8s-app: kube-proxy}}}}
            spec:
              tolerations: [{{operator: Exists}}]
              containers: [{{name: kube-proxy, image: "{KUBE_PROXY_IMAGE}"}}]
        """)


def migration_manifest(ssh_port: int, max_unavailable: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: shimshift.io/v1alpha1
        kind: NodeMigration
        metadata:
          name: {MIGRATION}
        spec:
          mode: Plan                    # a dry run first: facts over read-only SSH, a report, no change
          nodeSelector:
            matchLabels: {{kubernetes.io/os: linux}}
          rollout:
            maxUnavailable: {max_unavailable}
          drain:
            timeout: 2m
          ssh:
            user: root
            port: {ssh_port}             # the testbed's sshd (nodes are 127.0.0.11, .12, ...)
            privateKeySecretRef: {{name: shimshift-ssh}}
            knownHostsSecretRef: {{name: shimshift-known-hosts}}
        """)


# --- reading the cluster ------------------------------------------------------------------------


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def runtime_of(node: dict[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", ""))


def nodes_on(demo: Demo, names: Sequence[str], runtime: str) -> bool:
    items = {n["metadata"]["name"]: n for n in (demo.api_or_none("/api/v1/nodes") or {}).get("items", [])}
    return all(n in items and _ready(items[n]) and runtime_of(items[n]).startswith(runtime) for n in names)


def migration_object(demo: Demo) -> dict[str, Any]:
    obj = demo.api_or_none(f"/apis/shimshift.io/v1alpha1/nodemigrations/{MIGRATION}")
    return obj if isinstance(obj, dict) else {}


@dataclass(frozen=True)
class NodeView:
    name: str
    runtime: str
    ready: bool
    cordoned: bool
    phase: str
    step: str

    def describe(self) -> str:
        state = "Ready" if self.ready else "NotReady"
        if self.cordoned:
            state += ",SchedulingDisabled"
        step = f"step {self.step}" if self.step else "no step"
        return f"{self.phase or 'Pending'}, {step}; {state} on {self.runtime or '?'}"


@dataclass(frozen=True)
class View:
    mode: str
    phase: str
    done: str
    current: str
    created: str
    nodes: tuple[NodeView, ...]


def snapshot(demo: Demo, names: Sequence[str]) -> View | None:
    obj = migration_object(demo)
    node_list = demo.api_or_none("/api/v1/nodes")
    if not obj or not isinstance(node_list, dict):
        return None
    status = obj.get("status") or {}
    records = {r.get("name"): r for r in status.get("nodes") or ()}  # a previous version's status
    children = demo.api_or_none(
        f"/apis/shimshift.io/v1alpha1/nodemigrationnodes?labelSelector=shimshift.io/migration={MIGRATION}"
    )
    for child in (children or {}).get("items", []) if isinstance(children, dict) else []:
        node_name = (child.get("spec") or {}).get("node")
        if node_name:  # each node's record: the status of its NodeMigrationNode
            records[node_name] = {**(child.get("status") or {}), "name": node_name}
    items = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    views = []
    for name in names:
        node, record = items.get(name, {}), records.get(name, {})
        step = str(record.get("step") or "")
        if step and record.get("stepState") and record["stepState"] != "Started":
            step = f"{step} {str(record['stepState']).lower()}"  # "configure done", "switch failed"
        views.append(
            NodeView(
                name,
                runtime_of(node),
                _ready(node),
                bool((node.get("spec") or {}).get("unschedulable")),
                str(record.get("phase") or ""),
                step,
            )
        )
    current = status.get("currentNodes") or ""
    if isinstance(current, list):
        current = ",".join(current)
    return View(
        str(obj.get("spec", {}).get("mode", "")),
        str(status.get("phase") or ""),
        str((status.get("summary") or {}).get("progress") or ""),
        str(current),
        str(obj["metadata"].get("creationTimestamp", "")),
        tuple(views),
    )


def _timestamp(text: str) -> float:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return time.time()


def render_view(view: View) -> list[str]:
    lines = table(
        [
            ["NAME", "MODE", "PHASE", "DONE", "CURRENT", "AGE"],
            [
                MIGRATION,
                view.mode,
                view.phase or "<none>",
                view.done or "<none>",
                view.current or "<none>",
                age(time.time() - _timestamp(view.created)),
            ],
        ]
    )
    lines.append("")
    # step first, runtime last: on a narrow terminal the cut falls on the runtime's version
    rows = [["NODE", "MIGRATION", "STEP", "STATUS", "CONTAINER-RUNTIME"]]
    for n in view.nodes:
        status = ("Ready" if n.ready else "NotReady") + (",Cordoned" if n.cordoned else "")
        rows.append([n.name, n.phase or "Pending", n.step or "-", status, n.runtime or "<unknown>"])
    return lines + table(rows, gap=2)


def watch_migration(demo: Demo, console: Console, names: Sequence[str], timeout: float) -> View:
    """Follow the NodeMigration until it settles; returns the last view."""
    seen: dict[str, NodeView] = {}
    header: tuple[str, str, str, str] | None = None

    def settled() -> View | None:
        nonlocal header
        view = snapshot(demo, names)
        if view is not None:
            if console.tty:
                console.redraw(render_view(view))
            else:
                row = (view.mode, view.phase, view.done, view.current)
                if row != header:
                    console.line(
                        f"[{console.elapsed():5.1f}s] nodemigration/{MIGRATION}: mode {view.mode}, "
                        f"phase {view.phase or '<none>'}, done {view.done or '-'}, "
                        f"current {view.current or '-'}"
                    )
                    header = row
                for n in view.nodes:
                    if seen.get(n.name) != n:
                        console.line(f"[{console.elapsed():5.1f}s]   {n.name}: {n.describe()}")
                        seen[n.name] = n
            if view.mode == "Migrate" and view.phase in FINAL_PHASES:
                return view
        return None

    try:
        return wait_until(settled, timeout, what="the migration to settle", interval=0.3)
    except WaitTimeout:
        raise DemoError(
            f"the migration did not settle within {timeout:.0f}s (operator log: {demo.dir / 'operator.log'})"
        ) from None
    finally:
        console.end_live()


# --- the demo -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, console: Console) -> int:
    kubectl_binary = find_kubectl()
    if kubectl_binary is None:
        raise DemoError("kubectl not found (.tools/bin/kubectl or PATH); run scripts/setup first")
    if os.geteuid() != 0:
        raise DemoError("the testbed needs root (network, mount and PID namespaces); run as root")
    demo = Demo(args.name, args.root)
    profiles = list(itertools.islice(itertools.cycle(args.profiles.split(",")), args.nodes))
    interrupted = False
    ok = False
    try:
        console.section(f"testbed: {args.nodes} fake nodes ({', '.join(profiles)}) and a TLS registry")
        console.line(
            "Each node: its own network, mount and PID namespaces with real sshd, containerd 1.6 "
            "and dockerd 20.10; the kubelet is a fake that reports what the runtime says."
        )
        demo.cluster = Cluster.up(args.name, profiles, root=args.root)
        names = [n.name for n in demo.cluster.nodes]
        demo.dir.mkdir(parents=True, exist_ok=True)

        console.section("Kubernetes API emulator (python -m testbed.kubeapi), fake kubelets registering")
        demo.emulator = demo.spawn(
            [
                sys.executable,
                "-m",
                "testbed.kubeapi",
                "--port",
                "0",
                "--kubeconfig",
                str(demo.kubeconfig),
                "--time-factor",
                "0.2",
                "--no-kubelet",
            ],
            "kubeapi.log",
        )
        log = demo.dir / "kubeapi.log"

        def served() -> str | None:
            if demo.emulator is not None and demo.emulator.poll() is not None:
                raise DemoError(f"the API emulator exited ({demo.emulator.returncode}); see {log}")
            text = log.read_text(errors="replace") if log.exists() else ""
            for line in text.splitlines():
                if "serving on " in line:
                    return line.split("serving on ", 1)[1].split()[0]
            return None

        demo.url = wait_for("the API emulator", served, 30, log_file=log)
        demo.cluster.attach_api(demo.url, demo.kubeconfig)
        console.line(f"export KUBECONFIG={demo.kubeconfig}")
        wait_for("the kubelets to report Ready on Docker", lambda: nodes_on(demo, names, "docker://"), 60)
        kubectl = Kubectl(kubectl_binary, demo, console)
        kubectl("get", "nodes", "-o", "wide")

        console.section("the CRDs (NodeMigration, NodeMigrationNode), a workload, the SSH Secrets")
        kubectl("apply", "-f", "crds/")
        workload = demo.dir / "workload.yaml"
        workload.write_text(workload_manifest())
        kubectl("apply", "-f", str(workload))
        kubectl("create", "namespace", NAMESPACE)
        kubectl(
            "-n",
            NAMESPACE,
            "create",
            "secret",
            "generic",
            "shimshift-ssh",
            f"--from-file=ssh-privatekey={demo.cluster.private_key}",
        )
        kubectl(
            "-n",
            NAMESPACE,
            "create",
            "secret",
            "generic",
            "shimshift-known-hosts",
            f"--from-file=known_hosts={demo.cluster.known_hosts}",
        )

        def pods_running() -> bool:
            pods = (demo.api_or_none("/api/v1/pods") or {}).get("items", [])
            return len(pods) >= 3 + len(names) and all(
                (p.get("status") or {}).get("phase") == "Running" for p in pods
            )

        wait_for("the workload's pods to run", pods_running, 60)
        kubectl("get", "pods", "-A", "-o", "wide")

        console.section("the operator (shimshift run, a separate process) and a NodeMigration in Plan mode")
        operator_argv = [
            "python",
            "-m",
            "shimshift",
            "run",
            "--kubeconfig",
            str(demo.kubeconfig),
            "--namespace",
            NAMESPACE,
            "--metrics-port",
            "0",
            "--log-format",
            "plain",
        ]
        console.command(operator_argv)
        console.line(f"(log: {demo.dir / 'operator.log'})")
        demo.operator = demo.spawn([sys.executable, *operator_argv[1:]], "operator.log")
        manifest = demo.dir / "nodemigration.yaml"
        manifest.write_text(migration_manifest(demo.cluster.ssh_port, args.max_unavailable))
        console.line(f"--- {manifest}")
        console.line(manifest.read_text().rstrip())
        kubectl("apply", "-f", str(manifest))

        def planned() -> dict[str, Any] | None:
            if demo.operator is not None and demo.operator.poll() is not None:
                raise DemoError(
                    f"the operator exited ({demo.operator.returncode}); see {demo.dir / 'operator.log'}"
                )
            status = migration_object(demo).get("status") or {}
            return status if status.get("phase") == "Planned" and status.get("reportConfigMap") else None

        status = wait_for("phase Planned", planned, 90, log_file=demo.dir / "operator.log")
        kubectl("get", "nm", "-o", "wide")
        namespace, _, config_map = str(status["reportConfigMap"]).rpartition("/")
        console.section(f"the plan report (ConfigMap {namespace or NAMESPACE}/{config_map}, report.md)")
        report = kubectl(
            "-n",
            namespace or NAMESPACE,
            "get",
            "configmap",
            config_map,
            "-o",
            "jsonpath={.data.report\\.md}",
            quiet=True,
        )
        console.line(report.rstrip())

        console.section("switch to Migrate, watch")
        kubectl("patch", "nm", MIGRATION, "--type", "merge", "-p", '{"spec":{"mode":"Migrate"}}')
        migrate_started = time.monotonic()
        final = watch_migration(demo, console, names, args.timeout)
        console.line(f"migration {final.phase} in {time.monotonic() - migrate_started:.0f}s")

        console.section("the nodes now")
        with contextlib.suppress(DemoError):
            wait_for(
                "the kubelets to report Ready on containerd",
                lambda: nodes_on(demo, names, "containerd://"),
                30,
            )
        kubectl("get", "nm")
        kubectl("get", "nodes", "-o", "wide")
        kubectl("get", "pods", "-A", "-o", "wide")
        ok = final.phase == "Succeeded" and nodes_on(demo, names, "containerd://")
        if ok:
            show_crictl(demo, console)
        verdict = "every node is on containerd" if ok else f"the migration ended {final.phase}"
        console.line(f"\n{verdict}; total {console.elapsed():.0f}s")
        if not ok:
            console.line(f"operator log: {demo.dir / 'operator.log'}")
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        console.end_live()
        console.line("\ninterrupted")
    finally:
        _shield_signals()
        if args.keep and not interrupted and demo.cluster is not None:
            demo.detach()
            console.section("left running (--keep)")
            console.line(
                f"Point your own kubectl at it (any recent kubectl; this demo used {kubectl_binary}):"
            )
            console.line(f"  export KUBECONFIG={demo.kubeconfig}")
            console.line("  kubectl get nm,nodes -o wide")
            console.line(
                f"  kubectl -n {NAMESPACE} get configmap {MIGRATION}-plan -o jsonpath='{{.data.report\\.md}}'"
            )
            console.line(f"  kubectl get nm {MIGRATION} -o yaml")
            console.line(f"Logs: {demo.dir}/operator.log, {demo.dir}/kubeapi.log")
            root = "" if args.root == DEFAULT_ROOT else f" --root {args.root}"
            console.line("Tear it all down later (nodes, registry, API emulator, operator):")
            console.line(f"  cd {REPO} && python3 -m testbed{root} down --name {args.name}")
        else:
            if not ok and not interrupted:
                keep_logs(demo, console)
            console.section("tearing down")
            demo.teardown()
            console.line(f"done: no process, namespace or mount of the demo left  [{console.elapsed():.0f}s]")
            if not args.keep:
                console.line("(--keep leaves it running, to look around with your own kubectl)")
    if interrupted:
        return 130
    return 0 if ok else 1


CRI_ENDPOINT = "unix:///run/containerd/containerd.sock"


def show_crictl(demo: Demo, console: Console) -> None:
    """Without docker, how do I see my containers and images? On a migrated node, over SSH as an admin
    would: `crictl ps` and `crictl images` (cri-tools, which kubeadm nodes have)."""
    assert demo.cluster is not None
    node = next((n for n in demo.cluster.nodes if n.profile.crictl), None)
    console.section("without docker: crictl on a migrated node")
    if node is None:
        console.line("(no demo node has crictl: its profiles are " + ", ".join(PROFILES) + ")")
        return
    client = node.ssh_client(demo.cluster.private_key, demo.cluster.known_hosts)
    try:
        for what in ("ps", "images"):
            argv = ["crictl", "--runtime-endpoint", CRI_ENDPOINT, what]
            console.command(["ssh", f"{node.ssh_user}@{node.name}", *argv])
            result = ssh_run(client, argv, timeout=30)
            console.line(result.stdout.rstrip())
            if result.exit_status != 0:
                raise DemoError(f"crictl {what} on {node.name} failed: {result.stderr.strip()[-500:]}")
            if what == "ps":
                console.line(
                    "(the testbed's kubelet is a model that starts no containers, so this list is empty; "
                    "on a real node it lists every pod's containers, as docker ps did)"
                )
    finally:
        client.close()


def keep_logs(demo: Demo, console: Console) -> None:
    """After a failure: copy the logs out of the cluster dir (teardown removes it), show the tail."""
    logs = sorted(demo.dir.glob("*.log")) if demo.dir.is_dir() else []
    if not logs:
        return
    saved = Path(tempfile.mkdtemp(prefix="shimshift-demo-logs-"))
    for log in logs:
        shutil.copy2(log, saved / log.name)
    operator_log = saved / "operator.log"
    if operator_log.exists():
        console.line("--- last lines of the operator log")
        console.line("\n".join(operator_log.read_text(errors="replace").splitlines()[-25:]))
    console.line(f"logs kept in {saved}")


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    """The first Ctrl-C / SIGTERM / SIGHUP unwinds into the teardown; later ones (``timeout`` and a
    terminal both signal the whole group, users press Ctrl-C twice) are ignored so it can finish."""
    _shield_signals()
    raise Interrupted(signal.Signals(signum).name)


def _shield_signals() -> None:
    """Teardown must finish: a second Ctrl-C or SIGTERM waits for it."""
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m testbed.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3, help="fake nodes (default 3)")
    p.add_argument(
        "--profiles",
        default=",".join(PROFILES),
        help="comma-separated testbed profiles, cycled over the nodes",
    )
    p.add_argument("--max-unavailable", type=int, default=1, help="spec.rollout.maxUnavailable")
    p.add_argument("--keep", action="store_true", help="leave everything running at the end")
    p.add_argument("--name", default="demo", help="testbed cluster name (nodes are NAME-node1, ...)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where testbed clusters live")
    p.add_argument("--timeout", type=float, default=240, help="seconds the migration may take")
    p.add_argument("--plain", action="store_true", help="one line per change even on a terminal")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.nodes > 9:
        p.error("--nodes must be between 1 and 9")
    problem = cluster_name_problem(args.name, args.nodes)
    if problem:
        p.error(f"argument --name: {problem}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, _raise_interrupted)
    console = Console(sys.stdout, sys.stdout.isatty() and not args.plain, time.monotonic())
    try:
        return run(args, console)
    except DemoError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
