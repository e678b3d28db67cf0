"""Reading where the cluster's API servers run, and waiting for the API to be ready again.

`read_api_servers`: the kube-apiserver mirror pods (one LIST of kube-system filtered by the label
`component=kube-apiserver`, which kubeadm gives its static pod) and the `default/kubernetes`
Endpoints (one GET), the inputs of `planning.apiserver.sole_api_nodes`. Endpoints that cannot be read
(a 403 from an RBAC without the chart's grant, a 404) are not an error: the answer says so
(`ApiServers.unreadable`) and the plan reports it. `wait_api_ready`: polls `/readyz` (bounded) while
the only API server is down during its node's switch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shimshift.kube.api import ApiStatusError, ApiUnreachable, Kube, load_api_client
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
from shimshift.planning.cluster import parse_pod

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


def read_api_servers(kube: Kube) -> ApiServers:
    """The nodes with a kube-apiserver mirror pod and the ready addresses of default/kubernetes."""
    answer = kube.request(
        "GET", api_server_pods_path(), query=[("labelSelector", f"{COMPONENT_LABEL}={API_SERVER_COMPONENT}")]
    )
    hosts = api_server_hosts(parse_pod(p) for p in answer.get("items") or ())
    count, unreadable = read_endpoint_count(kube)
    return ApiServers(hosts, count, unreadable)


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
