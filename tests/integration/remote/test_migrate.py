"""The node steps on the testbed's real daemons (sshd, containerd 1.6, dockerd 20.10, fake systemctl,
fake kubelet reporting to the API emulator): every profile moves to containerd and comes back to
Docker byte for byte; steps are idempotent, survive a cut connection, and the faults roll back."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from testbed import waiting

from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import StepId
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import ImageCounts
from shimshift.playbooks import NodeFile, load_playbooks
from shimshift.remote import (
    ConnectionLost,
    HostKeyError,
    NodeConnection,
    NodeRunPlan,
    NodeSteps,
    NotDockershimNode,
    SshNodePort,
    SshOptions,
    SshTarget,
    TaskFailed,
    run_playbook,
)
from shimshift.rendering import render_node_config
from shimshift.steps.base import ImagesProgress
from shimshift.steps.switch import plan_switch, staged_files
from shimshift.steps.switch.kubelet import FileEdit, KubeletSwitch

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api
    from testbed.nodes import Cluster, Node
    from testbed.nodes.fixtures import ApiEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(170)]

PROFILES = [
    "kubeadm-systemd",
    "kubeadm-cgroupfs",
    "kubespray",
    "cri-dockerd",
    "containerd-2.2",
    "containerd-2.3",
]
#: /var/run/docker.sock as the host sees it through the node's root (/var/run is a link to /run)
DOCKER_SOCKET = "/run/docker.sock"
#: The forward node steps that run a playbook (the images step runs its own commands, which are
#: tests/integration/images' subject).
FORWARD = (StepId.BACKUP, StepId.CONFIGURE, StepId.SWITCH, StepId.VERIFY)
measured_round_trips: dict[str, int] = {}


@pytest.fixture(scope="module")
def cluster(scratch_cluster: Cluster, nodes_kubeapi: ApiEndpoint) -> Iterator[Cluster]:
    scratch_cluster.attach_api(nodes_kubeapi.url, nodes_kubeapi.kubeconfig)
    yield scratch_cluster
    if measured_round_trips:
        print("\nSSH round trips per node sequence (facts..verify):", json.dumps(measured_round_trips))


def node_of(cluster: Cluster, profile: str) -> Node:
    from testbed.nodes.fixtures import node_with_profile

    return node_with_profile(cluster, profile)


def connect(cluster: Cluster, node: Node, **kw: Any) -> NodeConnection:
    opts = {
        "known_hosts": cluster.known_hosts.read_text(),
        "private_key": cluster.private_key.read_text(),
        "command_timeout": 120.0,
        **kw,
    }
    return NodeConnection(SshTarget(node.name, node.ssh_host, node.ssh_port), SshOptions(**opts))


def plan_for(facts: NodeFacts, migration: str = "m1") -> NodeRunPlan:
    spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [facts.node]})
    rendered = render_node_config(spec, facts)
    switch = plan_switch(spec, facts.node, facts)  # as the port plans it (Docker's log rotation too)
    return NodeRunPlan.build(migration, rendered.files, switch, wait_seconds=30, stop_grace_seconds=1)


def touched_paths(plan: NodeRunPlan) -> list[str]:
    return [*plan.containerd_paths, *plan.kubelet_paths, *(f.path for f in staged_files(plan))]


def snapshot(node: Any, paths: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in paths:
        view = node.view(p)
        if view.exists():
            st = view.stat()
            out[p] = (view.read_bytes(), st.st_mode, st.st_uid, st.st_gid)
        else:
            out[p] = None
    return out


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return waiting.wait_until(predicate, timeout, what=what, interval=0.2)


def node_runtime(kube_core: CoreV1Api, name: str) -> tuple[str, str]:
    status = kube_core.read_node(name).status  # None until the kubelet has posted one
    if status is None:
        return "", "Unknown"
    ready = next((c.status for c in status.conditions or [] if c.type == "Ready"), "Unknown")
    return status.node_info.container_runtime_version if status.node_info else "", ready


def wait_runtime(kube_core: CoreV1Api, name: str, prefix: str) -> None:
    wait_until(
        lambda: (lambda r: r[0].startswith(prefix) and r[1] == "True")(node_runtime(kube_core, name)),
        45,
        f"node {name} Ready on {prefix}",
    )


def active(node: Any, unit: str) -> bool:
    return bool(node.exec(["systemctl", "is-active", "--quiet", unit]).exit_status == 0)


def facts_of(steps: NodeSteps, node: Any) -> NodeFacts:
    return steps.facts(kubelet_version="v" + node.profile.kubelet_version)


def in_parallel(scenarios: dict[str, Callable[[], None]]) -> None:
    """Run independent node scenarios at once (each on its own node and connection); fail naming each."""
    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
        futures = {name: pool.submit(fn) for name, fn in scenarios.items()}
    errors = {name: f.exception() for name, f in futures.items() if f.exception() is not None}
    if errors:
        first = next(iter(errors.values()))
        raise AssertionError("; ".join(f"{name}: {e!r}" for name, e in errors.items())) from first


def facts_are_complete(cluster: Cluster, profile: str) -> None:
    node = node_of(cluster, profile)
    with connect(cluster, node) as conn:
        facts = facts_of(NodeSteps(conn), node)
        assert conn.round_trips == 1
    assert facts.docker_version and facts.docker_version.startswith("20.10")
    assert facts.containerd_version == node.profile.containerd_version
    assert facts.crictl_version == (f"v{node.profile.crictl}" if node.profile.crictl else None)
    assert facts.containerd_config == node.read("/etc/containerd/config.toml")
    assert facts.containerd_config_version == 1
    assert facts.cri_enabled is False
    assert facts.daemon_json == json.loads(node.read("/etc/docker/daemon.json"))
    assert facts.kubelet.cgroup_driver is not None
    assert facts.kubelet.cgroup_driver.value == node.profile.cgroup_driver
    assert (
        facts.docker_cgroup_driver == "cgroupfs" or facts.docker_cgroup_driver == node.profile.cgroup_driver
    )
    assert facts.containerd_root_free_bytes and facts.containerd_root_free_bytes > 0
    assert facts.images and all(i.size > 0 for i in facts.images)
    assert any(c.namespace == "kube-system" for c in facts.containers)
    assert facts.dockershim_node
    assert dict(facts.unreadable) == {}
    hosts = {c.host for c in facts.docker_certs}
    assert hosts == (
        {"registry.shimshift.test"} if node.profile.registry.value == "mirror-with-ca" else set()
    )


def test_facts_are_complete_and_correct_on_every_profile(cluster: Cluster) -> None:
    in_parallel({p: functools.partial(facts_are_complete, cluster, p) for p in PROFILES})


def cut_when(conn: NodeConnection, happened: Callable[[], bool], delay: float = 0.0) -> threading.Thread:
    """Close the connection `delay` seconds after `happened()` (polled every 5 ms, for at most 120 s)."""

    def cut() -> None:
        with contextlib.suppress(waiting.WaitTimeout):  # after 120 s cut anyway
            waiting.wait_until(happened, 120, what="the point to cut at", interval=0.005)
        time.sleep(delay)
        transport = conn.transport
        if transport is not None:
            transport.close()

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    return thread


def cut_after(conn: NodeConnection, round_trip: int, delay: float) -> threading.Thread:
    """Close the connection `delay` seconds after round trip number `round_trip` starts."""
    return cut_when(conn, lambda: conn.round_trips >= round_trip, delay)


#: The call each step's main command makes on the node, early and well before it ends (containerd
#: then has to start and report its CRI plugin, the kubelet to stop and start again).
STEP_IN_PROGRESS = {StepId.CONFIGURE: ["restart", "containerd"], StepId.SWITCH: ["stop", "kubelet"]}


class PlaybookImagesPort(SshNodePort):
    """SshNodePort whose images step moves no image: the images step itself is
    tests/integration/images' subject. (Its undo then finds no image record: nothing to undo.)"""

    def images(self, node: str, facts: NodeFacts, progress: ImagesProgress | None = None) -> ImageCounts:
        return ImageCounts()


