"""Dockershim-era kubelet flags in the kubelet's systemd units: which are on its command line (systemd's
order, resets, EnvironmentFile= winning), and the switch's edit of an admin's unit under
/etc/systemd/system, which takes out exactly the flags it takes out of a flags file, word for word,
and leaves every other byte. Packaged units are never edited."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shimshift.model.kubeletunits import (
    ENV_FILE,
    UnitFlag,
    command_flags,
    edit_unit,
    kubelet_unit_flags,
    switch_edits,
)
from shimshift.model.kubenet import kubenet_translation
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.build import build_plan
from shimshift.planning.findings import Level
from shimshift.planning.settings import (
    KUBELET_FLAG_IGNORED,
    KUBELET_FLAG_NOT_CARRIED,
    KUBELET_FLAG_REFUSED,
    KUBELET_UNIT_FLAG_EDITED,
)
from shimshift.rendering import render_node_config
from shimshift.steps.facts.cni import cni_refusal
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.kubeletfiles import switched_flag
from shimshift.steps.switch import kubelet_files, plan_switch
from shimshift.steps.switch.kubelet import plan_kubelet_switch
from tests.unit.planning.factory import cluster, node, spec
from tests.unit.playbooks.probe import node_files, probe_output

ENDPOINT = "unix:///run/containerd/containerd.sock"
DROP_IN = "/etc/systemd/system/kubelet.service.d/20-extra.conf"
KUBEADM = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
PAUSE = "registry.example/pause:3.6"
NOW = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)


def drop(minor: int = 23):  # type: ignore[no-untyped-def]
    return lambda n, v: switched_flag(n, v, minor, ENDPOINT)


def flags_of(text: str, path: str = DROP_IN) -> list[tuple[str, str | None]]:
    return [(f.name, f.value) for f in kubelet_unit_flags({path: text})]


# ---- which tokens go, from which line ------------------------------------------------------------


def test_only_the_dockershim_tokens_leave_an_environment_line_and_every_other_line_stays() -> None:
    text = (
        "# kubelet extras, by hand\n[Service]\n"
        'Environment="KUBELET_EXTRA_ARGS=--max-pods=50 --network-plugin=kubenet '
        f'--pod-infra-container-image={PAUSE} --node-labels=a=b"\n'
        "Environment=GOGC=50\n"
    )
    edit = edit_unit(DROP_IN, text, drop())
    assert edit.after == (
        "# kubelet extras, by hand\n[Service]\n"
        f'Environment="KUBELET_EXTRA_ARGS=--max-pods=50 --pod-infra-container-image={PAUSE} '
        '--node-labels=a=b"\n'
        "Environment=GOGC=50\n"
    )
    assert [(f.shown, what) for f, what in edit.changed] == [("--network-plugin=kubenet", "removed")]


def test_a_flag_given_as_two_words_loses_both_and_one_given_with_equals_loses_one() -> None:
    text = (
        "[Service]\n"
        'Environment="KUBELET_EXTRA_ARGS=--cni-bin-dir /opt/cni/bin --v 2 --cni-conf-dir=/etc/cni/net.d"\n'
        "ExecStart=/usr/bin/kubelet --network-plugin cni --v=2 --docker-endpoint=unix:///run/docker.sock "
        "$KUBELET_EXTRA_ARGS\n"
    )
    assert flags_of(text)[:2] == [("cni-bin-dir", "/opt/cni/bin"), ("v", "2")]
    after = edit_unit(DROP_IN, text, drop()).after
    assert after == (
        '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--v 2"\n'
        "ExecStart=/usr/bin/kubelet --v=2 $KUBELET_EXTRA_ARGS\n"
    )


@pytest.mark.parametrize(
    "line",
    [
        'Environment="KUBELET_EXTRA_ARGS=--network-plugin=kubenet --max-pods=50"',
        'Environment=KUBELET_EXTRA_ARGS="--network-plugin=kubenet --max-pods=50"',
        "Environment='KUBELET_EXTRA_ARGS=--network-plugin=kubenet --max-pods=50'",
        'Environment=A=1 "KUBELET_EXTRA_ARGS=--network-plugin=kubenet --max-pods=50" B="x y"',
    ],
)
def test_quoting_inside_environment_is_read_as_systemd_reads_it(line: str) -> None:
    text = f"[Service]\n{line}\n"
    assert ("network-plugin", "kubenet") in flags_of(text)
    after = edit_unit(DROP_IN, text, drop()).after
    assert flags_of(after) == [("max-pods", "50")]
    # the other assignments on the line keep their bytes
    for other in ("A=1", 'B="x y"'):
        if other in line:
            assert other in after


def test_a_quote_or_backslash_in_a_kept_value_survives_the_rewritten_assignment() -> None:
    text = '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--network-plugin=cni --node-labels=a=\\"b\\""\n'
    after = edit_unit(DROP_IN, text, drop()).after
    assert after == '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--node-labels=a=\\"b\\""\n'
    assert flags_of(after) == [("node-labels", 'a="b"')]


def test_a_continued_execstart_keeps_its_other_lines_byte_for_byte() -> None:
    text = (
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet \\\n"
        "    --kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
        "    --network-plugin=kubenet \\\n"
        "    --v=2\n"
    )
    after = edit_unit(DROP_IN, text, drop()).after
    assert after == (
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet \\\n"
        "    --kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
        "    --v=2\n"
    )


def test_comments_and_other_sections_are_not_read_or_edited() -> None:
    text = (
        "[Unit]\nDescription=--network-plugin=kubenet\n"
        "[Service]\n# Environment=KUBELET_EXTRA_ARGS=--network-plugin=kubenet\n"
        "; ExecStart=/usr/bin/kubelet --network-plugin=kubenet\n"
    )
    assert flags_of(text) == []
    assert edit_unit(DROP_IN, text, drop()).after == text


def test_container_runtime_becomes_remote_before_127_and_the_endpoint_is_pointed_at_containerd() -> None:
    text = (
        "[Service]\nExecStart=/usr/bin/kubelet --container-runtime=docker "
        "--container-runtime-endpoint unix:///var/run/dockershim.sock\n"
    )
    before_127 = edit_unit(DROP_IN, text, drop(23)).after
    assert before_127 == (
        f"[Service]\nExecStart=/usr/bin/kubelet --container-runtime=remote --container-runtime-endpoint {ENDPOINT}\n"
    )
    assert "--container-runtime=" not in edit_unit(DROP_IN, text, drop(27)).after


# ---- what is on the command line ---------------------------------------------------------------


def test_several_drop_ins_are_read_in_file_name_order_and_the_last_assignment_wins() -> None:
    units = {
        "/lib/systemd/system/kubelet.service": "[Service]\nExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS\n",
        "/etc/systemd/system/kubelet.service.d/20-net.conf": (
            '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--network-plugin=kubenet"\n'
        ),
        "/etc/systemd/system/kubelet.service.d/10-old.conf": (
            '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--network-plugin=cni --docker-root=/d"\n'
        ),
    }
    flags = {(f.path.rsplit("/", 1)[-1], f.name): f for f in kubelet_unit_flags(units)}
    assert flags["20-net.conf", "network-plugin"].live
    old = flags["10-old.conf", "network-plugin"]
    assert not old.live and "20-net.conf wins" in old.why_not_live
    assert not flags["10-old.conf", "docker-root"].live


def test_a_later_drop_in_resetting_execstart_takes_the_earlier_flags_off_the_command_line() -> None:
    units = {
        "/etc/systemd/system/kubelet.service": (
            "[Service]\nExecStart=/usr/bin/kubelet --network-plugin=kubenet --v=2\n"
        ),
        "/etc/systemd/system/kubelet.service.d/90-reset.conf": (
            "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --v=3\n"
        ),
    }
    (plugin,) = [f for f in kubelet_unit_flags(units) if f.name == "network-plugin"]
    assert not plugin.live and "a later ExecStart= in" in plugin.why_not_live
    assert [f.value for f in kubelet_unit_flags(units) if f.live] == ["3"]
    # still taken out of the admin's file: harmless there, and gone if the reset is removed later
    edit = edit_unit(plugin.path, units[plugin.path], drop())
    assert "--network-plugin" not in edit.after


def test_an_environment_file_setting_the_same_variable_wins_over_environment() -> None:
    units = {
        KUBEADM: node_files("kubeadm-systemd")[KUBEADM],
        DROP_IN: ('[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--network-plugin=kubenet"\n'),
    }
    (flag,) = [
        f
        for f in kubelet_unit_flags(units, {"/etc/default/kubelet": "KUBELET_EXTRA_ARGS=\n"})
        if f.name == "network-plugin"
    ]
    assert (
        not flag.live and "EnvironmentFile=/etc/default/kubelet sets KUBELET_EXTRA_ARGS" in flag.why_not_live
    )
    (flag,) = [f for f in kubelet_unit_flags(units) if f.name == "network-plugin"]
    assert flag.live  # no /etc/default/kubelet on the node: the drop-in's value is the kubelet's


def test_a_value_from_a_variable_on_execstart_is_unsafe_and_left_as_it_is() -> None:
    text = "[Service]\nExecStart=/usr/bin/kubelet --network-plugin=$NET --cni-bin-dir ${BIN} --v=2\n"
    flags = kubelet_unit_flags({DROP_IN: text})
    assert [bool(f.unsafe) for f in flags] == [True, True, False]
    assert "comes from a variable" in flags[0].unsafe
    assert edit_unit(DROP_IN, text, drop()).after == text


# ---- the plan and the switch -----------------------------------------------------------------------


def kubenet_drop_in(extra: str = "") -> str:
    return (
        "[Service]\n"
        f'Environment="KUBELET_EXTRA_ARGS=--network-plugin=kubenet --pod-infra-container-image={PAUSE}{extra}"\n'
    )


def facts_with(units: dict[str, str], version: str = "v1.23.17", pod_cidr: str | None = "10.244.1.0/24"):  # type: ignore[no-untyped-def]
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    files[FLAGS] = 'KUBELET_KUBEADM_ARGS=""\n'
    files.pop("/etc/default/kubelet", None)  # its KUBELET_EXTRA_ARGS= would win over the drop-in's
    files.update(units)
    facts = parse_facts("n1", probe_output(files), kubelet_version=version)
    return replace(facts, pod_cidrs=(pod_cidr,) if pod_cidr else ())


def test_a_kubenet_drop_in_is_translated_as_the_flags_file_is_and_the_switch_edits_that_file() -> None:
    facts = facts_with({DROP_IN: kubenet_drop_in()})
    assert ("network-plugin", "kubenet") in command_flags(facts.kubelet)
    assert kubenet_translation(facts) is not None
    assert facts.kubelet.pod_infra_image is not None and facts.kubelet.pod_infra_image.value == PAUSE
    assert facts.kubelet.pod_infra_image.file == DROP_IN
    the_spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": ["n1"]})
    rendered = render_node_config(the_spec, facts)
    assert any(f.path.endswith("00-shimshift-kubenet.conflist") for f in rendered.files)
    assert f'"{PAUSE}"' in rendered.config_toml.text
    switch = plan_switch(the_spec, "n1", facts)
    edits = {e.path: e for e in switch.edits}
    assert edits[DROP_IN].after == (
        f'[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--pod-infra-container-image={PAUSE}"\n'
    )
    assert switch.unit_changes == ((DROP_IN, "--network-plugin=kubenet", "removed"),)
    assert switch.daemon_reload and "--network-plugin" in switch.removed_flags
    # applied, the node plans no further edit of the drop-in
    again = facts_with({DROP_IN: edits[DROP_IN].after})
    assert DROP_IN not in {e.path for e in plan_switch(the_spec, "n1", again).edits}


def test_the_pod_infra_flag_leaves_the_drop_in_only_where_the_kubelet_removed_it() -> None:
    kept = plan_kubelet_switch(
        "n1", facts_with({DROP_IN: kubenet_drop_in()}, "v1.34.1").kubelet, endpoint=ENDPOINT
    )
    gone = plan_kubelet_switch(
        "n1", facts_with({DROP_IN: kubenet_drop_in()}, "v1.35.0").kubelet, endpoint=ENDPOINT
    )
    assert "--pod-infra-container-image" in {e.path: e.after for e in kept.edits}[DROP_IN]
    assert "--pod-infra-container-image" not in {e.path: e.after for e in gone.edits}[DROP_IN]


def test_the_plan_names_each_flag_with_its_file_and_what_the_switch_does_to_it() -> None:
    facts = facts_with({DROP_IN: kubenet_drop_in(" --docker-root=/srv/docker")})
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    found = {
        f.subject: f for f in (*report.blockers, *report.warnings, *report.notes) if DROP_IN in f.message
    }
    assert found["--network-plugin"].code == KUBELET_FLAG_NOT_CARRIED  # carried, not as it was
    assert found["--network-plugin"].message.endswith(f"the switch removes it from {DROP_IN}")
    assert (found["--docker-root"].code, found["--docker-root"].level) == (KUBELET_FLAG_IGNORED, Level.INFO)
    assert found["--docker-root"].message.endswith(f"the switch removes it from {DROP_IN}")
    infra = found["--pod-infra-container-image"]
    assert infra.code == KUBELET_UNIT_FLAG_EDITED and infra.message.endswith(
        f"the switch leaves it in {DROP_IN}"
    )
    assert report.blockers == ()
    (n,) = report.nodes
    (change,) = [c for c in n.kubelet.changes if c.path == DROP_IN]
    assert (
        change.after is not None
        and "--network-plugin" not in change.after
        and "--docker-root" not in change.after
    )
    assert any("daemon-reload" in note for note in n.kubelet.notes)


def test_a_flag_the_switch_cannot_edit_safely_is_a_blocker_with_what_to_do() -> None:
    unit = "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS --network-plugin=${NET}\n"
    facts = facts_with({DROP_IN: unit})
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    (blocker,) = [f for f in report.blockers if f.subject == "--network-plugin"]
    assert blocker.code == KUBELET_FLAG_REFUSED and DROP_IN in blocker.message
    assert "cannot edit it safely" in blocker.message and "comes from a variable" in blocker.message
    assert "literally" in blocker.advice
    switch = plan_switch(NodeMigrationSpec.from_raw({"mode": "Plan", "nodeNames": ["n1"]}), "n1", facts)
    assert DROP_IN not in {e.path for e in switch.edits}  # the switch leaves what it cannot edit


def test_the_facts_step_refuses_a_network_flag_the_switch_cannot_edit_and_not_one_it_can() -> None:
    unsafe = (
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS --network-plugin=${NET}\n"
    )
    why = cni_refusal(facts_with({DROP_IN: unsafe}), {})
    assert why is not None and DROP_IN in why and "cannot edit it safely" in why
    # kubenet in a drop-in on a Node with a podCIDR is carried: the node is not refused for it
    assert cni_refusal(facts_with({DROP_IN: kubenet_drop_in()}), {}) is None
    without_cidr = cni_refusal(facts_with({DROP_IN: kubenet_drop_in()}, pod_cidr=None), {})
    assert without_cidr is not None and "no spec.podCIDR" in without_cidr


def test_a_packaged_drop_in_is_never_edited() -> None:
    packaged = "/usr/lib/systemd/system/kubelet.service.d/20-extra.conf"
    facts = facts_with({packaged: kubenet_drop_in()})
    the_spec = NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": ["n1"]})
    assert packaged not in plan_switch(the_spec, "n1", facts).paths
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    (blocker,) = [f for f in report.blockers if f.subject == "--network-plugin"]
    assert "a packaged unit the switch does not edit" in blocker.message
    section = kubelet_files(the_spec, PlannedNode("n1", "v1.23.17", {}), facts)
    assert packaged not in {c.path for c in section.changes}


@dataclass(frozen=True)
class PlannedNode:
    name: str
    kubelet_version: str
    annotations: dict[str, str]


# ---- property: the edit keeps exactly the flags it does not take out, in order ------------------

_FLAG = st.sampled_from(["network-plugin", "docker-root", "cni-bin-dir", "max-pods", "v", "node-labels"])
_VALUE = st.text(alphabet="abc/=:.-", min_size=1, max_size=8).filter(lambda v: not v.startswith("-"))


@given(st.lists(st.tuples(_FLAG, _VALUE, st.booleans()), min_size=1, max_size=6), st.booleans())
def test_the_edit_keeps_exactly_the_other_flags_in_their_order(
    flags: list[tuple[str, str, bool]], on_exec: bool
) -> None:
    words = " ".join(f"--{n} {v}" if two else f"--{n}={v}" for n, v, two in flags)
    text = (
        f"[Service]\nExecStart=/usr/bin/kubelet {words}\n"
        if on_exec
        else f'[Service]\nEnvironment="KUBELET_EXTRA_ARGS={words}"\n'
    )
    after = edit_unit(DROP_IN, text, drop()).after
    wanted = [(n, v) for n, v, _ in flags if switched_flag(n, v, 23, ENDPOINT)[0]]
    assert flags_of(after) == wanted


def test_unit_flags_are_values_a_report_can_show() -> None:
    (flag,) = kubelet_unit_flags({DROP_IN: '[Service]\nEnvironment="A=--network-plugin=kubenet"\n'})
    assert isinstance(flag, UnitFlag) and flag.shown == "--network-plugin=kubenet"
    assert json.dumps(flag.shown)


_PIECES = st.sampled_from(
    [
        "[Service]\n",
        "[Unit]\n",
        "ExecStart=",
        "ExecStart=/usr/bin/kubelet ",
        "Environment=",
        'Environment="KUBELET_EXTRA_ARGS=',
        "EnvironmentFile=-/etc/default/kubelet\n",
        "--network-plugin=kubenet ",
        "--network-plugin ",
        "kubenet ",
        "--docker-root=/d ",
        "--v=2 ",
        "$NET ",
        "${BIN} ",
        '"',
        "'",
        "\\",
        "\\\n",
        "\n",
        " ",
        "#",
        "%h",
        "A=1 ",
    ]
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_any_unit_text_is_read_and_edited_or_refused_with_a_clear_error(text: str) -> None:
    units = {DROP_IN: text, "/lib/systemd/system/kubelet.service": text}
    flags = kubelet_unit_flags(units)
    try:
        edit = edit_unit(DROP_IN, text, drop())
    except ValueError as e:  # UnitEditError: names the file
        assert DROP_IN in str(e)
        return
    left = [f for f in kubelet_unit_flags({DROP_IN: edit.after}) if not f.unsafe]
    assert all(switched_flag(f.name, f.value, 23, ENDPOINT) == (True, f.value) for f in left)
    assert len(edit.changed) <= len([f for f in flags if f.path == DROP_IN])


HAND_ROLLED = "/etc/systemd/system/kubelet.service"


def hand_rolled(version: str = "v1.23.17", extra: str = ""):  # type: ignore[no-untyped-def]
    """A hand-rolled node: every kubelet flag literally on kubelet.service's ExecStart=, no flags file."""
    files = {p: t for p, t in node_files("kubeadm-systemd").items() if "/certs.d/" not in p}
    for path in (FLAGS, "/etc/default/kubelet", KUBEADM):
        files.pop(path, None)
    files[HAND_ROLLED] = (
        "[Unit]\nDescription=Kubernetes Kubelet\n[Service]\n"
        "ExecStart=/usr/local/bin/kubelet \\\n"
        "  --config=/var/lib/kubelet/config.yaml \\\n"
        "  --kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
        f"  --network-plugin=cni{extra} \\\n"
        "  --register-node=true\n"
        "Restart=on-failure\n"
    )
    return parse_facts("n1", probe_output(files), kubelet_version=version).kubelet


