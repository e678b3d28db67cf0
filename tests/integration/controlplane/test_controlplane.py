"""The real control plane: it serves what it was built from, enforces authentication and RBAC, mints
ServiceAccount kubeconfigs, runs the real controllers, and cleans up after each test."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.nodes.kube_http import ApiError, KubeHttp
from testbed.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_it_serves_the_version_it_was_built_from(controlplane: ControlPlane, realkube: RealKubeApi) -> None:
    version = realkube.http.request("GET", "/version")
    assert version["gitVersion"] == controlplane.version
    assert (version["major"], version["minor"]) == ("1", controlplane.version.split(".")[1])
    assert all(controlplane.running().values()), controlplane.running()


def test_rbac_is_enforced_for_users_and_anonymous_requests(
    controlplane: ControlPlane, tmp_path: Path
) -> None:
    nobody = KubeHttp(controlplane.user_kubeconfig(tmp_path / "nobody", "nobody"))
    with pytest.raises(ApiError) as refused:
        nobody.request("GET", "/api/v1/namespaces/default/pods")
    assert refused.value.status == 403
    assert "system:anonymous" not in str(refused.value) and "nobody" in str(refused.value)
    anonymous = KubeHttp(controlplane.admin_kubeconfig)
    anonymous.context = ssl.create_default_context(cafile=str(controlplane.pki.cert_path))
    with pytest.raises(ApiError) as refused:
        anonymous.request("GET", "/api/v1/secrets")
    assert refused.value.status == 403 and "system:anonymous" in str(refused.value)


def test_a_minted_service_account_kubeconfig_has_exactly_the_roles_bound_to_the_account(
    controlplane: ControlPlane, realkube: RealKubeApi, tmp_path: Path
) -> None:
    realkube.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "reader", "namespace": "team"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-pods", "namespace": "team"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            },
        ]
    )
    sa = KubeHttp(controlplane.service_account_kubeconfig(tmp_path / "reader", "team", "reader"))
    with pytest.raises(ApiError) as refused:
        sa.request("GET", "/api/v1/namespaces/team/pods")
    assert refused.value.status == 403
    realkube.seed(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}],
        }
    )
    assert wait_until(
        lambda: _allowed(sa, "/api/v1/namespaces/team/pods"), 10, what="the binding to take effect"
    )
    with pytest.raises(ApiError) as refused:
        sa.request("GET", "/api/v1/namespaces/default/pods")
    assert refused.value.status == 403


def _allowed(api: KubeHttp, path: str) -> bool:
    try:
        api.request("GET", path)
    except ApiError:
        return False
    return True


def test_the_real_controllers_run_a_deployment_on_a_node_without_kubelet(realkube: RealKubeApi) -> None:
    realkube.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-plain-node"}})
    realkube.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
    )

    def available() -> bool:
        status = realkube.must_get("deployments.apps", "web", "default").get("status") or {}
        return status.get("availableReplicas") == 2

    wait_until(available, 60, what="the Deployment's two replicas available", interval=0.2)
    pods = realkube.list("pods", "default", label_selector="app=web")
    assert {p["spec"]["nodeName"] for p in pods} == {"cp-plain-node"}
    # the ReplicaSet and its pods belong to the Deployment: the garbage collector removes them with it
    realkube.delete("deployments.apps", "web", "default")
    wait_until(
        lambda: not realkube.list("pods", "default", label_selector="app=web"), 60, what="the pods gone"
    )


def test_reset_removes_what_a_test_created_and_keeps_the_baseline(realkube: RealKubeApi) -> None:
    crd = Path(__file__).parents[1] / "kubeapi" / "widget-crd.yaml"
    realkube.seed(crd)
    realkube.seed(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "scratch"}}
    )
    realkube.seed(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2", "namespace": "default"}}
    )
    realkube.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-reset-node"}})
    realkube.reset()
    assert realkube.get("namespaces", "scratch") is None
    assert realkube.get("configmaps", "c2", "default") is None
    assert realkube.get("nodes", "cp-reset-node") is None
    assert realkube.get("customresourcedefinitions.apiextensions.k8s.io", "widgets.example.io") is None
    assert realkube.get("configmaps", "kube-root-ca.crt", "default") is not None
    assert realkube.get("serviceaccounts", "default", "default") is not None
