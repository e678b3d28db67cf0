"""Bring a real Kubernetes control plane up on the host's loopback and tear it down.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from their Go modules by
``scripts/build-components``; etcd 3.4 is Debian's for the 1.24 control plane), plus the pod-lifecycle
stand-in for Nodes without a kubelet (``podlife``). Everything of one control plane lives in its run
directory ``<root>/<name>/``: certificates, kubeconfigs, logs, ``state.json`` (ports, pids); etcd's data
is on tmpfs. Each process runs in its own process group and carries ``MARKER_ENV=<run dir>``, so
``down`` finds and kills exactly its processes, also those of a run that died.

The API server runs as a kubeadm cluster's does: TLS with a generated CA, client-certificate users,
``Node,RBAC`` authorization, the default admission plugins plus NodeRestriction, service-account
tokens signed by its own key. The controller manager runs every default controller with per-controller
service-account credentials, a root CA and the cluster signer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed import components
from testbed.controlplane.pki import Authority, Pair, service_account_keys
from testbed.nodes.processes import kill_and_wait, marked_processes, pid_alive
from testbed.ports import free_port
from testbed.waiting import wait_until

log = logging.getLogger(__name__)

#: Set on every process a control plane starts; its value is the run directory.
MARKER_ENV = "SHIMSHIFT_CONTROLPLANE"
DEFAULT_ROOT = Path(os.environ.get("SHIMSHIFT_CONTROLPLANE_ROOT", "/tmp/shimshift-controlplane"))
#: etcd's data directory lives on tmpfs: Debian's etcd 3.4 has no --unsafe-no-fsync.
ETCD_DATA_ROOT = Path("/dev/shm")
DEBIAN_ETCD = Path("/usr/bin/etcd")
SERVICE_CIDR = "10.96.0.0/12"
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 90.0
PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ControlPlaneError(RuntimeError):
    """The control plane could not be brought up (the message names the process and its log tail)."""


def default_version() -> str:
    listed = components.versions("kubernetes")
    if not listed:
        raise components.ComponentMissing(
            f"no kubernetes version is listed in {components.VERSIONS_FILE}; the control plane needs one"
        )
    return listed[0]


def _minor(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


def etcd_binary(version: str) -> Path:
    """Debian's etcd 3.4 for control planes up to 1.30; the built etcd 3.6 for newer ones (from 1.31
    the API server's watch-progress requests need etcd 3.4.31+ or 3.5.13+)."""
    if _minor(version) <= 30:
        if not DEBIAN_ETCD.is_file():
            raise components.ComponentMissing(
                f"{DEBIAN_ETCD} is missing: scripts/setup installs Debian's etcd-server"
            )
        return DEBIAN_ETCD
    return components.binary("etcd", "etcd")


def binaries(version: str) -> dict[str, Path]:
    """Every program of a control plane at ``version``; ComponentMissing names the first one missing."""
    found = {"etcd": etcd_binary(version)}
    for program in PROGRAMS[1:]:
        found[program] = components.binary("kubernetes", program, version)
    return found


def kubeconfig_document(
    server: str,
    ca_pem: bytes,
    user: dict[str, str],
    name: str = "shimshift-testbed",
    namespace: str = "default",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def cert_user(pair: Pair) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(pair.cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(pair.key.read_bytes()).decode(),
    }


def write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)
    return path


@dataclass
class State:
    """What ``state.json`` records of a running control plane."""

    name: str
    dir: str
    version: str
    url: str
    admin_kubeconfig: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    etcd_data: str = ""
    podlife: str = ""
    audit_log: str = ""
    started_seconds: float = 0.0


