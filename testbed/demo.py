"""The shimshift demo: a real control plane, nodes on Docker, a plan report, a migration to containerd.

    python -m testbed.demo [--nodes 3] [--max-unavailable 1] [--keep] [--plain]
                           [--name demo] [--root DIR] [--profiles P1,P2,...] [--timeout 300]

What it does, in order (every Kubernetes step is real ``kubectl`` against a real API server):

1. brings up the testbed: N fake nodes of different profiles (real sshd, containerd 1.6 and dockerd
   20.10 each, in their own namespaces) and the TLS registry, then the real control plane v1.24.17
   (etcd, kube-apiserver, kube-controller-manager, kube-scheduler: ``testbed.controlplane``), and
   registers the nodes' kubelets on Docker (``docker://``), each with its own node certificate. The
   first kubeadm-cgroupfs node runs the real kubelet 1.23.17 (dockershim), whose pods are real Docker
   containers; the other nodes run the testbed's model kubelet (``testbed/nodes/kubelet.py``), which
   reports pods Running without starting containers (a real kubelet cannot start pods here on the
   systemd cgroup driver). The output says which node is which;
2. installs the operator as the chart would: the chart rendered by ``helm template`` (its CRDs,
   ServiceAccount, ClusterRole, Role and bindings) applied with ``kubectl``, without its Deployment (no
   operator image runs here), then the Deployment's container command (``shimshift run`` with the
   chart's arguments) as a process with a token the API server mints for the chart's ServiceAccount;
3. applies a workload: a Deployment behind a PodDisruptionBudget, a kube-proxy-like DaemonSet, and a
   static pod on the real-kubelet node, and shows them running (``docker ps`` on that node);
4. prints the plan report of the NodeMigration (``shimshift plan --probe-namespace``: read-only facts
   over SSH, nothing changed), applies it in ``mode: Migrate`` and shows live progress (the
   ``kubectl get nodemigrations`` columns and each node's step), then ``shimshift status``;
5. prints ``kubectl get nodes -o wide`` (CONTAINER-RUNTIME ``containerd://``), ``kubectl get pods -A -o
   wide``, and, over SSH on the real-kubelet node, ``crictl ps`` and ``crictl images`` (what replaces
   ``docker ps`` and ``docker images``), checks the outcome (every node Ready on containerd and
   schedulable, every pod Running, crictl listing the node's pods) and prints the total time;
6. tears everything down (processes, namespaces, mounts, files, the control plane), also on Ctrl-C,
   SIGTERM or an error, unless ``--keep`` is given: then it prints how to point your own kubectl at it
   and how to tear it down later (``python -m testbed down --name NAME``).

Real kubelets all manage the host's one cgroup hierarchy: the demo holds the testbed's real-kubelet
host lock (``testbed.nodes.realkubelet.HOST_LOCK``) while its real kubelet runs (with ``--keep``, until
the teardown), waiting for a test run that holds it; ``SHIMSHIFT_HOST_LOCK_HELD=1`` says the caller
holds it already (tests/e2e/test_demo.py).

Exit status: 0 when the migration succeeded and the outcome checks hold, 1 otherwise, 130 when
interrupted. Everything the demo starts carries the testbed's process markers and lives under the
cluster's directory (the control plane's run directory too), so ``python -m testbed down`` removes it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO, TypeVar

import yaml

from testbed import components
from testbed.controlplane.cluster import ControlPlane
from testbed.kubeapi.kubectl import find_kubectl
from testbed.nodes.cluster import CONTROLPLANE_SUBDIR, Cluster, cluster_name_problem, teardown_dir
from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.nodes.layout import DEFAULT_ROOT, MARKER_ENV
from testbed.nodes.node import Node, ssh_run
from testbed.nodes.profiles import ProfileName, profile
from testbed.nodes.realkubelet import HOST_LOCK, OLD_CONTROL_PLANE, check_built, take_host_lock
from testbed.nodes.seeding import daemonset_pods
from testbed.waiting import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "shimshift"
NAMESPACE = "shimshift-system"
RELEASE = "shimshift"
MIGRATION = "demo"
#: Profiles cycled over the demo's nodes: three kubelet layouts, both cgroup drivers, three registry
#: setups (insecure registry, mirror with a CA, air-gapped). The first runs the real kubelet.
PROFILES = ("kubeadm-cgroupfs", "kubeadm-systemd", "kubespray")
#: The profile whose pods a real kubelet starts here (nodes/profiles.py, REAL_KUBELET_SETTINGS): the
#: systemd-driver profiles need systemd for runc's cgroups, and PID 1 of a node is not systemd.
REAL_KUBELET_PROFILE = ProfileName.KUBEADM_CGROUPFS.value
APP_IMAGE = "registry.shimshift.test/team/app:1.0"  # in every node's Docker (testbed seeding)
KUBE_PROXY_IMAGE = "k8s.gcr.io/kube-proxy:v1.23.17"
#: what the containers run (the images hold a busybox): a process that exits on SIGTERM, as a
#: well-behaved service does, so a drain or a stop takes a second, not the whole grace period
SERVE = """["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]"""
STATIC_POD = "node-probe"
FINAL_PHASES = ("Succeeded", "Failed", "Paused")
#: the caller holds the real-kubelet host lock for this process (tests/e2e/test_demo.py)
LOCK_HELD_ENV = "SHIMSHIFT_HOST_LOCK_HELD"
CRI_ENDPOINT = "unix:///run/containerd/containerd.sock"

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
    plane: ControlPlane | None = None
    operator: subprocess.Popen[bytes] | None = None
    lock: IO[str] | None = None
    _api: KubeHttp | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        """Files of the demo (manifests, logs, the operator's kubeconfig), inside the cluster's dir."""
        return self.root / self.name / "demo"

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (the control plane's ``admin.kubeconfig``): what a user's kubectl uses."""
        assert self.plane is not None
        return self.plane.admin_kubeconfig

    @property
    def real_nodes(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.kubelet_binary] if self.cluster else []

    def spawn(
        self, argv: list[str], log_name: str, env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()
    ) -> subprocess.Popen[bytes]:
        """A process marked as part of the testbed cluster (its teardown kills it), in its own
        session so a terminal's Ctrl-C reaches only the demo, which then tears down in order."""
        full_env = {
            **os.environ,
            **(env or {}),
            MARKER_ENV: str(self.root / self.name),
            "PYTHONPATH": _pythonpath(),
        }
        with (self.dir / log_name).open("ab") as log:
            return subprocess.Popen(
                argv,
                cwd=REPO,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )

    def api(self, path: str) -> Any:
        if self._api is None:
            self._api = KubeHttp(self.kubeconfig)
        return self._api.request("GET", path)

    def api_or_none(self, path: str) -> Any:
        try:
            return self.api(path)
        except (OSError, ValueError, ApiError):
            return None

    def teardown(self) -> None:
        cluster_dir = self.root / self.name
        if self.operator is not None and self.operator.poll() is None:
            self.operator.kill()
        if self.plane is not None:
            self.plane.down()
        if self.cluster is not None:
            self.cluster.down()  # every marked process (nodes, relays, operator), the control plane's dir
        elif cluster_dir.exists():
            teardown_dir(cluster_dir)
        if self.operator is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.operator.wait(timeout=5)
        self.release_lock()

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def detach(self) -> None:
        """Leave everything running (``--keep``); ``python -m testbed down`` removes it later. The
        host lock stays held by a marked process, which that teardown ends with the real kubelet."""
        if self.lock is not None:
            holder = self.spawn(
                ["sleep", "infinity"], "host-lock.log", pass_fds=[self.lock.fileno()]
            )  # holds the lock's open file: the lock lasts as long as it does
            holder.returncode = 0  # not ours to wait for any more
            self.release_lock()
        if self.cluster is not None:
            self.cluster.detach()
        if self.operator is not None:
            self.operator.returncode = 0  # not ours to wait for any more (no ResourceWarning)


def _pythonpath() -> str:
    parts = [str(REPO), str(REPO / "operator")]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


# --- kubectl, helm, shimshift --------------------------------------------------------------------


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


def find_helm() -> str | None:
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def chart_values() -> list[str]:
    return [
        "--set",
        "ssh.privateKey.existingSecret=shimshift-ssh",
        "--set",
        "ssh.knownHosts.existingSecret=shimshift-known-hosts",
    ]


def render_chart(helm: str, work: Path) -> list[dict[str, Any]]:
    """``helm template`` of the chart (CRDs included), offline, with helm's homes under ``work``."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        (work / var).mkdir(parents=True, exist_ok=True)
        env[var] = str(work / var)
    argv = [
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--include-crds",
        *chart_values(),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    if result.returncode != 0:
        raise DemoError(f"helm template failed: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def operator_command(docs: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The chart's ServiceAccount and its Deployment's container arguments, without the health and
    metrics listeners (no probes call them here; their ports could be taken)."""
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"] if not a.startswith(("--liveness", "--metrics-port"))]
    return account, [*args, "--metrics-port=0"]


# --- what the demo applies --------------------------------------------------------------------


def workload_manifest() -> str:
    return textwrap.dedent(f"""\
        # What the drain meets: a Deployment whose budget allows one pod down at a time,
        # and a DaemonSet (its pods stay, as kubectl drain --ignore-daemonsets leaves them).
        # The images are in every node's Docker (no registry pull; the migration moves them).
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
              containers:
              - {{name: app, image: "{APP_IMAGE}", imagePullPolicy: IfNotPresent, command: {SERVE}}}
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
              hostNetwork: true
              terminationGracePeriodSeconds: 5
              tolerations: [{{operator: Exists}}]
              containers:
              - name: kube-proxy
                image: "{KUBE_PROXY_IMAGE}"
                imagePullPolicy: IfNotPresent
                command: {SERVE}
        """)


def static_pod_manifest() -> str:
    return textwrap.dedent(f"""\
        # /etc/kubernetes/manifests/{STATIC_POD}.yaml: a static pod, started by the kubelet itself
        apiVersion: v1
        kind: Pod
        metadata: {{name: {STATIC_POD}, namespace: kube-system}}
        spec:
          hostNetwork: true
          containers:
          - {{name: probe, image: "{APP_IMAGE}", imagePullPolicy: IfNotPresent, command: {SERVE}}}
        """)


def migration_manifest(ssh_port: int, max_unavailable: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: shimshift.io/v1alpha1
        kind: NodeMigration
        metadata:
          name: {MIGRATION}
        spec:
          mode: Migrate                 # shimshift plan -f this-file shows first what it will do
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


def pod_running(pod: dict[str, Any]) -> bool:
    """Running, Ready, every container running, and not on its way out."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or ()
    return (
        not pod["metadata"].get("deletionTimestamp")
        and status.get("phase") == "Running"
        and _ready(pod)
        and bool(containers)
        and all("running" in (c.get("state") or {}) for c in containers)
    )


def workload_pods(demo: Demo) -> list[dict[str, Any]]:
    """The demo's pods (web, kube-proxy, the static pod), without those being deleted."""
    pods = (demo.api_or_none("/api/v1/pods") or {}).get("items", [])
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and (
            (p["metadata"].get("labels") or {}).get("app") == "web"
            or (p["metadata"].get("labels") or {}).get("k8s-app") == "kube-proxy"
            or p["metadata"]["name"].startswith(f"{STATIC_POD}-")
        )
    ]


def workload_running(demo: Demo, names: Sequence[str], runtime: str) -> list[dict[str, Any]] | None:
    """The workload's pods once all run: 3 web pods, a kube-proxy pod on every node, the static pod
    on every real-kubelet node; pods of a real kubelet with containers of ``runtime``."""
    pods = workload_pods(demo)
    real = {n.name for n in demo.real_nodes}
    web = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "web"]
    proxies = {p["spec"].get("nodeName") for p in pods if (p["metadata"].get("labels") or {}).get("k8s-app")}
    static = {p["spec"].get("nodeName") for p in pods if p["metadata"]["name"].startswith(f"{STATIC_POD}-")}
    if len(web) != 3 or proxies != set(names) or static != real or not all(map(pod_running, pods)):
        return None
    for p in pods:
        if p["spec"].get("nodeName") in real:
            ids = [c.get("containerID", "") for c in p["status"].get("containerStatuses") or ()]
            if not all(i.startswith(runtime) for i in ids):
                return None
    return pods


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
    """The ``kubectl get nodemigrations`` columns (without the message), then one row per node."""
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
        if demo.operator is not None and demo.operator.poll() is not None:
            raise DemoError(
                f"the operator exited ({demo.operator.returncode}); see {demo.dir / 'operator.log'}"
            )
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
        return wait_until(settled, timeout, what="the migration to settle", interval=0.5)
    except WaitTimeout:
        raise DemoError(
            f"the migration did not settle within {timeout:.0f}s (operator log: {demo.dir / 'operator.log'})"
        ) from None
    finally:
        console.end_live()


# --- the outcome --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the demo checks at the end; ``problems`` empty means every check held."""

    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def judge(demo: Demo, names: Sequence[str], crictl_ps: dict[str, str]) -> Outcome:
    """Every node Ready on containerd and schedulable; the workload Running (a real kubelet's pods in
    containerd); crictl on each real-kubelet node listing its pods' containers."""
    outcome = Outcome()
    items = {n["metadata"]["name"]: n for n in (demo.api_or_none("/api/v1/nodes") or {}).get("items", [])}
    for name in names:
        node = items.get(name, {})
        outcome.check(_ready(node), f"{name} is not Ready")
        outcome.check(runtime_of(node).startswith("containerd://"), f"{name} runs {runtime_of(node) or '?'}")
        outcome.check(not (node.get("spec") or {}).get("unschedulable"), f"{name} is left cordoned")
    pods = workload_running(demo, names, "containerd://")
    outcome.check(pods is not None, "the workload's pods are not all Running (on containerd, where real)")
    for node in demo.real_nodes:
        listed = crictl_ps.get(node.name, "")
        for pod in pods or ():
            if pod["spec"].get("nodeName") == node.name:
                outcome.check(
                    pod["metadata"]["name"] in listed,
                    f"crictl ps on {node.name} does not list pod {pod['metadata']['name']}",
                )
    return outcome


# --- the demo -----------------------------------------------------------------------------------


def choose_kubelets(profiles: Sequence[str]) -> list[bool]:
    """The real kubelet on the first node of the profile whose pods it can start here; real kubelets
    share the host's cgroups, so one per demo."""
    first = next((i for i, p in enumerate(profiles) if p == REAL_KUBELET_PROFILE), None)
    return [i == first for i in range(len(profiles))]


def kubelet_description(node: Node) -> str:
    if node.kubelet_binary:
        return f"real kubelet {node.profile.kubelet_version} (dockershim): its pods are real containers"
    why = (
        f"{node.profile.cgroup_driver} cgroup driver: runc needs systemd for it, the node has none"
        if node.profile.cgroup_driver == "systemd"
        else "one real kubelet per demo: real kubelets share the host's cgroups"
    )
    return f"model kubelet (reports pods Running, starts no containers; {why})"


def run(args: argparse.Namespace, console: Console) -> int:
    kubectl_binary = find_kubectl()
    if kubectl_binary is None:
        raise DemoError("kubectl not found (.tools/bin/kubectl or PATH); run scripts/setup first")
    helm = find_helm()
    if helm is None:
        raise DemoError("helm not found (.tools/bin/helm or PATH); run scripts/setup first")
    if os.geteuid() != 0:
        raise DemoError("the testbed needs root (network, mount and PID namespaces); run as root")
    profiles = list(itertools.islice(itertools.cycle(args.profiles.split(",")), args.nodes))
    real_flags = choose_kubelets(profiles)
    try:
        check_built([p for p, real in zip(profiles, real_flags, strict=True) if real], OLD_CONTROL_PLANE)
    except components.ComponentMissing as e:
        raise DemoError(str(e)) from None
    demo = Demo(args.name, args.root)
    interrupted = False
    ok = False
    try:
        if any(real_flags) and os.environ.get(LOCK_HELD_ENV) != "1":
            who = "a test run or another demo on this machine is running real kubelets"
            try:
                demo.lock = take_host_lock(0, who)
            except WaitTimeout:
                console.line(f"waiting up to {args.lock_wait:.0f}s for the host lock {HOST_LOCK}: {who}")
                try:
                    demo.lock = take_host_lock(args.lock_wait, who)
                except WaitTimeout as e:
                    raise DemoError(str(e)) from None
        console.section(f"testbed: {args.nodes} fake nodes ({', '.join(profiles)}) and a TLS registry")
        console.line(
            "Each node: its own network, mount and PID namespaces with real sshd, containerd 1.6 "
            "and dockerd 20.10; Docker holds the images."
        )
        demo.cluster = Cluster.up(args.name, profiles, root=args.root, real_kubelet=real_flags)
        names = [n.name for n in demo.cluster.nodes]
        demo.dir.mkdir(parents=True, exist_ok=True)

        console.section(
            f"the real control plane {OLD_CONTROL_PLANE} (etcd, kube-apiserver, controllers, scheduler)"
        )
        demo.plane = ControlPlane.up(
            args.name, root=demo.cluster.dir / CONTROLPLANE_SUBDIR, version=OLD_CONTROL_PLANE
        )
        console.line(f"serving on {demo.plane.url}; export KUBECONFIG={demo.kubeconfig}")
        console.line("the kubelets register with their node certificates:")
        for node in demo.cluster.nodes:
            console.line(f"  {node.name} ({node.profile.name}): {kubelet_description(node)}")
        demo.cluster.attach_api(
            demo.plane.url,
            demo.plane.admin_kubeconfig,
            node_kubeconfig=demo.plane.node_kubeconfig,
            admin_kubeconfig=demo.plane.admin_kubeconfig,
        )
        wait_for("the kubelets to report Ready on Docker", lambda: nodes_on(demo, names, "docker://"), 120)
        kubectl = Kubectl(kubectl_binary, demo, console)
        kubectl("get", "nodes", "-o", "wide")

        console.section("the operator's chart: CRDs, ServiceAccount, RBAC (helm template | kubectl apply)")
        docs = render_chart(helm, demo.dir / "helm")
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        rest = [d for d in docs if d["kind"] not in ("CustomResourceDefinition", "Deployment")]
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        (demo.dir / "crds.yaml").write_text(yaml.safe_dump_all(crds, sort_keys=False))
        (demo.dir / "chart.yaml").write_text(yaml.safe_dump_all([namespace, *rest], sort_keys=False))
        console.command(
            [
                "helm",
                "template",
                RELEASE,
                "charts/shimshift",
                "-n",
                NAMESPACE,
                "--include-crds",
                *chart_values(),
            ]
        )
        console.line(
            "(the rendered chart without its Deployment, which needs the operator image: "
            f"{demo.dir}/chart.yaml)"
        )
        kubectl("apply", "-f", str(demo.dir / "crds.yaml"))
        kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            str(demo.dir / "crds.yaml"),
            show=False,
        )
        kubectl("apply", "-f", str(demo.dir / "chart.yaml"))
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

        console.section("a workload: a Deployment behind a PodDisruptionBudget, a DaemonSet, a static pod")
        workload = demo.dir / "workload.yaml"
        workload.write_text(workload_manifest())
        kubectl("apply", "-f", str(workload))
        for node in demo.real_nodes:
            manifest = node.dir.in_node(f"/etc/kubernetes/manifests/{STATIC_POD}.yaml")
            manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.write_text(static_pod_manifest())
            console.line(f"--- {node.name}:/etc/kubernetes/manifests/{STATIC_POD}.yaml")
            console.line(static_pod_manifest().rstrip())
        wait_for(
            "the workload's pods to run on Docker", lambda: workload_running(demo, names, "docker://"), 180
        )
        kubectl("get", "pods", "-A", "-o", "wide")
        for node in demo.real_nodes:
            listed = show_on_node(
                demo,
                console,
                node,
                ["docker", "ps", "--format", "table {{.ID}}\t{{.Image}}\t{{.Status}}\t{{.Names}}"],
            )
            seeded = [p["name"] for p in daemonset_pods(node) if f"_{p['name']}_" in listed]
            if seeded:
                console.line(
                    f"({', '.join(seeded)}: containers the testbed put into Docker before the kubelet "
                    "started, of no pod in this cluster)"
                )

        console.section("the plan: shimshift plan (read-only facts over SSH; nothing changes)")
        manifest = demo.dir / "nodemigration.yaml"
        manifest.write_text(migration_manifest(demo.cluster.ssh_port, args.max_unavailable))
        console.line(f"--- {manifest}")
        console.line(manifest.read_text().rstrip())
        show_plan(demo, console, manifest)

        console.section("the operator (the chart's container command, as the chart's ServiceAccount)")
        account, operator_args = operator_command(docs)
        operator_kubeconfig = demo.plane.service_account_kubeconfig(
            demo.dir / "operator.kubeconfig", NAMESPACE, account
        )
        operator_argv = ["shimshift", *operator_args, "--kubeconfig", str(operator_kubeconfig)]
        console.line(f"ServiceAccount {NAMESPACE}/{account}, a token from the API server (TokenRequest)")
        console.command(operator_argv)
        console.line(f"(log: {demo.dir / 'operator.log'})")
        demo.operator = demo.spawn(
            [sys.executable, "-m", "shimshift", *operator_argv[1:]],
            "operator.log",
            env={"SHIMSHIFT_NAMESPACE": NAMESPACE, "SHIMSHIFT_POD_NAME": f"{RELEASE}-demo"},
        )

        console.section("migrate: kubectl apply the NodeMigration, watch")
        kubectl("apply", "-f", str(manifest))
        migrate_started = time.monotonic()
        final = watch_migration(demo, console, names, args.timeout)
        console.line(f"migration {final.phase} in {time.monotonic() - migrate_started:.0f}s")
        kubectl("get", "nodemigrations")
        show_shimshift(demo, console, ["status", MIGRATION])

        console.section("the nodes and pods now")
        with contextlib.suppress(DemoError):
            wait_for(
                "the workload's pods to run on containerd",
                lambda: workload_running(demo, names, "containerd://"),
                120,
            )
        kubectl("get", "nodes", "-o", "wide")
        kubectl("get", "pods", "-A", "-o", "wide")
        crictl_ps = show_crictl(demo, console) if final.phase == "Succeeded" else {}
        outcome = judge(demo, names, crictl_ps)
        ok = final.phase == "Succeeded" and not outcome.problems
        if ok:
            console.line(
                "\nevery node is on containerd, schedulable, its pods Running; "
                f"total {console.elapsed():.0f}s"
            )
        else:
            console.line(f"\nthe migration ended {final.phase}; total {console.elapsed():.0f}s")
            for problem in outcome.problems:
                console.line(f"  - {problem}")
            console.line(f"operator log: {demo.dir / 'operator.log'}")
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        console.end_live()
        console.line("\ninterrupted")
    finally:
        _shield_signals()
        if args.keep and not interrupted and demo.cluster is not None and demo.plane is not None:
            demo.detach()
            console.section("left running (--keep)")
            console.line(
                f"Point your own kubectl at it (any recent kubectl; this demo used {kubectl_binary}):"
            )
            console.line(f"  export KUBECONFIG={demo.kubeconfig}")
            console.line("  kubectl get nm,nodes -o wide")
            console.line(f"  shimshift status {MIGRATION}")
            console.line(f"  kubectl get nm {MIGRATION} -o yaml")
            console.line(f"Logs: {demo.dir}/operator.log, {demo.plane.dir}/logs/")
            root = "" if args.root == DEFAULT_ROOT else f" --root {args.root}"
            console.line("Tear it all down later (nodes, registry, control plane, operator):")
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