def test_a_hand_rolled_unit_without_a_flags_file_gets_the_endpoint_on_its_own_execstart() -> None:
    kubelet = hand_rolled()
    switch = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT)
    (edit,) = switch.edits
    assert edit.path == HAND_ROLLED and switch.endpoint_file == HAND_ROLLED
    assert edit.after == (
        "[Unit]\nDescription=Kubernetes Kubelet\n[Service]\n"
        "ExecStart=/usr/local/bin/kubelet \\\n"
        "  --config=/var/lib/kubelet/config.yaml \\\n"
        "  --kubeconfig=/etc/kubernetes/kubelet.conf \\\n"
        f"  --register-node=true --container-runtime=remote --container-runtime-endpoint={ENDPOINT}\n"
        "Restart=on-failure\n"
    )
    assert (HAND_ROLLED, f"--container-runtime-endpoint={ENDPOINT}", "added") in switch.unit_changes
    again = replace(kubelet, units={HAND_ROLLED: edit.after})
    assert plan_kubelet_switch("n1", again, endpoint=ENDPOINT).edits == ()


def test_a_hand_rolled_unit_with_docker_as_its_runtime_is_set_to_remote_where_it_says_so() -> None:
    kubelet = hand_rolled(extra=" --container-runtime=docker")
    (edit,) = plan_kubelet_switch("n1", kubelet, endpoint=ENDPOINT).edits
    assert "--container-runtime=remote \\\n" in edit.after and edit.after.count("--container-runtime=") == 1
    assert edit.after.rstrip().endswith("Restart=on-failure")
    on_127 = plan_kubelet_switch(
        "n1", hand_rolled("v1.27.3", " --container-runtime=docker"), endpoint=ENDPOINT
    )
    edits = {e.path: e.after for e in on_127.edits}
    assert "--container-runtime" not in edits[HAND_ROLLED]  # 1.27 refuses it
    assert on_127.endpoint_key == "containerRuntimeEndpoint"  # the config file takes the endpoint from 1.27


