"""One thin, counted door to the Kubernetes API: raw JSON requests and bounded watch streams.

Why raw JSON rather than the typed models: the operator reads a handful of fields from Nodes, Pods,
PDBs and its own objects, and the typed models reject objects that a real API server (or the testbed's
emulator) happily serves with fields the model does not know. Requests still go through the official
client's `ApiClient`, so kubeconfig, in-cluster auth, TLS and proxies behave exactly like kubectl's.

Every failure is turned into the shimshift error family here (`ApiStatusError` and its subclasses),
so callers never see `kubernetes` exceptions. Throttling and server errors (429, 5xx, no answer) are
retried here a few times with a short doubling backoff (at most about 1.5 s in all), as client-go does;
every request shimshift makes is safe to repeat (writes carry a resourceVersion or set absolute
values). An eviction's 429 is a PodDisruptionBudget's answer, not throttling, and goes straight back.
Conflicts (409) go back to the caller, who must re-read. Must not log request bodies (secrets).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shimshift import __version__
from shimshift.kube.paths import check_path
from shimshift.model.errors import KubeError

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Object = dict[str, Any]

#: Answers worth repeating the same request for (0 = no answer at all), and how often / how soon.
RETRIED_STATUSES = frozenset({0, 429, 500, 502, 503, 504})
RETRIES = 3
RETRY_BACKOFF = 0.2
#: Answers that say the API server itself is down or not ready (a proxy or load balancer in front of
#: it answers 502/503/504; an apiserver starting up answers 503), as no answer at all does.
API_DOWN_STATUSES = frozenset({502, 503, 504})


class ApiStatusError(KubeError):
    """The API answered with an error status; `reason` and `message` are the server's own.

    `transient` is decided per answer by its status: throttling (429), conflicts (409) and server errors
    (5xx) can succeed when repeated later; anything else (403, 404, 422...) cannot.
    """

    transient = False  # set per instance from the status

    def __init__(self, status: int, reason: str, message: str, *, what: str, body: Mapping[str, Any]) -> None:
        self.status = status
        self.reason = reason
        self.body = dict(body)
        self.transient = transient_status(status)
        self.api_down = status in API_DOWN_STATUSES
        super().__init__(f"{what}: HTTP {status} {reason}: {message}")


def transient_status(status: int) -> bool:
    """True when repeating a request answered with `status` later can succeed."""
    return status in (409, 429) or status >= 500


class NotFound(ApiStatusError):
    transient = False


class Conflict(ApiStatusError):
    transient = True


class TooManyRequests(ApiStatusError):
    transient = True


class ApiUnreachable(KubeError):
    """The request did not get an answer (connection refused or reset, timeout)."""

    transient = True
    api_down = True


def _error_for(status: int, reason: str, message: str, what: str, body: Mapping[str, Any]) -> ApiStatusError:
    cls = {404: NotFound, 409: Conflict, 429: TooManyRequests}.get(status, ApiStatusError)
    return cls(status, reason, message, what=what, body=body)


#: The User-Agent of every request shimshift's own client sends (kopf's say "kopf/<version>").
USER_AGENT = f"shimshift/{__version__}"


def resource_of(path: str) -> str:
    """`nodes`, `pods/eviction`, `nodemigrations/status`: the resource a path names, without names."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(parts) > 2 and parts[0] == "namespaces":
        parts = parts[2:]
    if not parts:
        return "discovery"
    return f"{parts[0]}/{parts[2]}" if len(parts) >= 3 else parts[0]


