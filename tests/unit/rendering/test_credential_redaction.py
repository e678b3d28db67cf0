"""Registry credentials in a node's config.toml never reach a plan, a report or `shimshift render` output.

Before, they were copied into the change list and the diffs, hence into the `<name>-plan`
ConfigMap and every report format. Each is shown as `<redacted sha256:xxxxxxxx>` (the first 8 hex
digits of the value's sha256, so equal values can be told apart from different ones), and the plan
says the new config.toml drops them and what supplies credentials instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import io
import json
from pathlib import Path

import pytest

from shimshift.entry.cli import main
from shimshift.model.facts import NodeFacts
from shimshift.planning.build import build_plan
from shimshift.planning.report import report_to_json
from shimshift.planning.report_html import render_html
from shimshift.planning.report_markdown import render_markdown
from shimshift.rendering import facts_from_json_text, facts_to_json_text
from tests.unit.engine.conftest import make_engine
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNode, FakeNodes, manifest
from tests.unit.planning.factory import cluster, node, spec

REPO = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)

PASSWORD = "S3cret-Passw0rd-4d1f"
TOKEN = "ghp-TokenValue-9a8b7c"
AUTH = "ZGVwbG95OmxlZ2FjeS1hdXRoLXZhbHVl"
HEADER = "Bearer Header-Token-5e6f"
COMMENTED = "Commented-Secret-77aa"
SECRETS = (PASSWORD, TOKEN, AUTH, HEADER, COMMENTED)

#: A containerd 1.6 config with credentials the way admins put them there (schema 2).
CONFIG_V2 = f"""version = 2
# old password = "{COMMENTED}"