def test_a_hand_rolled_kubenet_node_plans_without_blockers_and_says_what_its_unit_gets() -> None:
    facts = facts_with({})
    kubelet = hand_rolled(extra=" --network-plugin=kubenet")
    facts = replace(facts, kubelet=kubelet)
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    assert report.blockers == (), [f.message for f in report.blockers]
    (n,) = report.nodes
    (change,) = [c for c in n.kubelet.changes if c.path == HAND_ROLLED]
    assert change.after is not None and f"--container-runtime-endpoint={ENDPOINT}" in change.after
    assert "--network-plugin" not in change.after
    assert any(
        f"--container-runtime-endpoint={ENDPOINT} added to {HAND_ROLLED}" in note for note in n.kubelet.notes
    )
    # with the flags in a packaged unit only, the node still cannot be planned
    packaged = {"/lib/systemd/system/kubelet.service": kubelet.units[HAND_ROLLED]}
    report = build_plan(
        spec(),
        cluster(nodes=[node("n1")]),
        {"n1": replace(facts, kubelet=replace(kubelet, units=packaged))},
        NOW,
    )
    assert "KubeletLayoutUnknown" in {f.code for f in report.blockers}


@given(st.text(alphabet=" \t\"'\\ab=-$%", max_size=40), st.integers(0, 5))
def test_the_fast_word_splitter_agrees_with_the_character_by_character_one(text: str, begin: int) -> None:
    from shimshift.model import kubeletunits

    begin = min(begin, len(text))
    fast = kubeletunits._words(text, begin)
    slow = kubeletunits._slow_words(text, begin)
    assert [(w.start, w.end, w.text, w.unsafe) for w in fast] == [
        (w.start, w.end, w.text, w.unsafe) for w in slow
    ]