def show_plan(demo: Demo, console: Console, manifest: Path) -> None:
    """``shimshift plan`` on the live cluster, as an admin runs it before applying: exit status 0
    (clean) or 2 (warnings) goes on, 3 (blockers) or 1 stops the demo."""
    argv = ["shimshift", "plan", "-f", str(manifest), "--probe-namespace", NAMESPACE]
    console.command(argv)
    result = run_shimshift(demo, argv[1:], timeout=180)
    console.line(result.stdout.rstrip())
    if result.returncode not in (0, 2):
        raise DemoError(f"shimshift plan exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    console.line(f"(exit status {result.returncode}: {'clean' if result.returncode == 0 else 'warnings'})")


def show_shimshift(demo: Demo, console: Console, args: list[str]) -> None:
    console.command(["shimshift", *args])
    result = run_shimshift(demo, args, timeout=60)
    console.line((result.stdout or result.stderr).rstrip())


def run_shimshift(demo: Demo, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(demo.kubeconfig), "PYTHONPATH": _pythonpath()}
    return subprocess.run(
        [sys.executable, "-m", "shimshift", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def show_on_node(demo: Demo, console: Console, node: Node, argv: list[str]) -> str:
    """Run ``argv`` on ``node`` over SSH, as an admin would, and show it."""
    assert demo.cluster is not None
    client = node.ssh_client(demo.cluster.private_key, demo.cluster.known_hosts)
    try:
        console.command(["ssh", f"{node.ssh_user}@{node.name}", *argv])
        result = ssh_run(client, argv, timeout=30)
    finally:
        client.close()
    console.line(result.stdout.rstrip())
    if result.exit_status != 0:
        raise DemoError(f"{argv[0]} {argv[1]} on {node.name} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def show_crictl(demo: Demo, console: Console) -> dict[str, str]:
    """Without docker, how do I see my containers and images? On a migrated node, over SSH as an admin
    would: `crictl ps` and `crictl images` (cri-tools, which kubeadm nodes have). Returns each
    real-kubelet node's `crictl ps`."""
    console.section("without docker: crictl on the migrated node with the real kubelet")
    listed: dict[str, str] = {}
    nodes = [n for n in demo.real_nodes if n.profile.crictl]
    if not nodes:
        console.line(
            "(no demo node runs the real kubelet with crictl: the profiles are " + ", ".join(PROFILES) + ")"
        )
    for node in nodes:
        listed[node.name] = show_on_node(
            demo, console, node, ["crictl", "--runtime-endpoint", CRI_ENDPOINT, "ps"]
        )
        show_on_node(demo, console, node, ["crictl", "--runtime-endpoint", CRI_ENDPOINT, "images"])
    return listed


def keep_logs(demo: Demo, console: Console) -> None:
    """After a failure: copy the logs out of the cluster dir (teardown removes it), show the tail."""
    logs = sorted(demo.dir.glob("*.log")) if demo.dir.is_dir() else []
    if demo.plane is not None:
        logs += sorted((demo.plane.dir / "logs").glob("*.log"))
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
        help="comma-separated testbed profiles, cycled over the nodes; the first "
        f"{REAL_KUBELET_PROFILE} node runs the real kubelet",
    )
    p.add_argument("--max-unavailable", type=int, default=1, help="spec.rollout.maxUnavailable")
    p.add_argument("--keep", action="store_true", help="leave everything running at the end")
    p.add_argument("--name", default="demo", help="testbed cluster name (nodes are NAME-node1, ...)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where testbed clusters live")
    p.add_argument("--timeout", type=float, default=300, help="seconds the migration may take")
    p.add_argument(
        "--lock-wait",
        type=float,
        default=600,
        help="seconds to wait for another run's real kubelets to finish (the host lock)",
    )
    p.add_argument("--plain", action="store_true", help="one line per change even on a terminal")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.nodes > 9:
        p.error("--nodes must be between 1 and 9")
    problem = cluster_name_problem(args.name, args.nodes)
    if problem:
        p.error(f"argument --name: {problem}")
    for name in args.profiles.split(","):
        try:
            profile(name)
        except ValueError as e:
            p.error(f"argument --profiles: {e}")
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