def full_cycle(cluster: Cluster, kube_core: CoreV1Api, profile: str, via_port: bool = False) -> None:
    """Forward through every node step, again (nothing changes), then roll back twice.

    With `via_port`, the forward steps and the rollback go through SshNodePort, as the engine drives them.
    """
    node = node_of(cluster, profile)
    wait_runtime(kube_core, node.name, "docker://")
    spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": [node.name]})
    port = PlaybookImagesPort(
        "m1",
        spec,
        lambda _n: connect(cluster, node),
        wait_seconds=30,
        stop_grace_seconds=1,
        kubelet_version=lambda _n: "v" + node.profile.kubelet_version,
    )
    try:
        steps = port.steps(node.name)
        facts = facts_of(steps, node)
        steps.preflight(facts)
        plan = port.plan(node.name, facts) if via_port else plan_for(facts)
        forward_steps: tuple[StepId, ...] = FORWARD
        before = snapshot(node, touched_paths(plan))
        if via_port:
            port.backup(node.name, facts)
            for forward in (port.configure, port.images, port.switch, port.verify):
                forward(node.name, facts)
        else:
            for step in forward_steps:
                result = steps.run(step, plan)
                if step is StepId.VERIFY:  # crictl where the node has it, else ctr
                    checked = "ok (crictl: RuntimeReady NetworkReady" if node.profile.crictl else "ok (ctr:"
                    assert result.tasks[-1].output.startswith(checked), result.tasks[-1].output
        measured_round_trips[profile] = port.round_trips(node.name)
        wait_runtime(kube_core, node.name, "containerd://")
        # daemon.json's json-file rotation (100m x 3) is the kubelet's now, in the file the switch wrote
        rotation = [e for e in plan.kubelet_edits if "containerLogMaxSize: 100Mi" in e.after]
        assert rotation and all(node.read(e.path) == e.after for e in rotation), profile
        assert not active(node, "docker")
        restarts = [c["argv"] for c in node.systemctl_calls() if c["argv"][:1] == ["restart"]]
        assert restarts[-1:] == [["restart", "containerd"]]

        # idempotence: every step again changes nothing
        for step in forward_steps:
            assert not steps.run(step, plan).changed, step
        # a migrated node is no longer a dockershim node: reported, and left alone
        with pytest.raises(NotDockershimNode, match="already uses containerd"):
            steps.preflight(facts_of(steps, node))

        if via_port:
            port.undo(node.name, facts)
        else:
            steps.rollback(plan)
        calls = len(node.systemctl_calls())
        steps.rollback(plan)  # undo is idempotent too: the second one starts, stops or restarts nothing
        changes = [
            c["argv"] for c in node.systemctl_calls()[calls:] if c["argv"][0] in ("start", "stop", "restart")
        ]
        assert changes == []
    finally:
        port.close()
    assert snapshot(node, touched_paths(plan)) == before
    assert active(node, "docker") and active(node, "kubelet")
    assert stat.S_ISSOCK(node.view(DOCKER_SOCKET).stat().st_mode), "dockerd did not recreate its socket"
    wait_runtime(kube_core, node.name, "docker://")