@pytest.mark.parametrize(
    ("flag", "blocks"),
    [
        ("--network-plugin=${NET}", True),
        ("--container-runtime=$RUNTIME", True),
        ("--docker-endpoint=${DOCKER}", True),
        # kubelet 1.23 keeps it: the switch leaves it as it is, variable or not
        ("--pod-infra-container-image=${PAUSE_IMAGE}", False),
        ("--network-plugin=kubenet", False),  # carried on the Node's podCIDR
        ("--image-pull-progress-deadline=2m", False),  # removed from the drop-in
    ],
)
def test_the_facts_step_refuses_exactly_the_nodes_whose_unit_flags_the_plan_blocks(
    flag: str, blocks: bool
) -> None:
    """Migrate mode changes no node the plan blocks: a unit flag the switch cannot edit safely, of any
    kind (not only the network's), is refused by the facts step in the plan's words."""
    unit = f"[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS {flag}\n"
    facts = facts_with({DROP_IN: unit})
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    blocked = [f for f in report.blockers if f.code == KUBELET_FLAG_REFUSED]
    why = cni_refusal(facts, {})
    assert bool(blocked) == blocks, [f.message for f in blocked]
    assert (why is not None) == blocks, why
    for f in blocked:  # the plan's words: the flag, its file, why, and what to do
        assert why is not None and f"kubelet {f.subject}=" in why and DROP_IN in why, (why, f.message)
        assert f.message.split(": ", 1)[1].split("; ", 1)[0] in why and f.advice in why, (why, f)


