"""A node whose dockershim flags are in an admin's kubelet drop-in (`--network-plugin=kubenet` and
`--pod-infra-container-image` in `Environment=` under /etc/systemd/system/kubelet.service.d/), not in
kubeadm's flags file, moves to containerd: the plan names each flag with the drop-in and shows the
drop-in's new bytes, the switch writes exactly those bytes and runs `systemctl daemon-reload`, the
kubelet's command line then has no dockershim flag (kubenet's network is containerd's CNI
configuration, NetworkReady), and the undo brings the drop-in back byte for byte and the kubelet onto
its old command line.

On the testbed's real sshd, containerd 1.6 and dockerd, with the fake systemctl reading the kubelet's
real unit files (`unit_files`: as systemd, it loads them at the first start and again only at
daemon-reload, so a switch that forgot the reload would start the kubelet on the old flags) and the
model kubelet reporting to the API emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from shimshift.model.factsjson import facts_to_json_text
from shimshift.model.keys import StepId
from shimshift.model.kubenet import KUBENET_FILE
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.settings import setting_findings
from shimshift.remote import NodeRunPlan, NodeSteps
from shimshift.rendering import render_node_config
from shimshift.steps.filesection import FileSection
from shimshift.steps.switch import plan_switch
from tests.integration.remote.test_migrate import (
    FORWARD,
    active,
    connect,
    facts_of,
    node_of,
    plan_for,
    snapshot,
    touched_paths,
    wait_runtime,
)
from tests.integration.remote.test_migrate_kubenet import network_ready
from tests.integration.remote.test_migrate_runtimes import reported

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster, Node
    from testbed.nodes.fixtures import ApiEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(240)]

SCRATCH_PROFILES = ["kubeadm-cgroupfs"]
POD_CIDR = "10.244.9.0/24"
CONFLIST = f"/etc/cni/net.d/{KUBENET_FILE}"
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
DROP_IN = "/etc/systemd/system/kubelet.service.d/20-network.conf"
KUBELET_JSON = "/etc/fake-systemd/kubelet.json"
DOCKERSHIM = ("--network-plugin", "--cni-", "--docker", "--network-plugin-mtu")


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    scratch_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    yield scratch_cluster


def kubelet_argv(node: Node) -> list[str]:
    """The running kubelet's command line, from /proc (the fake systemd's state names its PID)."""
    state = json.loads(node.read("/run/fake-systemd/kubelet.json"))
    raw = node.view(f"/proc/{state['pid']}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0") if a]


def systemctl_calls(node: Node) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in node.read("/var/log/systemctl-calls.log").splitlines()]


def migrate(steps: NodeSteps, plan: NodeRunPlan, node: Node, sandbox: str, kube_core: CoreV1Api) -> None:
    """The forward steps, the sandbox image put into containerd after the configure step (as the
    images step would pull it), until the Node reports containerd."""
    for step in FORWARD:
        steps.run(step, plan)
        if step is StepId.CONFIGURE:
            moved = node.exec(["sh", "-c", 'docker save "$0" | ctr -n k8s.io images import -', sandbox])
            assert moved.exit_status == 0, moved.stderr
    wait_runtime(kube_core, node.name, "containerd://")


def on_unit_files(node: Node, sandbox: str) -> None:
    """The node as an admin set it up: kubeadm's flags file without the dockershim flags, those in a
    drop-in of their own, and the kubelet started from its unit files (daemon-reload, restart)."""
    unit = json.loads(node.read(KUBELET_JSON))
    program = unit["exec"][: unit["exec"].index("-m") + 2]  # python -m testbed.nodes.kubelet
    keep = {k: v for k, v in unit["environment"].items() if not k.startswith("KUBELET_")}
    node.view(KUBELET_JSON).write_text(
        json.dumps(
            {**unit, "exec": program, "environment": keep, "environment_files": [], "unit_files": True}
        )
    )
    node.view(FLAGS).write_text('KUBELET_KUBEADM_ARGS=""\n')
    node.view(DROP_IN).write_text(
        "# network settings of this node, kept apart from kubeadm's\n"
        "[Service]\n"
        f'Environment="KUBELET_NETWORK_ARGS=--network-plugin=kubenet --pod-infra-container-image={sandbox}"\n'
        "ExecStart=\n"
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \\\n"
        "    $KUBELET_EXTRA_ARGS $KUBELET_NETWORK_ARGS\n"
    )
    for conf in node.view("/etc/cni/net.d").iterdir():
        conf.unlink()
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]):
        done = node.exec(argv, timeout=60)
        assert done.exit_status == 0, done.stderr


def test_flags_in_an_admins_drop_in_are_carried_and_the_undo_restores_it_byte_for_byte(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    node = node_of(cluster, SCRATCH_PROFILES[0])
    reported(kube_core, node.name)
    wait_runtime(kube_core, node.name, "docker://")
    flags = node.read(FLAGS).replace('"', " ").split()
    sandbox = next(w.split("=", 1)[1] for w in flags if w.startswith("--pod-infra-container-image="))
    on_unit_files(node, sandbox)
    wait_runtime(kube_core, node.name, "docker://")
    argv = kubelet_argv(node)
    assert "--network-plugin=kubenet" in argv and f"--pod-infra-container-image={sandbox}" in argv
    drop_in_before = node.view(DROP_IN).read_bytes()

    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        facts = replace(facts_of(steps, node), pod_cidrs=(POD_CIDR,))  # the Node's podCIDR
        assert DROP_IN in facts.kubelet.units
        assert facts.kubelet.pod_infra_image is not None and facts.kubelet.pod_infra_image.file == DROP_IN
        the_spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [facts.node]})
        # the plan: a finding per flag naming the drop-in and what the switch does to it
        containerd = render_node_config(the_spec, facts)
        assert any(f.path == CONFLIST for f in containerd.files)  # kubenet translated, as from the flags file
        found = {
            f.subject: f
            for f in setting_findings(the_spec, facts, FileSection(True, "", (), ()))
            if DROP_IN in f.message
        }
        assert found["--network-plugin"].message.endswith(f"the switch removes it from {DROP_IN}")
        assert found["--pod-infra-container-image"].message.endswith(f"the switch leaves it in {DROP_IN}")
        assert not any(f.level == "blocker" for f in found.values())
        switch = plan_switch(the_spec, facts.node, facts)
        (planned,) = [e for e in switch.edits if e.path == DROP_IN]
        assert planned.after == planned.before.replace("--network-plugin=kubenet ", "")
        assert switch.unit_changes == ((DROP_IN, "--network-plugin=kubenet", "removed"),)
        plan = plan_for(facts, "m-unitflags")
        assert DROP_IN in plan.kubelet_paths
        before = snapshot(node, touched_paths(plan))
        calls_before = len(systemctl_calls(node))

        migrate(steps, plan, node, sandbox, kube_core)
        assert not active(node, "docker")
        assert network_ready(node)["status"] is True
        # the switch wrote exactly what the plan showed, then reloaded systemd before starting the kubelet
        assert node.view(DROP_IN).read_bytes() == planned.after.encode()
        calls = [c for c in systemctl_calls(node)[calls_before:] if c[:1] in (["daemon-reload"], ["start"])]
        assert ["daemon-reload"] in calls and calls.index(["daemon-reload"]) < calls.index(
            ["start", "kubelet"]
        )
        argv = kubelet_argv(node)
        assert [a for a in argv if a.startswith(DOCKERSHIM)] == [], argv
        assert "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in argv
        assert f"--pod-infra-container-image={sandbox}" in argv  # still the kubelet's (1.23) until 1.35

        steps.rollback(plan)
    assert snapshot(node, touched_paths(plan)) == before
    assert node.view(DROP_IN).read_bytes() == drop_in_before
    assert active(node, "docker") and active(node, "kubelet")
    wait_runtime(kube_core, node.name, "docker://")
    assert "--network-plugin=kubenet" in kubelet_argv(node), "the undo reloads systemd too"


ENV_FILE = "/etc/kubelet/network.env"
SECRET = "s3cr3t-site-token"
BRIDGE = json.dumps(
    {
        "cniVersion": "0.4.0",
        "name": "site",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}}
        ],
    }
)


def test_flags_in_another_environment_file_are_named_left_as_planned_and_kept_byte_for_byte(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    """The drop-in reads the network flags from a file of the admin's own (`EnvironmentFile=`), which
    the switch does not edit: the real probe sends its flag assignments only (a token beside them
    stays on the node), the plan names each flag with that file and says it stays, and after the
    switch the kubelet runs on containerd with exactly those flags still on its command line and the
    file unchanged; the undo keeps it so too."""
    node = node_of(cluster, SCRATCH_PROFILES[0])
    reported(kube_core, node.name)
    images = node.exec(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
    sandbox = next(i for i in images if "/pause:" in i)
    on_unit_files(node, sandbox)
    node.view("/etc/cni/net.d/10-site.conflist").write_text(BRIDGE)
    node.view(ENV_FILE).parent.mkdir(parents=True, exist_ok=True)
    env_text = (
        "# the site's network settings, from its configuration management\n"
        'KUBELET_NETWORK_ARGS="--network-plugin=cni --image-pull-progress-deadline=2m"\n'
        f"SITE_TOKEN={SECRET}\n"
    )
    node.view(ENV_FILE).write_text(env_text)
    node.view(DROP_IN).write_text(
        f"[Service]\nEnvironmentFile=-{ENV_FILE}\nExecStart=\n"
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \\\n"
        f"    $KUBELET_EXTRA_ARGS $KUBELET_NETWORK_ARGS --pod-infra-container-image={sandbox}\n"
    )
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]):
        done = node.exec(argv, timeout=60)
        assert done.exit_status == 0, done.stderr
    wait_runtime(kube_core, node.name, "docker://")
    assert "--image-pull-progress-deadline=2m" in kubelet_argv(node)

    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        facts = facts_of(steps, node)
        # the probe (facts.sh over SSH) sent the file's flag assignment and blanked the rest
        assert facts.kubelet.env_files == {
            ENV_FILE: '\nKUBELET_NETWORK_ARGS="--network-plugin=cni --image-pull-progress-deadline=2m"\n\n'
        }
        assert SECRET not in facts_to_json_text(facts)
        the_spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [facts.node]})
        found = {
            f.subject: f
            for f in setting_findings(the_spec, facts, FileSection(True, "", (), ()))
            if ENV_FILE in f.message
        }
        assert set(found) == {"--network-plugin", "--image-pull-progress-deadline"}, found
        for f in found.values():
            assert f.level == "warning" and "stays on the kubelet's command line" in f.message, f
            assert "($KUBELET_NETWORK_ARGS)" in f.message and f"move it out of {ENV_FILE}" in f.advice
        plan = plan_for(facts, "m-envfile")
        assert ENV_FILE not in plan_switch(the_spec, facts.node, facts).paths
        assert ENV_FILE not in touched_paths(plan)
        before = snapshot(node, touched_paths(plan))
        migrate(steps, plan, node, sandbox, kube_core)
        assert network_ready(node)["status"] is True
        # what the plan said: the file as it was, its flags still on the kubelet's command line
        assert node.view(ENV_FILE).read_text() == env_text
        argv = kubelet_argv(node)
        assert "--image-pull-progress-deadline=2m" in argv and "--network-plugin=cni" in argv, argv
        assert "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in argv
        steps.rollback(plan)
    assert snapshot(node, touched_paths(plan)) == before
    assert node.view(ENV_FILE).read_text() == env_text
    wait_runtime(kube_core, node.name, "docker://")
    node.view("/etc/cni/net.d/10-site.conflist").unlink()


HAND_ROLLED = "/etc/systemd/system/kubelet.service"


def test_a_hand_rolled_node_with_every_flag_on_its_unit_and_no_flags_file_migrates_and_comes_back(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    """kubelet.service under /etc/systemd/system with every flag literally on ExecStart=, no drop-in
    and no flags file: the switch removes the dockershim flags there and adds the runtime flags there."""
    node = node_of(cluster, SCRATCH_PROFILES[0])
    reported(kube_core, node.name)
    sandbox = "registry.k8s.io/pause:3.6"
    images = node.exec(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
    sandbox = next((i for i in images if "/pause:" in i), sandbox)
    on_unit_files(node, sandbox)  # the fake systemd reads the unit files (as in the test above)
    for path in (
        DROP_IN,
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        FLAGS,
        "/etc/default/kubelet",
    ):
        node.view(path).unlink(missing_ok=True)
    node.view(HAND_ROLLED).write_text(
        "[Unit]\nDescription=Kubernetes Kubelet (by hand)\n\n[Service]\n"
        "ExecStart=/usr/local/bin/kubelet \\\n"
        "  --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \\\n"
        "  --kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
        "  --config=/var/lib/kubelet/config.yaml \\\n"
        "  --network-plugin=kubenet \\\n"
        f"  --pod-infra-container-image={sandbox}\n"
        "Restart=always\n"
    )
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]):
        done = node.exec(argv, timeout=60)
        assert done.exit_status == 0, done.stderr
    wait_runtime(kube_core, node.name, "docker://")
    unit_before = node.view(HAND_ROLLED).read_bytes()

    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        facts = replace(facts_of(steps, node), pod_cidrs=(POD_CIDR,))
        assert facts.kubelet.flags_file is None and HAND_ROLLED in facts.kubelet.units
        plan = plan_for(facts, "m-handrolled")
        (planned,) = [e for e in plan.kubelet_edits if e.path == HAND_ROLLED]
        assert "--network-plugin" not in planned.after
        before = snapshot(node, touched_paths(plan))
        migrate(steps, plan, node, sandbox, kube_core)
        assert network_ready(node)["status"] is True
        assert node.view(HAND_ROLLED).read_bytes() == planned.after.encode()
        argv = kubelet_argv(node)
        assert [a for a in argv if a.startswith(DOCKERSHIM)] == [], argv
        assert argv[-2:] == [
            "--container-runtime=remote",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        ]
        # the rollback of an operator that restarted: its plan, made again from the switched node, has no
        # edit of the unit left, and the undo still reloads systemd for the unit it restores
        replanned = plan_for(replace(facts_of(steps, node), pod_cidrs=(POD_CIDR,)), "m-handrolled")
        assert HAND_ROLLED not in {e.path for e in replanned.kubelet_edits}
        steps.rollback(replanned)
    assert snapshot(node, touched_paths(plan)) == before
    assert node.view(HAND_ROLLED).read_bytes() == unit_before
    wait_runtime(kube_core, node.name, "docker://")
    assert "--network-plugin=kubenet" in kubelet_argv(node)
