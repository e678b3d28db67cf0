"""Per-node hooks (spec.rollout.hooks) end to end on the real control plane: the operator runs as the
chart's ServiceAccount (the chart's Role for Jobs in `hooks.namespaces` enforced by RBAC; the audit log
must show no 403), the real job controller of kube-controller-manager creates each hook Job's pod, and a
real kubelet (1.23.17 on Docker, a testbed node of its own) runs it: the hook pods are pinned there by
their template's nodeSelector. The migrated nodes are simulated (their steps are tests/e2e/simnodes.py's,
counting every real change), so the hooks' behaviour is what is judged: one migration over three nodes,
where w1's hooks pass, w2's pre-hook exits 3 and w3's post-hook exits 4.

- w1 Succeeds with both hooks' records (Succeeded), and its Jobs are gone;
- w2 Fails with the pre-hook's reason and its pod's termination message, never cordoned, unchanged;
- w3 is rolled back to Docker after its post-hook failed, uncordoned.

Needs the built kubelet and control plane (`scripts/build-components`) and root (a testbed node).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from testbed import components
from testbed.controlplane import ControlPlane
from testbed.controlplane.api import RealKubeApi
from testbed.controlplane.fixtures import missing_component
from testbed.kubeapi.kubectl import Kubectl
from testbed.nodes import Cluster
from testbed.nodes.fixtures import missing_prerequisites
from testbed.nodes.realkubelet import check_built
from testbed.waiting import wait_until

from shimshift.model.hookrecord import HookKind, HookResult
from shimshift.model.nodestate import child_name, record_of
from shimshift.model.status import NodePhase
from tests.e2e.chart_account import apply_chart, start_operator
from tests.e2e.conftest import migration, node
from tests.e2e.simnodes import read_state
from tests.e2e.test_real_kubelet import APP_IMAGE, PROFILE, ready_runtime
from tests.unit.chart import helm

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(400)]

HOOKS_NAMESPACE = "maintenance"
NODE_CHANGES = ("backup", "configure", "images", "switch")


def hook(runner: str, script: str) -> dict[str, Any]:
    """A hook running `sh -c script` (with `{node}` in it) on the real kubelet `runner`."""
    return {
        "namespace": HOOKS_NAMESPACE,
        "timeout": "2m",
        "template": {
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": runner},
                "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "hook",
                        "image": APP_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c"],
                        "args": [script],
                    }
                ],
            }
        },
    }


PRE = (
    'echo "pre-hook for $SHIMSHIFT_NODE of $SHIMSHIFT_MIGRATION"; '
    '[ "{node}" != w2 ] || { echo "w2 holds the lease"; exit 3; }'
)
POST = '[ "$SHIMSHIFT_NODE" != w3 ] || { echo "post-check of {node} failed"; exit 4; }'


def _record(api: RealKubeApi, name: str) -> Any:
    return record_of(api.must_get("nodemigrationnodes.shimshift.io", child_name("m", name)))


def _finished(api: RealKubeApi, name: str) -> bool:
    child = api.get("nodemigrationnodes.shimshift.io", child_name("m", name))
    return child is not None and record_of(child).phase.finished


def test_hook_jobs_run_on_a_real_kubelet_a_failed_pre_hook_changes_nothing_and_a_failed_post_hook_rolls_back(
    controlplane: ControlPlane,
    realkube: RealKubeApi,
    realkube_kubectl: Kubectl,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    real_kubelet_host: None,
) -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"testbed nodes need {', '.join(missing)} (run scripts/setup as root)")
    try:
        check_built([PROFILE])
    except components.ComponentMissing as e:
        missing_component(str(e))
    realkube.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HOOKS_NAMESPACE}}])
    docs = apply_chart(
        realkube_kubectl, tmp_path, values=("--set", f"hooks.namespaces={{{HOOKS_NAMESPACE}}}")
    )
    # a short root: the nodes' unix sockets live under it
    nodes_root = tmp_path_factory.mktemp("hooks") / "nodes"
    with Cluster.up("hooksrun", [PROFILE], root=nodes_root, real_kubelet=True) as runners:
        runners.attach_api(
            controlplane.url,
            controlplane.admin_kubeconfig,
            node_kubeconfig=controlplane.node_kubeconfig,
            admin_kubeconfig=controlplane.admin_kubeconfig,
        )
        runner = runners.nodes[0].name
        wait_until(
            lambda: ready_runtime(realkube, runner).startswith("docker://"),
            90,
            what="the hook runner's real kubelet Ready",
            interval=0.5,
        )
        realkube.seed([node(f"w{i}") for i in range(1, 4)])
        operator = start_operator(controlplane, docs, tmp_path, step_seconds="0.02")
        began = time.monotonic()
        try:
            realkube.seed(
                migration(
                    rollout={
                        "maxFailures": 2,
                        "hooks": {"pre": hook(runner, PRE), "post": hook(runner, POST)},
                    },
                    verify={"canary": {"enabled": False}},
                )
            )
            wait_until(
                lambda: all(_finished(realkube, f"w{i}") for i in range(1, 4)),
                300,
                what="every node's migration to end",
                interval=0.5,
            )
        finally:
            operator.stop()
        took = time.monotonic() - began
        logs = operator.logs()[-4000:]
        jobs = realkube.list("jobs.batch", HOOKS_NAMESPACE)
    print(f"\nthree nodes with hooks (five hook Jobs on a real kubelet) in {took:.1f}s")

    w1, w2, w3 = (_record(realkube, f"w{i}") for i in range(1, 4))
    assert w1.phase == NodePhase.SUCCEEDED, (w1, logs)
    assert [(h.hook, h.result) for h in w1.hooks] == [
        (HookKind.PRE, HookResult.SUCCEEDED),
        (HookKind.POST, HookResult.SUCCEEDED),
    ]
    assert [h.job for h in w1.hooks] == [f"{HOOKS_NAMESPACE}/m-w1-pre", f"{HOOKS_NAMESPACE}/m-w1-post"]
    steps = [s.id for s in w1.steps]
    assert (
        steps.index("prehook") < steps.index("backup")
        and steps.index("posthook") == steps.index("finish") - 1
    )
    for h in w1.hooks:
        print(f"w1 {h.hook}-hook: {h.started_at} -> {h.finished_at}: {h.message}")

    assert w2.phase == NodePhase.FAILED and w2.last_error is not None, w2
    assert w2.last_error.step == "prehook"
    message = w2.last_error.message
    assert "pre-hook Job maintenance/m-w2-pre failed (before any change to the node)" in message, message
    assert "BackoffLimitExceeded" in message and "exited 3" in message and "w2 holds the lease" in message
    assert "cordon" not in {s.id for s in w2.steps} and not realkube.must_get("nodes", "w2")["spec"].get(
        "unschedulable"
    )
    changes = read_state(tmp_path / "sim", "w2")["changes"]
    assert not [op for op in NODE_CHANGES if changes.get(op)], changes

    assert w3.phase == NodePhase.ROLLED_BACK and w3.last_error is not None, w3
    assert w3.last_error.step == "posthook" and "post-check of w3 failed" in w3.last_error.message
    assert read_state(tmp_path / "sim", "w3")["changes"].get("undo") == 1
    assert not realkube.must_get("nodes", "w3")["spec"].get("unschedulable")

    # every Job was deleted once its result was recorded (its pods with it)
    assert [j["metadata"]["name"] for j in jobs if not j["metadata"].get("deletionTimestamp")] == []
    events = realkube.list("events", helm.NAMESPACE)
    reasons = [e["reason"] for e in events if e["involvedObject"]["kind"] == "NodeMigration"]
    assert reasons.count("HookStarted") == 5 and reasons.count("HookSucceeded") == 3
    assert reasons.count("HookFailed") == 2
    answers = operator.answers()
    on_jobs = sorted((k, n) for k, n in answers.items() if k[1].split("/")[0] == "jobs")
    print(f"the operator's requests on jobs (verb, resource, namespace, code) for five hooks: {on_jobs}")
    assert any(k[1].split("/")[0] == "jobs" and k[0] == "create" and k[3] == 201 for k in answers), answers
    refused = {k: n for k, n in answers.items() if k[3] == 403}
    assert refused == {}, f"the API server refused the chart's ServiceAccount: {refused}"