# ---- flags in another file the kubelet's unit reads in EnvironmentFile= ------------------------

EXTRA_ENV = "/etc/kubelet/extra.env"


def env_file_unit(*files: str, uses: str = "$EXTRA_ARGS") -> str:
    named = " ".join(files) or f"-{EXTRA_ENV}"
    return f"[Service]\nEnvironmentFile={named}\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS {uses}\n"


def test_the_probe_sends_only_an_environment_files_flag_assignments() -> None:
    text = 'EXTRA_ARGS="--image-pull-progress-deadline=2m"\nHTTPS_PROXY=http://u:s3cret@proxy:3128\n'
    facts = facts_with({DROP_IN: env_file_unit(), EXTRA_ENV: text})
    # the proxy's password never leaves the node; the line numbers stay
    assert facts.kubelet.env_files == {EXTRA_ENV: 'EXTRA_ARGS="--image-pull-progress-deadline=2m"\n\n'}
    assert EXTRA_ENV not in facts.kubelet.units and EXTRA_ENV not in facts.kubelet.files


def test_a_flag_in_another_environment_file_is_on_the_command_line_when_execstart_uses_it() -> None:
    units = {DROP_IN: env_file_unit()}
    env = {EXTRA_ENV: 'EXTRA_ARGS="--network-plugin=kubenet --max-pods=50"\nOTHER=--docker-root=/x\n'}
    flags = {f.name: f for f in kubelet_unit_flags(units, {}, env)}
    assert flags["network-plugin"].live and flags["max-pods"].live
    assert (flags["network-plugin"].path, flags["network-plugin"].line) == (EXTRA_ENV, 1)
    assert flags["network-plugin"].directive == ENV_FILE and not switch_edits(flags["network-plugin"])
    assert not flags["docker-root"].live and "no ExecStart= of the kubelet uses $OTHER" in (
        flags["docker-root"].why_not_live
    )
    # a later file setting the same variable wins, and so does a later line of the same file
    later = "/etc/kubelet/later.env"
    units = {DROP_IN: env_file_unit(EXTRA_ENV, later)}
    both = {**env, later: "EXTRA_ARGS=--max-pods=60\n"}
    live = [(f.path, f.name, f.value) for f in kubelet_unit_flags(units, {}, both) if f.live]
    assert live == [(later, "max-pods", "60")], live
    twice = {EXTRA_ENV: "EXTRA_ARGS=--network-plugin=kubenet\nEXTRA_ARGS=--max-pods=1\n"}
    lines = [(f.name, f.line) for f in kubelet_unit_flags({DROP_IN: env_file_unit()}, {}, twice) if f.live]
    assert lines == [("max-pods", 2)], lines
    # an EnvironmentFile's variable wins over an Environment= of the same name, as systemd has it
    dropped = "[Service]\nEnvironment=EXTRA_ARGS=--cni-bin-dir=/opt/a\n"
    flags = {f.name: f for f in kubelet_unit_flags({DROP_IN: env_file_unit(), KUBEADM: dropped}, {}, env)}
    assert (
        not flags["cni-bin-dir"].live and f"EnvironmentFile={EXTRA_ENV}" in flags["cni-bin-dir"].why_not_live
    )


