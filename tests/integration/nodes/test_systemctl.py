"""The fake systemctl inside a node drives the real daemons and fails the way systemd does.

These run on the session's nodes: a restart changes nothing lasting, and the failing start
restores the node's containerd before it returns."""

from __future__ import annotations

import pytest
from testbed.nodes import Cluster, Node
from testbed.nodes.fixtures import node_with_profile
from testbed.nodes.profiles import DOCKER_CE_CONTAINERD_CONFIG, ProfileName

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]


def _main_pid(node: Node, unit: str) -> int:
    return int(node.exec(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip())


@pytest.mark.parametrize("profile", [p.value for p in ProfileName])
def test_systemctl_restart_containerd_really_restarts_it(testbed_cluster: Cluster, profile: str) -> None:
    node = node_with_profile(testbed_cluster, profile)
    before = _main_pid(node, "containerd")
    result = node.exec(["systemctl", "restart", "containerd"])
    assert result.exit_status == 0, result.stderr
    after = _main_pid(node, "containerd")
    assert before != after and after > 0
    assert node.exec(["ctr", "version"]).exit_status == 0
    assert node.exec(["systemctl", "is-active", "containerd", "docker"]).stdout.split() == [
        "active",
        "active",
    ]
    assert {"argv": ["restart", "containerd"], "rc": 0}.items() <= node.systemctl_calls()[-4].items() or any(
        c["argv"] == ["restart", "containerd"] and c["rc"] == 0 for c in node.systemctl_calls()
    )


def test_systemctl_fails_like_systemd_when_a_daemon_will_not_start(testbed_cluster: Cluster) -> None:
    node = node_with_profile(testbed_cluster, ProfileName.KUBEADM_CGROUPFS)
    config = node.dir.in_node("/etc/containerd/config.toml")
    # the realistic migration bug: adding `version = 2` without rewriting the v1 plugin name
    config.write_text("version = 2\n" + DOCKER_CE_CONTAINERD_CONFIG)
    try:
        result = node.exec(["systemctl", "restart", "containerd"])
        assert result.exit_status == 1
        assert (
            "Job for containerd.service failed because the control process exited with error code."
            in result.stderr
        )
        state = node.exec(["systemctl", "is-active", "containerd"])
        assert (state.exit_status, state.stdout.strip()) == (3, "failed")
        assert "Result: exit-code" in node.exec(["systemctl", "status", "containerd"]).stdout
        assert "invalid disabled plugin URI" in node.read("/var/log/containerd.log")
    finally:
        config.write_text(DOCKER_CE_CONTAINERD_CONFIG)
    assert node.exec(["systemctl", "start", "containerd"]).exit_status == 0
    assert node.exec(["systemctl", "is-active", "containerd"]).stdout.strip() == "active"
    calls = [(c["argv"], c["rc"]) for c in node.systemctl_calls()]
    assert (["restart", "containerd"], 1) in calls and (["start", "containerd"], 0) in calls


def test_systemctl_reports_an_unknown_unit_as_systemd_does(testbed_cluster: Cluster) -> None:
    node = testbed_cluster.nodes[0]
    result = node.exec(["systemctl", "start", "no-such-daemon"])
    assert result.exit_status == 5
    assert "Unit no-such-daemon.service not found." in result.stderr


def test_a_daemon_started_by_systemctl_holds_no_descriptor_of_its_caller(testbed_cluster: Cluster) -> None:
    # As systemd does: a playbook script holds its step lock on fd 9 and runs systemctl with the SSH
    # channel on stdin; the daemon it starts must hold neither (the scripts call systemctl plainly).
    node = testbed_cluster.nodes[0]
    script = "exec 9>/tmp/step.lock && flock 9 && systemctl restart containerd"
    result = node.exec(["sh", "-c", script])
    assert result.exit_status == 0, result.stderr
    pid = _main_pid(node, "containerd")
    fds = node.exec(
        ["sh", "-c", f'for fd in /proc/{pid}/fd/*; do echo "${{fd##*/}} $(readlink "$fd")"; done']
    )
    held = dict(line.split(" ", 1) for line in fds.stdout.splitlines())
    assert "/tmp/step.lock" not in held.values(), held
    assert held["0"] == "/dev/null"
    # the lock is free once the script has exited, though containerd runs on
    assert node.exec(["flock", "-n", "/tmp/step.lock", "true"]).exit_status == 0


def _open_files(node: Node, pid: int) -> tuple[str, str]:
    (line,) = [x for x in node.read(f"/proc/{pid}/limits").splitlines() if x.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    return soft, hard


def test_a_daemon_started_by_systemctl_has_its_units_limits_not_its_callers(testbed_cluster: Cluster) -> None:
    # containerd.service says LimitNOFILE=infinity, which systemd gives as fs.nr_open (here at most the
    # caller's hard limit: no CAP_SYS_RESOURCE); the caller's own soft 512 must not reach it, and a
    # drop-in overrides the unit as systemd reads one
    node = testbed_cluster.nodes[0]
    nr_open = node.read("/proc/sys/fs/nr_open").strip()
    most = node.exec(["sh", "-c", "ulimit -Hn"]).stdout.strip()
    nr_open = nr_open if most == "unlimited" else str(min(int(nr_open), int(most)))
    dropin = node.view("/etc/systemd/system/containerd.service.d/50-testbed-test.conf")
    sleeper = node.view("/etc/fake-systemd/limits-test.json")
    restart = ["sh", "-c", "ulimit -Sn 512 && systemctl restart containerd"]
    try:
        assert node.exec(restart).exit_status == 0
        assert _open_files(node, _main_pid(node, "containerd")) == (nr_open, nr_open)
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text("[Service]\nLimitNOFILE=4096:8192\n")
        assert node.exec(restart).exit_status == 0
        # (containerd is a Go program: Go raises its own soft open-file limit to the hard one)
        assert _open_files(node, _main_pid(node, "containerd")) == ("8192", "8192")
        # a unit without a unit file's Limit*= gets systemd's default
        sleeper.write_text('{"exec": ["/bin/sleep", "120"]}\n')
        assert node.exec(["sh", "-c", "ulimit -Sn 512 && systemctl start limits-test"]).exit_status == 0
        default_hard = "524288" if most == "unlimited" else str(min(524288, int(most)))
        assert _open_files(node, _main_pid(node, "limits-test")) == ("1024", default_hard)
    finally:
        node.exec(["systemctl", "stop", "limits-test"])
        sleeper.unlink(missing_ok=True)
        dropin.unlink(missing_ok=True)
        assert node.exec(["systemctl", "restart", "containerd"]).exit_status == 0
    assert _open_files(node, _main_pid(node, "containerd")) == (nr_open, nr_open)
