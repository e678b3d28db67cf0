"""Which nodes run the cluster's only API server: migrating one takes the Kubernetes API down.

On a kubeadm cluster with one control-plane node, kube-apiserver is a static pod of that node's kubelet
(its mirror pod `kube-system/kube-apiserver-<node>`, label `component=kube-apiserver`) and the
`default/kubernetes` Endpoints, which the API servers keep themselves, list one address. The switch
stops Docker, so that API server stops with it and comes back only once the kubelet, on containerd,
has recreated its static pods: the API is unavailable meanwhile.

The rule (`sole_api_nodes`): a node runs the only API server when it has a kube-apiserver mirror pod
and `default/kubernetes` lists exactly one ready address. When those Endpoints could not be read, a
node is taken as the only one when it is the only node with a kube-apiserver mirror pod (the safe
side: it is skipped unless `spec.rollout.allowApiDowntime`), and the plan says that the Endpoints
could not be read and why (`ApiServers.unreadable`). Pure: the kube layer reads the raw objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.cluster import Pod
from shimshift.planning.findings import Finding, Level
from shimshift.steps.images.plan import ImageSkipReason, normalize_reference, plan_images

#: Where kubeadm's static control-plane pods live and the label kubeadm gives the API server's.
API_SERVER_NAMESPACE = "kube-system"
COMPONENT_LABEL = "component"
API_SERVER_COMPONENT = "kube-apiserver"
#: The Endpoints (and EndpointSlice) the API servers keep of themselves.
ENDPOINTS_NAMESPACE = "default"
ENDPOINTS_NAME = "kubernetes"


@dataclass(frozen=True)
class ApiServers:
    """Where the cluster's API servers run, as read from the API."""

    #: nodes with a kube-apiserver mirror pod, in name order
    hosts: tuple[str, ...] = ()
    #: the ready addresses `default/kubernetes` lists; None: not read (see `unreadable`)
    endpoints: int | None = None
    #: why the Endpoints could not be read ("" when they were, or nothing was asked)
    unreadable: str = ""

    @property
    def known(self) -> bool:
        return self.endpoints is not None


def is_api_server_pod(pod: Pod) -> bool:
    """A kube-apiserver static pod's mirror: in kube-system, mirrored, labelled (or, without kubeadm's
    label, named) as kube-apiserver."""
    if not pod.mirror or pod.namespace != API_SERVER_NAMESPACE or not pod.node:
        return False
    return pod.labels.get(COMPONENT_LABEL) == API_SERVER_COMPONENT or pod.name.startswith(
        f"{API_SERVER_COMPONENT}-"
    )


def api_server_hosts(pods: Iterable[Pod]) -> tuple[str, ...]:
    """The nodes with a kube-apiserver mirror pod, in name order."""
    return tuple(sorted({p.node for p in pods if is_api_server_pod(p) and not p.deleting}))


def endpoint_addresses(endpoints: Mapping[str, Any]) -> int:
    """The ready addresses of an Endpoints object (`subsets[].addresses[]`; notReadyAddresses do not
    serve), each address counted once."""
    seen: set[str] = set()
    for subset in endpoints.get("subsets") or ():
        if not isinstance(subset, Mapping):
            continue
        for address in subset.get("addresses") or ():
            if isinstance(address, Mapping) and isinstance(address.get("ip"), str):
                seen.add(address["ip"])
    return len(seen)


def sole_api_nodes(api: ApiServers) -> frozenset[str]:
    """The nodes whose migration takes the API down (the module's rule)."""
    if api.endpoints is None:
        return frozenset(api.hosts) if len(api.hosts) == 1 else frozenset()
    return frozenset(api.hosts) if api.endpoints == 1 else frozenset()


def evidence(api: ApiServers, node: str) -> str:
    """Why `node` counts as running the only API server, in a few words."""
    pod = f"static pod {API_SERVER_NAMESPACE}/{API_SERVER_COMPONENT}-{node}"
    where = f"{ENDPOINTS_NAMESPACE}/{ENDPOINTS_NAME}"
    if api.endpoints is None:
        why = f": {api.unreadable}" if api.unreadable else ""
        return (
            f"{pod}, the only node with one; the Endpoints {where} could not be read{why}, so it is "
            "taken as the only API server"
        )
    return f"{pod}; the Endpoints {where} list 1 address"


#: Why the images step leaves an image in Docker that a static pod then lacks under containerd.
_LEFT_BY_SPEC = frozenset(
    {ImageSkipReason.EXCLUDED, ImageSkipReason.NOT_INCLUDED, ImageSkipReason.MIGRATION_OFF}
)


def static_pod_image_findings(
    spec: NodeMigrationSpec, node: str, pods: Iterable[Pod], facts: NodeFacts | None
) -> list[Finding]:
    """The images of `node`'s static pods (its mirror pods' containers) that the images step leaves
    in Docker by spec.images (include, exclude, migrate: false): on the node that runs the only API
    server, the kubelet must then pull them under containerd before the API can come back, and on
    an air-gapped node it never does. Every other image of Docker's is moved before the switch."""
    if facts is None:
        return []
    plan = plan_images(facts, spec.images, sandbox_image=spec.containerd.sandbox_image)
    left = {
        normalize_reference(ref): skip.detail
        for skip in plan.skipped
        if skip.reason in _LEFT_BY_SPEC
        for ref in skip.refs
    }
    out: list[Finding] = []
    for pod in sorted((p for p in pods if p.mirror and p.node == node), key=lambda p: p.key):
        for container in pod.containers:
            why = left.get(normalize_reference(container.image))
            if why is not None:
                out.append(
                    Finding(
                        "StaticPodImageNotMigrated",
                        Level.WARNING,
                        f"the image {container.image} of static pod {pod.key} stays in Docker ({why}): "
                        "after the switch the kubelet must pull it before the pod, and with it the API, "
                        "comes back; an air-gapped node cannot",
                        "let spec.images.include / exclude take the control-plane static pods' images",
                        node,
                        pod.key,
                    )
                )
    return out


#: What the plan and the skip reason say to opt in.
OPT_IN = "set spec.rollout.allowApiDowntime: true to migrate it last, the API down during its switch"