def test_every_profile_moves_to_containerd_and_undo_brings_it_back_byte_identical(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel(
        {p: functools.partial(full_cycle, cluster, kube_core, p, p == "cri-dockerd") for p in PROFILES}
    )
    # facts, backup, configure (the files and the restart in one), switch (the staged files and the
    # switch in one), verify; the images step moves nothing here (PlaybookImagesPort) and, with no
    # placeholder playbook, costs no round trip; Docker per spec.docker waits for the commit
    # (tests/integration/remote/test_undo_succeeded.py)
    assert measured_round_trips == {p: 5 for p in PROFILES}


def containerd_refuses_its_config(cluster: Cluster, kube_core: CoreV1Api) -> None:
    node = node_of(cluster, "kubeadm-cgroupfs")
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        good = plan_for(facts_of(steps, node), "fault-containerd")
        before = snapshot(node, touched_paths(good))
        config = next(f for f in good.containerd_files if f.path == "/etc/containerd/config.toml")
        # passes `config dump` (valid TOML) but the CRI plugin refuses it: mirrors with config_path
        broken = config.content + (
            b'\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
            b'  endpoint = ["https://mirror.invalid"]\n'
        )
        plan = dataclasses.replace(
            good,
            containerd_files=tuple(
                dataclasses.replace(f, content=broken) if f is config else f for f in good.containerd_files
            ),
        )
        steps.run(StepId.BACKUP, plan)
        with pytest.raises(TaskFailed, match="CRI plugin is not ok"):
            steps.run(StepId.CONFIGURE, plan)
        steps.rollback(plan)
    assert snapshot(node, touched_paths(good)) == before
    assert active(node, "docker") and active(node, "containerd")
    wait_runtime(kube_core, node.name, "docker://")


def kubelet_does_not_come_up(cluster: Cluster, kube_core: CoreV1Api) -> None:
    node = node_of(cluster, "kubeadm-systemd")
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        good = plan_for(facts_of(steps, node), "fault-kubelet")
        before = snapshot(node, touched_paths(good))
        edits = tuple(
            FileEdit(
                e.path, e.before, e.after.replace("--container-runtime=remote", "--container-runtime=bogus")
            )
            for e in good.kubelet.edits
        )
        # the switch waits wait_seconds for the kubelet to come up: keep the doomed wait short
        plan = dataclasses.replace(
            good, kubelet=dataclasses.replace(cast(KubeletSwitch, good.kubelet), edits=edits), wait_seconds=8
        )
        for step in (StepId.BACKUP, StepId.CONFIGURE):
            steps.run(step, plan)
        with pytest.raises(TaskFailed, match="kubelet"):
            steps.run(StepId.SWITCH, plan)
        steps.rollback(plan)
    assert snapshot(node, touched_paths(good)) == before
    assert active(node, "docker") and active(node, "kubelet")
    wait_runtime(kube_core, node.name, "docker://")


def test_containerd_refusing_its_config_or_a_kubelet_not_coming_up_rolls_back_to_docker(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel(
        {
            "containerd refuses the new config": functools.partial(
                containerd_refuses_its_config, cluster, kube_core
            ),
            "kubelet does not come up": functools.partial(kubelet_does_not_come_up, cluster, kube_core),
        }
    )


def cut_in_step(cluster: Cluster, kube_core: CoreV1Api, profile: str, step: StepId) -> None:
    node = node_of(cluster, profile)
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        plan = plan_for(facts_of(steps, node), f"cut-{step.value}")
        before = snapshot(node, touched_paths(plan))
        for earlier in FORWARD[: FORWARD.index(step)]:
            steps.run(earlier, plan)
        # cut during the step's main command, while it runs on the node: as soon as the node shows it
        # in progress (a fixed delay raced fast machines), or for the backup as its round trip starts
        marker = STEP_IN_PROGRESS.get(step)
        if marker is None:
            thread = cut_after(conn, conn.round_trips + 1, 0.0)
        else:
            calls = len(node.systemctl_calls())
            thread = cut_when(conn, lambda: marker in [c["argv"] for c in node.systemctl_calls()[calls:]])
        with pytest.raises(ConnectionLost):
            steps.run(step, plan)
        thread.join(timeout=10)
        steps.run(step, plan)  # reconnects, waits for the first run's node-side lock, converges
        assert not steps.run(step, plan).changed
        for later in FORWARD[FORWARD.index(step) + 1 :]:
            steps.run(later, plan)
        wait_runtime(kube_core, node.name, "containerd://")
        steps.rollback(plan)
    assert snapshot(node, touched_paths(plan)) == before
    wait_runtime(kube_core, node.name, "docker://")


def test_a_connection_cut_in_the_middle_of_a_step_then_a_rerun_converges(
    cluster: Cluster, kube_core: CoreV1Api
) -> None:
    in_parallel(
        {
            "backup": functools.partial(cut_in_step, cluster, kube_core, "kubeadm-cgroupfs", StepId.BACKUP),
            "configure": functools.partial(cut_in_step, cluster, kube_core, "cri-dockerd", StepId.CONFIGURE),
            "switch": functools.partial(cut_in_step, cluster, kube_core, "kubespray", StepId.SWITCH),
        }
    )


def test_a_host_key_mismatch_is_refused_before_any_command_runs(cluster: Cluster) -> None:
    first, second = cluster.nodes[0], cluster.nodes[1]
    second_key = next(
        line
        for line in cluster.known_hosts.read_text().splitlines()
        if line.startswith(f"[{second.ssh_host}]")
    ).split(" ", 1)[1]
    calls = len(first.systemctl_calls())
    conn = connect(cluster, first, known_hosts=f"[{first.ssh_host}]:{first.ssh_port} {second_key}\n")
    with pytest.raises(HostKeyError, match="HOST KEY MISMATCH"):
        NodeSteps(conn).facts()
    assert conn.round_trips == 0
    assert len(first.systemctl_calls()) == calls


MARKER = f"/tmp/shimshift-injected-{uuid.uuid4().hex[:8]}"
INJECTIONS = [
    f"$(touch {MARKER})",
    f"; touch {MARKER}",
    f"`touch {MARKER}`",
    "' \" quotes",
    f"a;b&&touch {MARKER}|d",
    "-rf",
    "*",
]


def test_injected_paths_and_names_arrive_verbatim_and_create_nothing(cluster: Cluster) -> None:
    node = node_of(cluster, "cri-dockerd")
    base = "/var/lib/shimshift-injection"
    with connect(cluster, node) as conn:
        paths = []
        for value in INJECTIONS:
            path = f"{base}/{value.replace('/', '_')}/hosts.toml"
            paths.append(path)
            assert conn.upload(NodeFile(path, value.encode(), 0o644))
            assert node.view(path).read_bytes() == value.encode()
            assert conn.run(["printf", "%s", value], check=True).text == value
        # the same values as script arguments: the backup records each path verbatim
        backup = f"{base}/state/backup/containerd"
        run_playbook(
            conn,
            load_playbooks()["backup"],
            {
                "containerd_backup": backup,
                "containerd_paths": paths,
                "kubelet_backup": f"{base}/state/backup/kubelet",
                "kubelet_paths": [f"{base}/absent {MARKER}"],
            },
        )
        recorded = [node.view(f"{backup}/entries/{i}/path").read_text() for i in range(1, len(paths) + 1)]
        assert recorded == paths
        with pytest.raises(NodeError, match="not an absolute single-line path"):
            dataclasses.replace(plan_stub(), containerd_files=(NodeFile(f"{base}/a\nb", b""),)).checked()
        conn.run(["rm", "-rf", base], check=True)
    assert node.exec(["test", "-e", MARKER]).exit_status != 0
    assert not Path(MARKER).exists()


def plan_stub() -> NodeRunPlan:
    return NodeRunPlan("m1", (), KubeletSwitch((), "unix:///x", "/f", "--x", ()))


def verify_before_migration(cluster: Cluster, profile: str, message: str) -> None:
    node = node_of(cluster, profile)
    with connect(cluster, node) as conn:
        steps = NodeSteps(conn)
        plan = dataclasses.replace(plan_for(facts_of(steps, node), "verify-branch"), wait_seconds=2)
        with pytest.raises(TaskFailed, match=message) as failed:
            steps.run(StepId.VERIFY, plan)
        assert failed.value.result.exit_status == 1


def test_verify_asks_crictl_where_the_node_has_it_and_ctr_elsewhere(cluster: Cluster) -> None:
    # before the switch the CRI plugin is disabled (docker-ce's config): both branches must refuse it
    in_parallel(
        {
            "containerd-2.3": functools.partial(
                verify_before_migration,
                cluster,
                "containerd-2.3",
                r"crictl info: the CRI runtime is not ready: .*unknown service runtime\.v1\.RuntimeService",
            ),
            "kubespray": functools.partial(
                verify_before_migration, cluster, "kubespray", "containerd's CRI plugin is not ok"
            ),
        }
    )
