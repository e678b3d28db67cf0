"""Reading where the cluster's API servers run, and waiting for the API to be ready again.

`api_servers_of`: the kube-apiserver mirror pods (kube-system's pods with the label
`component=kube-apiserver`, which kubeadm gives its static pod: `KubeCluster` keeps them in a
watch-fed cache, `list_api_server_pods` / `watch_api_server_pods`) and the `default/kubernetes`
Endpoints (one GET), the inputs of `planning.apiserver.sole_api_nodes`. Endpoints that cannot be read
(a 403 from an RBAC without the chart's grant, a 404) are not an error: the answer says so
(`ApiServers.unreadable`) and the plan reports it. `wait_api_ready`: polls `/readyz` (bounded) while
the only API server is down during its node's switch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Kube, Object, load_api_client
from shimshift.kube.paths import segment
from shimshift.planning.apiserver import (
    API_SERVER_COMPONENT,
    API_SERVER_NAMESPACE,
    COMPONENT_LABEL,
    ENDPOINTS_NAME,
    ENDPOINTS_NAMESPACE,
    ApiServers,
    api_server_hosts,
    endpoint_addresses,
)
from shimshift.planning.cluster import Pod

log = logging.getLogger(__name__)

#: How often `/readyz` is asked while the API is down.
READYZ_POLL = 1.0


def api_server_pods_path() -> str:
    return f"/api/v1/namespaces/{segment(API_SERVER_NAMESPACE, 'namespace')}/pods"


def endpoints_path() -> str:
    return (
        f"/api/v1/namespaces/{segment(ENDPOINTS_NAMESPACE, 'namespace')}/endpoints/"
        f"{segment(ENDPOINTS_NAME, 'endpoints name')}"
    )


#: The label selector of kubeadm's kube-apiserver static pods.
API_SERVER_SELECTOR = f"{COMPONENT_LABEL}={API_SERVER_COMPONENT}"


def list_api_server_pods(kube: Kube) -> Object:
    """The kube-apiserver pods of kube-system (a LIST the server filters by label: a handful)."""
    return kube.request("GET", api_server_pods_path(), query=[("labelSelector", API_SERVER_SELECTOR)])


def watch_api_server_pods(kube: Kube, resource_version: str, seconds: float) -> Iterator[Object]:
    return kube.watch(
        api_server_pods_path(),
        query=[("labelSelector", API_SERVER_SELECTOR)],
        resource_version=resource_version,
        timeout=seconds,
    )


def api_servers_of(pods: Iterable[Pod], kube: Kube) -> ApiServers:
    """The nodes of the kube-apiserver mirror pods among `pods`, and the ready addresses of
    default/kubernetes (one GET)."""
    count, unreadable = read_endpoint_count(kube)
    return ApiServers(api_server_hosts(pods), count, unreadable)


def read_endpoint_count(kube: Kube, *, transient_too: bool = False) -> tuple[int | None, str]:
    """The ready addresses of default/kubernetes, or (None, why) when the answer was a refusal (403,
    404); a busy or failing server raises (the caller keeps its last reading), unless `transient_too`
    (a one-off reading such as `shimshift plan`'s: then that is the why too)."""
    try:
        return endpoint_addresses(kube.request("GET", endpoints_path())), ""
    except ApiStatusError as e:
        if e.transient and not transient_too:
            raise
        return None, f"HTTP {e.status} {e.reason}".strip()
    except ApiUnreachable as e:
        if not transient_too:
            raise
        return None, str(e)[:200]


def read_endpoint_count_from(kubeconfig: str | None, context: str | None) -> tuple[int | None, str]:
    """`read_endpoint_count` once on the cluster of `kubeconfig`/`context` (`shimshift plan`)."""
    kube = Kube(load_api_client(kubeconfig, context))
    try:
        return read_endpoint_count(kube, transient_too=True)
    finally:
        kube.close()


def wait_api_ready(
    kube: Kube,
    timeout: float,
    *,
    stop: threading.Event | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[bool, str]:
    """Poll `/readyz` until it answers ok (True) or `timeout` seconds pass (False, with what it said
    last); `stop` ends the wait early (False)."""
    end = monotonic() + timeout
    stop = stop or threading.Event()
    said = "not asked"
    while True:
        ready, said = kube.readyz(timeout=max(1.0, min(5.0, end - monotonic())))
        if ready:
            return True, said
        left = end - monotonic()
        if left <= 0 or stop.wait(min(READYZ_POLL, left)):
            return False, said
