"""Running the emulator: in a background thread (for pytest and sync clients) or in the foreground.

``EmulatorThread`` owns an event loop in a daemon thread; ``KubeApi`` is the handle tests use
(URL, kubeconfig path, seeding, reading objects, the request log, faults, time factor, reset).
All store access from other threads is marshalled onto the loop, so tests never race the server.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from .cluster import Cluster
from .controllers import Controllers
from .errors import ApiError
from .faults import Faults, RequestLog
from .registry import Registry, ResourceType
from .server import ApiServer
from .store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    time_factor: float = 1.0
    pod_startup_seconds: float = 1.0
    history_size: int = 50_000
    kopf_peering: bool = True
    controllers: bool = True
    simulate_kubelet: bool = True  # start pods (Pending -> Running, Ready) after pod_startup_seconds
    bookmark_interval: float = 1.0
    # serve HTTPS with this certificate and key (files) instead of plain HTTP, as a real server does
    tls_cert: Path | None = None
    tls_key: Path | None = None


def write_kubeconfig(path: Path, url: str, namespace: str = "default", ca_cert: Path | None = None) -> Path:
    cluster: dict[str, Any] = {"server": url}
    if ca_cert is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_cert.read_bytes()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "kubeapi-emulator", "cluster": cluster}],
        "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "kubeapi-emulator", "user": "emulator", "namespace": namespace},
            }
        ],
        "current-context": "emulator",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load_documents(source: str | Path | dict[str, Any] | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """YAML text, a path to a YAML file, one object, or several; ``kind: List`` is flattened."""
    if isinstance(source, dict):
        docs: list[Any] = [source]
    elif isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml", ".json"))
    ):
        docs = list(yaml.safe_load_all(Path(source).read_text()))
    elif isinstance(source, str):
        docs = list(yaml.safe_load_all(source))
    else:
        docs = list(source)
    out: list[dict[str, Any]] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind", "").endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            out.extend(doc["items"])
        elif isinstance(doc, dict):
            out.append(doc)
    return out


class Emulator:
    """The emulator's parts, living on one event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(history_size=config.history_size)
        self.cluster = Cluster(
            registry=Registry.with_builtins(), store=self.store, time_factor=config.time_factor
        )
        self.controllers = Controllers(
            self.cluster,
            pod_startup_seconds=config.pod_startup_seconds,
            simulate_kubelet=config.simulate_kubelet,
        )
        self.log = RequestLog()
        self.faults = Faults()
        self.server = ApiServer(
            self.cluster, self.controllers, self.log, self.faults, config.bookmark_interval
        )
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self.cluster.bootstrap(kopf_peering=self.config.kopf_peering)
        if self.config.controllers:
            self.controllers.start(loop)
        self.runner = web.AppRunner(
            self.server.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self.runner.setup()
        tls: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        site = web.TCPSite(self.runner, self.config.host, self.config.port, ssl_context=tls)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        self.store.cut_watches()
        if self.runner is not None:
            await self.runner.cleanup()

    def reset(self) -> None:
        """Back to a fresh cluster (namespaces and kopf peering CRDs only); resourceVersions keep rising."""
        self.store.clear()
        self.cluster.registry = Registry.with_builtins()
        self.cluster.time_factor = self.config.time_factor
        self.controllers.pod_startup_seconds = self.config.pod_startup_seconds
        self.controllers._dirty_workloads.clear()
        self.controllers._dirty_pdb_namespaces.clear()
        self.controllers._unscheduled.clear()
        self.log.clear()
        self.faults.clear()
        self.cluster.bootstrap(kopf_peering=self.config.kopf_peering)

    # --- object access for tests and seeding (loop thread only) --------------------------------

    def resolve(self, resource: str) -> ResourceType:
        """'pods', 'Pod', 'deployments.apps', 'apps/v1/deployments' or 'nodemigrations.shimshift.io'."""
        reg = self.cluster.registry
        if resource.count("/") >= 1:
            *gv, plural = resource.split("/")
            group, version = (gv[0], gv[1]) if len(gv) == 2 else ("", gv[0])
            found = reg.get(group, version, plural)
            if found is not None:
                return found
        plural, _, group = resource.partition(".")
        candidates = [
            rt
            for rt in reg.types.values()
            if rt.version == rt.storage_version
            and (
                (rt.plural == plural and (rt.group == group or not group))
                or rt.kind == resource
                or resource in rt.short_names
            )
        ]
        if candidates:
            return min(candidates, key=lambda rt: (rt.group != "", rt.group))  # core first, as kubectl does
        raise KeyError(
            f"unknown resource {resource!r}; use a plural, a Kind, plural.group or group/version/plural"
        )

    def seed(self, source: Any) -> list[dict[str, Any]]:
        created = []
        for doc in load_documents(source):
            rt = self.cluster.registry.by_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
            if rt is None:
                raise KeyError(f"no resource serves {doc.get('apiVersion')}/{doc.get('kind')}")
            ns = None
            if rt.namespaced:
                ns = (doc.get("metadata") or {}).get("namespace") or "default"
                if self.store.get(("", "namespaces"), "", ns) is None:
                    self.cluster.create(
                        self.cluster.rt("", "v1", "namespaces"), None, {"metadata": {"name": ns}}
                    )
            obj = self.cluster.create(rt, ns, doc)
            if "status" in doc and obj.get("status") != doc["status"] and rt.has_status:
                obj = self.cluster.patch(
                    rt,
                    ns,
                    obj["metadata"]["name"],
                    "application/merge-patch+json",
                    {"status": doc["status"]},
                    subresource="status",
                )
            created.append(obj)
        return created


class EmulatorThread:
    """The emulator on its own event loop in a daemon thread, for tests and sync clients."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.emulator = Emulator(self.config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kubeapi-emulator", daemon=True)
        self._ready: Future[str] = Future()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            url = self.loop.run_until_complete(self.emulator.start())
        except BaseException as e:  # surface start-up failures in the starting thread
            self._ready.set_exception(e)
            self.loop.close()
            return
        self._ready.set_result(url)
        self.loop.run_forever()
        self.loop.run_until_complete(self.emulator.stop())
        if self.config.tls_cert is not None:  # closed TLS connections finish closing on later turns
            self.loop.run_until_complete(asyncio.sleep(0.25))
        self.loop.close()

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        return self._ready.result(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0, **kwargs: Any) -> T:
        """Run ``fn`` on the emulator's loop and return its result (exceptions propagate). Called on the
        loop itself (a fault trigger's action), it runs ``fn`` at once (waiting for the loop would hang)."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)

        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)


class KubeApi:
    """What the ``kubeapi`` fixture yields: one running emulator, reset for each test."""

    def __init__(self, thread: EmulatorThread, kubeconfig: Path) -> None:
        self._thread = thread
        self.kubeconfig = kubeconfig

    @property
    def emulator(self) -> Emulator:
        return self._thread.emulator

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def requests(self) -> RequestLog:
        return self.emulator.log

    @property
    def faults(self) -> Faults:
        return self.emulator.faults

    @property
    def time_factor(self) -> float:
        return self.emulator.cluster.time_factor

    @time_factor.setter
    def time_factor(self, value: float) -> None:
        self._thread.call(setattr, self.emulator.cluster, "time_factor", value)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._thread.call(fn, *args, **kwargs)

    def reset(self) -> None:
        self._thread.call(self.emulator.reset)

    def seed(self, source: Any) -> list[dict[str, Any]]:
        """Create objects from YAML text, a YAML file, or dicts, as if POSTed (status kept); returns them."""
        return self._thread.call(self.emulator.seed, source)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            rt = self.emulator.resolve(resource)
            try:
                return self.emulator.cluster.get(rt, namespace if rt.namespaced else None, name)
            except ApiError:
                return None

        return self._thread.call(read)

    def must_get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """``get`` for an object that must exist; an AssertionError naming it when it does not."""
        obj = self.get(resource, name, namespace)
        assert obj is not None, f"{resource} {namespace + '/' if namespace else ''}{name} does not exist"
        return obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            rt = self.emulator.resolve(resource)
            return [s.obj for s in self.emulator.cluster.list(rt, namespace, label_selector, field_selector)]

        return self._thread.call(read)

    def patch(
        self,
        resource: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        def write() -> dict[str, Any]:
            rt = self.emulator.resolve(resource)
            return self.emulator.cluster.patch(
                rt, namespace, name, "application/merge-patch+json", patch, subresource=subresource
            )

        return self._thread.call(write)

    def delete(
        self, resource: str, name: str, namespace: str | None = None, grace_period_seconds: int | None = None
    ) -> dict[str, Any]:
        def write() -> dict[str, Any]:
            rt = self.emulator.resolve(resource)
            opts = {} if grace_period_seconds is None else {"gracePeriodSeconds": grace_period_seconds}
            return self.emulator.cluster.delete(rt, namespace, name, opts)

        return self._thread.call(write)

    def cut_watches(self, resource: str | None = None) -> int:
        def cut() -> int:
            gk = self.emulator.resolve(resource).gk if resource else None
            return self.emulator.store.cut_watches(gk)

        return self._thread.call(cut)

    def open_watches(self, resource: str) -> int:
        """How many watch streams on ``resource`` are registered for live events right now."""

        def count() -> int:
            return len(self.emulator.store.watchers.get(self.emulator.resolve(resource).gk, ()))

        return self._thread.call(count)

    @property
    def resource_version(self) -> int:
        return self.emulator.store.rv