class ControlPlane:
    """A running control plane; ``up`` starts one, ``attach`` takes over one from its run directory."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.dir = Path(state.dir)
        self.pki = Authority(self.dir / "pki")
        self._children: list[subprocess.Popen[bytes]] = []

    # ---- coordinates --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.state.url

    @property
    def version(self) -> str:
        return self.state.version

    @property
    def admin_kubeconfig(self) -> Path:
        return Path(self.state.admin_kubeconfig)

    @property
    def audit_log(self) -> Path | None:
        return Path(self.state.audit_log) if self.state.audit_log else None

    def log_path(self, program: str) -> Path:
        return self.dir / "logs" / f"{program}.log"

    def describe(self) -> dict[str, Any]:
        return asdict(self.state)

    # ---- bring-up -----------------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        name: str = "testbed",
        *,
        root: Path = DEFAULT_ROOT,
        version: str | None = None,
        audit_policy: dict[str, Any] | None = None,
        podlife: bool = True,
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
    ) -> ControlPlane:
        """Start a control plane named ``name`` and wait until it serves (bounded). ``audit_policy``: an
        audit.k8s.io/v1 Policy; the API server then logs to ``<run dir>/logs/audit.log``. The ``*_args``
        are appended to the API server's and the controller manager's own."""
        version = version or default_version()
        programs = binaries(version)
        directory = root / name
        if directory.exists():
            teardown_dir(directory)
        (directory / "logs").mkdir(parents=True)
        began = time.monotonic()
        ports = {
            p: free_port() for p in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler")
        }
        url = f"https://127.0.0.1:{ports['apiserver']}"
        etcd_data = ETCD_DATA_ROOT / f"shimshift-controlplane-{name}-{os.getpid()}"
        state = State(
            name=name,
            dir=str(directory),
            version=version,
            url=url,
            admin_kubeconfig=str(directory / "admin.kubeconfig"),
            ports=ports,
            etcd_data=str(etcd_data),
        )
        cls._write_pki(directory, url)
        plane = cls(state)
        try:
            plane._start(programs, audit_policy, apiserver_args, controller_manager_args)
            if podlife:
                from testbed.controlplane.podlife import start_podlife

                state.podlife = start_podlife(plane)
            state.started_seconds = round(time.monotonic() - began, 1)
            plane._save()
        except BaseException:
            plane.down()
            raise
        log.info("control plane %s %s serving on %s (%.1fs)", name, version, url, state.started_seconds)
        return plane

    @classmethod
    def attach(cls, name: str = "testbed", root: Path = DEFAULT_ROOT) -> ControlPlane | None:
        path = root / name / "state.json"
        if not path.exists():
            return None
        return cls(State(**json.loads(path.read_text())))

    @staticmethod
    def _write_pki(directory: Path, url: str) -> None:
        ca = Authority.create(directory / "pki")
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            ips=("127.0.0.1", "10.96.0.1"),
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        )
        service_account_keys(directory / "pki")
        for file_name, user, groups in (
            ("admin", "kubernetes-admin", ("system:masters",)),
            ("controller-manager", "system:kube-controller-manager", ()),
            ("scheduler", "system:kube-scheduler", ()),
        ):
            pair = ca.issue(file_name, user, organizations=groups)
            document = kubeconfig_document(url, ca.pem, cert_user(pair))
            write_private(directory / f"{file_name}.kubeconfig", yaml.safe_dump(document, sort_keys=False))

    def _spawn(self, program: str, argv: list[str], extra_env: dict[str, str] | None = None) -> int:
        log_file = self.log_path(program).open("ab")
        env = {**os.environ, **(extra_env or {}), MARKER_ENV: str(self.dir)}
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(proxy, None)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.dir,
                start_new_session=True,
            )
        finally:
            log_file.close()
        self._children.append(proc)
        self.state.pids[program] = proc.pid
        self._save()
        return proc.pid

    def _save(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(asdict(self.state), indent=1) + "\n")

    def _start(
        self,
        programs: dict[str, Path],
        audit_policy: dict[str, Any] | None,
        apiserver_args: Sequence[str],
        controller_manager_args: Sequence[str] = (),
    ) -> None:
        d, ports, pki = self.dir, self.state.ports, self.dir / "pki"
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(programs["etcd"]),
                "--name=controlplane",
                f"--data-dir={self.state.etcd_data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=controlplane={peer_url}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ],
        )
        self._wait_http("etcd", f"{etcd_url}/health", None)
        apiserver = [
            str(programs["kube-apiserver"]),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={d / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            # a Node's Hostname does not resolve here; its InternalIP is its SSH address, where the testbed
            # relays the real kubelet's port (testbed.nodes.cluster)
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--enable-bootstrap-token-auth=true",
            "--profiling=false",
            "--v=1",
        ]
        if audit_policy is not None:
            policy = d / "audit-policy.yaml"
            policy.write_text(yaml.safe_dump(audit_policy, sort_keys=False))
            self.state.audit_log = str(d / "logs" / "audit.log")
            apiserver += [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.state.audit_log}",
                "--audit-log-mode=blocking",
                "--audit-log-format=json",
            ]
        self._spawn("kube-apiserver", [*apiserver, *apiserver_args])
        self._wait_http("kube-apiserver", f"{self.url}/readyz", self.pki_context("admin"))
        for program, kubeconfig, extra in (
            (
                "kube-controller-manager",
                d / "controller-manager.kubeconfig",
                [
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--use-service-account-credentials=true",
                    "--controllers=*,bootstrapsigner,tokencleaner",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    *controller_manager_args,
                ],
            ),
            ("kube-scheduler", d / "scheduler.kubeconfig", []),
        ):
            short = program.removeprefix("kube-")
            self._spawn(
                program,
                [
                    str(programs[program]),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports[short]}",
                    f"--cert-dir={d / (short + '-certs')}",
                    "--leader-elect=false",
                    "--v=1",
                    *extra,
                ],
            )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for program in ("kube-controller-manager", "kube-scheduler"):
            port = self.state.ports[program.removeprefix("kube-")]
            self._wait_http(program, f"https://127.0.0.1:{port}/healthz", insecure)
        # the controller manager's service-account controller is running once `default` has its account
        from testbed.nodes.kube_http import ApiError, KubeHttp

        api = KubeHttp(self.admin_kubeconfig)

        def default_account() -> bool:
            try:
                api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            except ApiError:
                return False
            return True

        wait_until(
            default_account,
            START_TIMEOUT,
            what="the controller manager to create the default ServiceAccount",
            interval=0.2,
            error=ControlPlaneError,
            detail=lambda: self.tail("kube-controller-manager"),
        )

    def pki_context(self, client: str) -> ssl.SSLContext:
        """A TLS context trusting the CA, authenticated as ``<client>.crt`` of the run's PKI."""
        context = ssl.create_default_context(cafile=str(self.pki.cert_path))
        pki = self.dir / "pki"
        context.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
        return context

    def _wait_http(self, program: str, url: str, context: ssl.SSLContext | None) -> None:
        pid = self.state.pids[program]

        def serving() -> bool:
            if not pid_alive(pid):
                raise ControlPlaneError(f"{program} exited during start-up; {self.tail(program)}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(
            serving,
            START_TIMEOUT,
            what=f"{program} to serve {url}",
            interval=0.1,
            error=ControlPlaneError,
            detail=lambda: self.tail(program),
        )

    def tail(self, program: str, lines: int = 15) -> str:
        try:
            text = self.log_path(program).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"no log of {program}"
        return f"last lines of {self.log_path(program)}:\n" + "\n".join(text)

    # ---- identities ---------------------------------------------------------------------------
    def node_kubeconfig(self, node_name: str) -> str:
        """A kubeconfig for the kubelet of ``node_name``: a client certificate ``system:node:<name>`` in
        group ``system:nodes``, which the Node authorizer and NodeRestriction admit for that node only."""
        pair = self.pki.issue(
            f"node-{node_name}", f"system:node:{node_name}", organizations=("system:nodes",)
        )
        return yaml.safe_dump(kubeconfig_document(self.url, self.pki.pem, cert_user(pair)), sort_keys=False)

    def user_kubeconfig(self, path: Path, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig authenticating as ``user`` (a client certificate) in ``groups``."""
        safe = "".join(c if c.isalnum() else "-" for c in user)
        pair = self.pki.issue(f"user-{safe}", user, organizations=groups)
        document = kubeconfig_document(self.url, self.pki.pem, cert_user(pair))
        return write_private(path, yaml.safe_dump(document, sort_keys=False))

    def service_account_kubeconfig(
        self, path: Path, namespace: str, name: str, expiration_seconds: int = 86400
    ) -> Path:
        """A kubeconfig with a token the API server mints for ServiceAccount ``namespace/name``
        (TokenRequest), as a pod of that account would present."""
        from testbed.nodes.kube_http import KubeHttp

        api = KubeHttp(self.admin_kubeconfig)
        answer = api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        token = answer["status"]["token"]
        document = kubeconfig_document(self.url, self.pki.pem, {"token": token}, namespace=namespace)
        return write_private(path, yaml.safe_dump(document, sort_keys=False))

    # ---- status and teardown ------------------------------------------------------------------
    def running(self) -> dict[str, bool]:
        return {program: pid_alive(pid) for program, pid in self.state.pids.items()}

    def down(self) -> None:
        teardown_dir(self.dir, self._children, etcd_data=self.state.etcd_data)
        self._children.clear()


def _stop_group(pid: int, how: signal.Signals = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, how)


#: The 1.24 scheduler lingers 15 s after SIGTERM; it keeps no state, so it is killed outright.
STOP_SIGNALS = {"kube-scheduler": signal.SIGKILL}


def teardown_dir(
    directory: Path,
    children: Sequence[subprocess.Popen[bytes]] = (),
    etcd_data: str = "",
    timeout: float = 5.0,
) -> None:
    """Stop every process of the control plane in ``directory``, the last started first (the API
    server before etcd, or it waits for etcd on its way out): SIGTERM to each process group, SIGKILL
    after ``timeout``; then remove the run directory and etcd's data."""
    state_file = directory / "state.json"
    programs: dict[int, str] = {}
    if state_file.exists():
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(state_file.read_text())
            programs = {int(p): name for name, p in (recorded.get("pids") or {}).items()}
            etcd_data = etcd_data or recorded.get("etcd_data") or ""
    pids = list(programs)
    pending = list(children)

    def reap() -> None:
        nonlocal pending
        pending = [proc for proc in pending if proc.poll() is None]

    for pid in reversed(pids):
        if not pid_alive(pid):
            continue
        _stop_group(pid, STOP_SIGNALS.get(programs[pid], signal.SIGTERM))

        def stopped(pid: int = pid) -> bool:
            reap()
            return not pid_alive(pid)

        with contextlib.suppress(AssertionError):
            wait_until(stopped, timeout, what=f"process {pid} to stop", interval=0.02)
    left = [p for p in pids if pid_alive(p)] + list(marked_processes(directory, marker=MARKER_ENV))
    reap()
    if left or pending:
        kill_and_wait(sorted(set(left)), reap=pending)
    if etcd_data:
        shutil.rmtree(etcd_data, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)