#: keep-alive connections to the API server the client keeps (urllib3's pool size): one per node in
#: flight at a large rollout.maxUnavailable, since a wave's nodes write their records side by side.
#: A request beyond the pool opens a connection (a TLS handshake) and closes it afterwards; at 64, a
#: wave of 200 nodes did that hundreds of times a minute ("Connection pool is full, discarding").
#: Connections open only as concurrency needs them; the pool never blocks a request.
CONNECTION_POOL = 512


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from `kubeconfig` (or $KUBECONFIG), else the in-cluster service account."""
    configuration = client.Configuration()
    in_cluster = (
        kubeconfig is None and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST")
    )
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (config.ConfigException, OSError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeError(
            f"cannot load Kubernetes credentials ({where}): {e}; "
            "pass --kubeconfig or run in a pod with a service account"
        ) from e
    # one thread per node in flight shares this client: with the default pool (5 per CPU) every
    # request beyond it opened a connection (a TLS handshake) and threw it away afterwards
    configuration.connection_pool_maxsize = CONNECTION_POOL
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT  # so audit logs (and the testbed's request log) say who asked
    return api


class Kube:
    """Raw JSON requests with the official client's transport; counts every call by verb and path kind."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = request_timeout
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def counted(self) -> Counter[str]:
        """A copy of the request counts so far ("METHOD resource" -> n), safe while others count."""
        with self._lock:
            return Counter(self.calls)

    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.calls[f"{method} {resource_of(path)}"] += 1

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float] | None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        check_path(path)  # values were quoted into segments by their builders (shimshift.kube.paths)
        self._count(method, path)
        what = f"{method} {path}"
        try:
            return self._api.call_api(*params, _request_timeout=timeout or self._timeout)
        except ApiException as e:  # transport-level errors the client already wrapped
            raise _error_for(e.status or 0, e.reason or "", str(e.body or ""), what, {}) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"{what}: no answer from the API server: {e}") from e

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        text: bool = False,
    ) -> Object:
        """The decoded JSON answer (with `text`, the body as text under "text": a pod's log); an
        `ApiStatusError` subclass for any non-2xx status."""
        delay = RETRY_BACKOFF
        for attempt in range(RETRIES + 1):
            try:
                return self._request_once(method, path, query, body, content_type, text)
            except (ApiStatusError, ApiUnreachable) as e:
                status = e.status if isinstance(e, ApiStatusError) else 0
                pdb_answer = status == 429 and path.endswith("/eviction")
                if attempt == RETRIES or pdb_answer or status not in RETRIED_STATUSES:
                    raise
                log.debug("%s %s: %s; retrying in %.1fs", method, path, e, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
        text: bool = False,
    ) -> Object:
        response = self._send(method, path, query, body, content_type, None)
        what = f"{method} {path}"
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiUnreachable(f"{what}: answer cut off: {e}") from e
        if text and 200 <= response.status < 300:
            return {"text": data.decode("utf-8", "replace")}
        try:
            decoded: Any = json.loads(data) if data else {}
        except ValueError:
            decoded = {"message": data[:200].decode("utf-8", "replace")}
        if not 200 <= response.status < 300:
            body = decoded if isinstance(decoded, dict) else {}
            raise _error_for(
                response.status,
                str(body.get("reason", response.reason or "")),
                str(body.get("message", "")),
                what,
                body,
            )
        return decoded if isinstance(decoded, dict) else {"items": decoded}

    def readyz(self, timeout: float = 5.0) -> tuple[bool, str]:
        """Whether the API server answers `GET /readyz` with 200 now, and what it said otherwise (one
        request, not retried: the caller polls). A non-resource URL every client may read (the
        system:public-info-viewer ClusterRole), so it needs no grant of the chart's."""
        try:
            response = self._send("GET", "/readyz", (), None, None, timeout)
            data = response.read()
        except ApiStatusError as e:
            return False, f"HTTP {e.status} {e.reason}"
        except ApiUnreachable as e:
            return False, str(e).rsplit(": ", 1)[-1][:200]
        except (urllib3.exceptions.HTTPError, OSError) as e:
            return False, f"answer cut off: {e}"[:200]
        if response.status == 200:
            return True, "ok"
        return False, f"HTTP {response.status}: {data[:200].decode('utf-8', 'replace').strip()}"

    def watch(
        self, path: str, *, query: Sequence[tuple[str, str]] = (), resource_version: str, timeout: float
    ) -> Iterator[Object]:
        """Watch events (`{"type": ..., "object": ...}`) after `resource_version`, ending within `timeout`.

        The server is asked to end the stream after `timeout` seconds and the socket read is bounded
        too, so a silent or dropped watch can never block the caller longer than that.
        """
        seconds = max(1, int(timeout))
        q = [
            *query,
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        response = self._send("GET", path, q, None, None, (10.0, seconds + 5.0))
        what = f"WATCH {path}"
        if not 200 <= response.status < 300:
            data = response.read()
            raise _error_for(
                response.status, response.reason or "", data[:200].decode("utf-8", "replace"), what, {}
            )
        raw = response.response
        buffer = b""
        try:
            for chunk in raw.stream(amt=65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            # A dropped or garbled watch is normal life for a watcher: end the stream, caller re-lists.
            log.debug("%s ended early: %s", what, e)
        finally:
            raw.release_conn()

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