def test_a_dockershim_flag_in_another_environment_file_is_a_finding_and_the_switch_leaves_the_file() -> None:
    # even under /etc/systemd/system, a file read in EnvironmentFile= is not a unit the switch edits
    for env_path in (EXTRA_ENV, "/etc/systemd/system/kubelet.env"):
        text = "EXTRA_ARGS=--image-pull-progress-deadline=2m --max-pods=50\n"
        facts = facts_with({DROP_IN: env_file_unit(env_path), env_path: text})
        report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
        (warning,) = [f for f in report.warnings if f.subject == "--image-pull-progress-deadline"]
        assert warning.code == KUBELET_FLAG_NOT_CARRIED and warning.level == Level.WARNING
        assert f"in {env_path} ($EXTRA_ARGS)" in warning.message and "EnvironmentFile=" in warning.message
        assert f"move it out of {env_path}" in warning.advice
        switch = plan_switch(
            NodeMigrationSpec.from_raw({"mode": "Migrate", "nodeNames": ["n1"]}), "n1", facts
        )
        assert env_path not in switch.paths


def test_kubenet_in_another_environment_file_is_refused_by_the_plan_and_the_facts_step_alike() -> None:
    facts = facts_with({DROP_IN: env_file_unit(), EXTRA_ENV: "EXTRA_ARGS=--network-plugin=kubenet\n"})
    report = build_plan(spec(), cluster(nodes=[node("n1")]), {"n1": facts}, NOW)
    (blocker,) = [f for f in report.blockers if f.subject == "--network-plugin"]
    assert blocker.code == KUBELET_FLAG_REFUSED and EXTRA_ENV in blocker.message
    why = cni_refusal(facts, {})
    assert why is not None and EXTRA_ENV in why and blocker.advice in why, (why, blocker)
