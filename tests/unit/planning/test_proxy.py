"""Docker's HTTP proxy carried to containerd: read from docker.service's Environment= lines and
daemon.json `proxies`, written as containerd.service.d/http-proxy.conf, its NO_PROXY checked, its
passwords never shown."""

from __future__ import annotations

import json
from typing import Any

from shimshift.model import keys
from shimshift.model.dockerera import Fate, daemon_json_fate
from shimshift.model.facts import Setting
from shimshift.model.factsjson import facts_to_json_text
from shimshift.model.proxy import environment_assignments, no_proxy_covers
from shimshift.planning.findings import Level
from shimshift.planning.settings import PROXY_NO_PROXY_INCOMPLETE
from shimshift.rendering import facts_from_json_text, render_node_config
from shimshift.steps.configure import _variables, containerd_files
from shimshift.steps.nodeplan import NodeRunPlan
from tests.unit.planning.factory import spec
from tests.unit.planning.test_settings import BASE_DAEMON, BASE_FLAGS, about, only_node, plan, probed_facts

DROPIN = keys.CONTAINERD_PROXY_DROPIN
DOCKER_D = "/etc/systemd/system/docker.service.d"
GOOD_NO_PROXY = "localhost,127.0.0.1,.svc,.cluster.local,10.0.0.0/8"


def facts_with(daemon_extra: dict[str, Any] | None = None, **files: str) -> Any:
    extra = {path.replace("__", "/"): text for path, text in files.items()}
    return probed_facts({**BASE_DAEMON, **(daemon_extra or {})}, BASE_FLAGS, extra)


def unit(*lines: str) -> str:
    return "[Service]\n" + "\n".join(lines) + "\n"


def test_environment_lines_are_read_as_systemd_reads_them() -> None:
    text = (
        "[Unit]\nEnvironment=HTTP_PROXY=http://not-service:1\n"
        "[Service]\n# Environment=HTTP_PROXY=http://commented:1\n"
        'Environment="HTTP_PROXY=http://a:3128" \'no_proxy=x,y\' \\\n  "HTTPS_PROXY=http://b:3128"\n'
        "Environment=OTHER=1 PCT=50%%\n"
    )
    assert environment_assignments(text) == [
        ("HTTP_PROXY", "http://a:3128"),
        ("no_proxy", "x,y"),
        ("HTTPS_PROXY", "http://b:3128"),
        ("OTHER", "1"),
        ("PCT", "50%"),
    ]


def test_the_probe_reads_dockers_unit_and_drop_ins_in_systemd_order_and_daemon_json_wins() -> None:
    facts = facts_with(
        {"proxies": {"https-proxy": "http://json:3128"}},
        **{
            "/etc/systemd/system/docker.service": unit("Environment=http_proxy=http://unit:1"),
            f"{DOCKER_D}/20-b.conf": unit('Environment="HTTP_PROXY=http://b:3128" "NO_PROXY=.svc"'),
            f"{DOCKER_D}/10-a.conf": unit("Environment=HTTPS_PROXY=http://a:3128"),
            f"{DOCKER_D}/30-other.conf": unit("Environment=FOO=bar"),
            "/etc/systemd/system/containerd.service.d/limits.conf": unit("LimitNOFILE=1048576"),
        },
    )
    assert facts.docker_proxy_env == (
        Setting("http://unit:1", "/etc/systemd/system/docker.service", "http_proxy"),
        Setting("http://a:3128", f"{DOCKER_D}/10-a.conf", "HTTPS_PROXY"),
        Setting("http://b:3128", f"{DOCKER_D}/20-b.conf", "HTTP_PROXY"),
        Setting(".svc", f"{DOCKER_D}/20-b.conf", "NO_PROXY"),
    )
    assert set(facts.containerd_dropins) == {"/etc/systemd/system/containerd.service.d/limits.conf"}
    dropin = render_node_config(spec(), facts).file(DROPIN).text
    assert 'Environment="HTTP_PROXY=http://b:3128"' in dropin  # upper case wins over http_proxy
    assert 'Environment="HTTPS_PROXY=http://json:3128"' in dropin  # daemon.json wins
    assert 'Environment="NO_PROXY=.svc"' in dropin
    assert dropin.startswith("# Written by shimshift") and "\n[Service]\n" in dropin


def test_a_facts_file_from_before_the_proxy_fields_still_loads() -> None:
    facts = facts_with()
    raw = json.loads(facts_to_json_text(facts))
    del raw["docker_proxy_env"], raw["containerd_dropins"]
    old = facts_from_json_text(json.dumps(raw))
    assert old.docker_proxy_env == () and dict(old.containerd_dropins) == {}
    assert old == facts


def test_no_proxy_anywhere_writes_no_drop_in_and_finds_nothing() -> None:
    facts = facts_with()
    assert DROPIN not in {f.path for f in render_node_config(spec(), facts).files}
    assert about(plan(facts), "daemon.json proxies") == []