[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.corp.example".auth]
  username = "deploy-bot"
  password = "{PASSWORD}"

[plugins."io.containerd.grpc.v1.cri".registry.configs."ghcr.example".auth]
  identitytoken = "{TOKEN}"

[plugins."io.containerd.grpc.v1.cri".registry.auths."legacy.example"]
  auth = "{AUTH}"

[plugins."io.containerd.grpc.v1.cri".registry.headers]
  Authorization = ["{HEADER}"]

[debug]
  level = "warn"
"""
#: The same on containerd 2.x (schema 3): the images plugin's deprecated registry.configs.
CONFIG_V3 = f"""version = 3
[plugins."io.containerd.cri.v1.images".registry.configs."registry.corp.example".auth]
  password = "{PASSWORD}"
  auth = "{AUTH}"
[plugins."io.containerd.cri.v1.images".registry.configs."ghcr.example".auth]
  registrytoken = "{TOKEN}"
[plugins."io.containerd.cri.v1.images".registry.headers]
  Authorization = ["{HEADER}"]
# password = "{COMMENTED}"
"""


def marker(value: str) -> str:
    return f"<redacted sha256:{hashlib.sha256(value.encode()).hexdigest()[:8]}>"


def facts_with(config: str, example: str = "kubeadm-cgroupfs", name: str = "n1") -> NodeFacts:
    base = facts_from_json_text((REPO / "examples" / "facts" / f"{example}.json").read_text(), source=example)
    return dataclasses.replace(base, node=name, containerd_config=config)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret!r}"


CASES = [
    pytest.param(CONFIG_V2, "kubeadm-cgroupfs", id="schema-2"),
    pytest.param(CONFIG_V3, "containerd2", id="schema-3"),
]


@pytest.mark.parametrize(("config", "example"), CASES)
def test_no_report_format_shows_a_credential_of_the_nodes_config_toml(config: str, example: str) -> None:
    facts = facts_with(config, example)
    report = build_plan(spec(), cluster([node("n1")], []), {"n1": facts}, NOW, name="m")
    text = {
        "json": json.dumps(report_to_json(report), indent=2),
        "markdown": render_markdown(report),
        "html": html.unescape(render_html(report)),
    }
    for fmt, out in text.items():
        assert_no_secret(out, fmt)
        assert marker(PASSWORD) in out, fmt
        assert "registry credentials in the current /etc/containerd/config.toml" in out, fmt
    (finding,) = [f for f in report.warnings if f.message.startswith("registry credentials")]
    assert finding.code == "ContainerdRenderWarning" and finding.node == "n1"
    assert "registry.corp.example" in finding.message and "ghcr.example" in finding.message
    assert "registry headers" in finding.message
    assert "not carried into the new one" in finding.message and "imagePullSecrets" in finding.message


def test_equal_credentials_get_equal_markers_and_different_ones_different_markers() -> None:
    report = build_plan(spec(), cluster([node("n1")], []), {"n1": facts_with(CONFIG_V2)}, NOW, name="m")
    diff = render_markdown(report)
    assert marker(PASSWORD) in diff and marker(TOKEN) in diff and marker(PASSWORD) != marker(TOKEN)


def test_the_plan_config_map_the_operator_writes_holds_no_credential() -> None:
    clock = Clock()
    fake = FakeCluster([FakeNode("w1")], clock)

    class NodesWithCredentials(FakeNodes):
        def facts(self, node: str) -> NodeFacts:
            super().facts(node)
            return facts_with(CONFIG_V2, name=node)

    fake.create(manifest(mode="Plan"))
    make_engine(fake, NodesWithCredentials(fake), clock).reconcile(fake.get("m"))

    payload = fake.reports["m"]
    assert set(payload) == {"report.md", "report.json", "report.html"}
    for key, value in payload.items():
        assert_no_secret(value, f"ConfigMap m-plan {key}")
    assert marker(PASSWORD) in payload["report.json"]


def test_render_prints_no_credential_but_writes_what_the_node_needs(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(facts_to_json_text(facts_with(CONFIG_V2)))
    plan = str(REPO / "examples" / "plan.yaml")

    out = io.StringIO()
    assert main(["render", "-f", plan, "--facts", str(facts)], out) == 0, out.getvalue()
    assert_no_secret(out.getvalue(), "render stdout")
    assert marker(PASSWORD) in out.getvalue()
    assert "registry credentials" in out.getvalue()

    out = io.StringIO()
    target = tmp_path / "root"
    assert main(["render", "-f", plan, "--facts", str(facts), "--out", str(target)], out) == 0
    assert_no_secret(out.getvalue(), "render --out stdout")
    written = (target / "etc/containerd/config.toml").read_text()
    # The file the node gets, not a redacted view of it: shimshift's config.toml never carries the old
    # file's CRI registry table (rendering/existing.py), so there is nothing to redact in it.
    assert "<redacted" not in written and PASSWORD not in written
    assert 'level = "warn"' in written


def test_a_mirror_url_with_a_password_in_it_is_shown_without_the_password() -> None:
    facts = dataclasses.replace(
        facts_with(""), daemon_json={"registry-mirrors": [f"https://bot:{PASSWORD}@mirror.corp.example"]}
    )
    report = build_plan(spec(), cluster([node("n1")], []), {"n1": facts}, NOW, name="m")
    out = render_markdown(report) + json.dumps(report_to_json(report))
    assert PASSWORD not in out
    assert f"https://bot:{marker(PASSWORD)}@mirror.corp.example" in out


def test_a_config_toml_that_cannot_be_parsed_is_not_shown_at_all() -> None:
    from shimshift.rendering.redact import redact_toml

    shown = redact_toml(f'password = "{PASSWORD}"\n[[[broken')
    assert PASSWORD not in shown and shown.startswith("# (not shown")
    assert redact_toml('[debug]\n  level = "warn"\n') == '[debug]\n  level = "warn"\n'


def test_a_proxy_password_in_the_kubelet_flags_file_is_not_shown() -> None:
    from shimshift.planning.snapshot import load_snapshot
    from shimshift.steps.switch import kubelet_files

    snap = load_snapshot(REPO / "examples" / "snapshot")
    facts = snap.facts["worker-03"]
    flags = "/var/lib/kubelet/kubeadm-flags.env"
    files = {
        **facts.kubelet.files,
        flags: f"HTTPS_PROXY=http://bot:{PASSWORD}@proxy:3128\n" + facts.kubelet.files[flags],
    }
    facts = dataclasses.replace(facts, kubelet=dataclasses.replace(facts.kubelet, files=files))
    node_ = next(n for n in snap.cluster.nodes if n.name == "worker-03")
    (change,) = [c for c in kubelet_files(spec(), node_, facts).changes if c.path == flags]
    assert PASSWORD not in change.diff and f"http://bot:{marker(PASSWORD)}@proxy:3128" in change.diff
