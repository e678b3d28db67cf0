"""What the plan says happens to Docker is what the switch and finish steps do, under each spec.docker
policy: the switch stops Docker under every policy (switch.sh); only Stop disables it and deletes
/var/run/docker.sock once the rollback window is committed (commit.yaml, docker_disable.sh)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shimshift.model.spec import DockerPolicy
from shimshift.planning.dockerdeps import DependencyKind, DockerDependency, Severity, socket_note
from shimshift.playbooks import shipped_playbook

SCRIPTS = Path(__file__).resolve().parents[3] / "operator" / "shimshift" / "data" / "playbooks" / "scripts"


def _script(name: str) -> str:
    return (SCRIPTS / f"{name}.sh").read_text()


def test_the_switch_stops_docker_whatever_the_policy_so_the_note_may_say_so() -> None:
    switch = _script("switch")
    # unconditional: no policy reaches switch.sh (its playbook has no docker_policy variable)
    assert re.search(r"^stop_recorded \"\$state\" docker \|\| exit$", switch, re.M)
    assert re.search(r"^stop_recorded \"\$state\" cri-docker \|\| exit$", switch, re.M)
    assert "docker_policy" not in shipped_playbook("switch").vars
    # ... and it leaves docker.socket alone, which can start dockerd again under Keep
    assert "docker.socket" not in switch


def test_only_a_policy_other_than_keep_runs_the_commit_steps_docker_disable() -> None:
    task, _backups = shipped_playbook("commit").tasks
    assert task.when == 'docker_policy != "Keep"'
    disable = _script("docker_disable")
    assert "for u in cri-docker docker docker.socket" in disable
    assert 'systemctl disable "$u"' in disable and 'rm -f -- "$sock"' in disable


def test_under_keep_the_plan_says_docker_is_stopped_at_the_switch_and_comes_back_at_boot() -> None:
    note = socket_note(DockerPolicy.KEEP)
    assert "switch stops Docker under every spec.docker policy" in note
    assert "stays installed and enabled" in note and "next boot" in note
    assert "docker.socket" in note and "runs none of the pods" in note
    assert "keeps running" not in note and "still answers" not in note
    assert "disables" not in note and "deletes" not in note


def test_under_stop_the_plan_says_the_commit_step_disables_docker_and_deletes_its_socket() -> None:
    note = socket_note(DockerPolicy.STOP)
    assert "switch stops Docker under every spec.docker policy" in note
    assert "Once the rollback window is committed (spec.commit)" in note
    assert "commit step (spec.docker Stop) also disables docker, docker.socket and cri-docker" in note
    assert "deletes /var/run/docker.sock" in note and "/var/lib/docker stays" in note


@pytest.mark.parametrize("policy", list(DockerPolicy))
def test_every_policy_has_a_note_that_never_claims_docker_keeps_running(policy: DockerPolicy) -> None:
    note = socket_note(policy)
    assert policy.value in note
    assert "keeps running" not in note and "still answers" not in note


def test_the_docker_socket_advice_does_not_claim_the_socket_answers_under_keep() -> None:
    dep = DockerDependency(DependencyKind.DOCKER_SOCKET, Severity.HIGH, "ns", "DaemonSet/x", "", 1, ("n1",))
    assert "answers" not in dep.advice
    assert "stopped at the switch under every spec.docker policy" in dep.advice