def test_daemon_json_proxies_is_translated_into_a_drop_in_shown_redacted() -> None:
    assert daemon_json_fate("proxies", {"http-proxy": "http://p:3128"}).fate is Fate.TRANSLATED
    url = "http://user:hunter2@proxy.example.com:3128"
    facts = facts_with({"proxies": {"http-proxy": url, "https-proxy": url, "no-proxy": GOOD_NO_PROXY}})
    rendered = render_node_config(spec(), facts)
    written = rendered.file(DROPIN)
    assert f'Environment="HTTP_PROXY={url}"' in written.text  # the node gets the real value
    assert written.mode == 0o600  # a password in it
    assert "hunter2" not in rendered.diff({}) and "hunter2" not in "\n".join(rendered.report.lines())
    report = plan(facts)
    n = only_node(report)
    (change,) = [c for c in n.containerd.changes if c.path == DROPIN]
    assert change.before is None and change.after is not None
    assert "hunter2" not in change.after and "<redacted sha256:" in change.after
    assert "hunter2" not in repr(n.containerd) and "hunter2" not in repr(report.warnings)
    carried = [c for c in n.containerd.carryover if c.source == "daemon.json proxies"]
    assert carried and all(c.carried for c in carried)
    assert about(report, "daemon.json proxies") == []  # NO_PROXY covers everything: nothing to warn
    # the configure step writes it: backed up (as absent, so the undo removes it) and uploaded
    run = NodeRunPlan.build("m1", rendered.files, kubelet=_NoKubelet())
    assert DROPIN in run.containerd_paths
    assert _variables(run)["proxy_dropin"] == DROPIN


class _NoKubelet:
    edits: tuple[Any, ...] = ()
    paths: tuple[str, ...] = ()


def test_a_no_proxy_that_leaves_out_the_cluster_the_node_or_a_mirror_is_a_warning() -> None:
    facts = facts_with(
        {"registry-mirrors": ["https://mirror.internal:5000"]},
        **{
            f"{DOCKER_D}/http-proxy.conf": unit(
                'Environment="HTTPS_PROXY=http://u:hunter2@proxy:3128" "NO_PROXY=localhost,.svc"'
            )
        },
    )
    report = plan(facts, spec(containerd={"importDockerConfig": True}))
    (finding,) = [f for f in report.warnings if f.code == PROXY_NO_PROXY_INCOMPLETE]
    assert finding.level is Level.WARNING and finding.subject == DROPIN
    assert ".cluster.local, 127.0.0.1, mirror.internal:5000" in finding.message
    assert ".svc," not in finding.message.split("does not cover", 1)[1]
    assert "not checked" in finding.message and "CIDR" in finding.message
    assert "hunter2" not in finding.message + finding.advice and "redacted" in finding.message


def test_no_proxy_coverage_reads_suffixes_wildcards_and_ranges_as_go_does() -> None:
    assert no_proxy_covers(".svc", "kubernetes.default.svc")
    assert no_proxy_covers("svc", "kubernetes.default.svc")
    assert no_proxy_covers("*.cluster.local", "a.svc.cluster.local")
    assert not no_proxy_covers(".svc", "a.svc.cluster.local")
    assert no_proxy_covers("10.0.0.0/8", "10.96.0.1") and not no_proxy_covers("10.0.0.0/8", "11.0.0.1")
    assert no_proxy_covers("mirror.internal", "mirror.internal:5000")
    assert no_proxy_covers("*", "anything") and not no_proxy_covers("", "localhost")


def test_containerds_own_proxy_drop_in_is_kept_and_named() -> None:
    own = "/etc/systemd/system/containerd.service.d/proxy.conf"
    facts = facts_with(
        {"proxies": {"http-proxy": "http://docker-proxy:3128"}},
        **{own: unit("Environment=HTTP_PROXY=http://admins:3128 NO_PROXY=.svc")},
    )
    section = containerd_files(spec(), facts)
    assert DROPIN not in {c.path for c in section.changes}
    (note,) = [n for n in section.notes if "is kept" in n]
    assert own in note and "http://admins:3128" in note and "docker-proxy" in note
    (finding,) = [f for f in plan(facts).warnings if f.code == PROXY_NO_PROXY_INCOMPLETE]
    assert finding.subject == own and ".cluster.local" in finding.message


def test_shimshifts_own_drop_in_from_an_earlier_run_is_rendered_again() -> None:
    facts = facts_with({"proxies": {"http-proxy": "http://p:3128", "no-proxy": GOOD_NO_PROXY}})
    first = render_node_config(spec(), facts).file(DROPIN).text
    again = facts_with(
        {"proxies": {"http-proxy": "http://p:3128", "no-proxy": GOOD_NO_PROXY}}, **{DROPIN: first}
    )
    section = containerd_files(spec(), again)
    (change,) = [c for c in section.changes if c.path == DROPIN]
    assert change.before == change.after == first


def test_a_proxies_value_docker_cannot_read_is_a_setting_not_carried() -> None:
    report = plan(facts_with({"proxies": {"ftp-proxy": "x"}}))
    (finding,) = about(report, "daemon.json proxies")
    assert finding.code == "SettingNotCarried" and "ftp-proxy" in finding.message
