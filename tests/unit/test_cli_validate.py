"""`shimshift validate` and `shimshift version`, driven through main(argv)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shimshift.entry.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def test_every_bundled_example_is_valid() -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    status, out = run("validate", "-f", str(REPO / "examples"))
    assert status == 0, out
    assert out.count(": valid (mode ") == len(examples)


def test_version_names_the_api_group() -> None:
    status, out = run("version")
    assert status == 0
    assert "shimshift.io v1alpha1" in out


def test_problems_are_printed_with_field_paths_and_the_exit_status_is_1(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"
        "spec: {nodeNames: [a], rollout: {maxUnavailable: 120%}}\n"
    )
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert f"{f} (x): invalid" in out
    assert "spec.rollout.maxUnavailable: must be a percentage from 1% to 100%, not 120%" in out


def test_a_registry_ca_taken_from_the_ssh_key_secret_is_invalid_naming_both_fields(tmp_path: Path) -> None:
    f = tmp_path / "ca-from-ssh.yaml"
    f.write_text(
        "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"
        "spec:\n  mode: Migrate\n  nodeNames: [a]\n"
        "  ssh: {privateKeySecretRef: {name: ssh}, knownHostsSecretRef: {name: known-hosts}}\n"
        "  containerd:\n    registries:\n"
        "    - {host: registry.example.com, caSecretRef: {name: ssh, key: ssh-privatekey}}\n"
    )
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert (
        "spec.containerd.registries[0].caSecretRef: names Secret ssh, which spec.ssh.privateKeySecretRef "
        "names too" in out
    )


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\n  spec: [\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert "YAML syntax error at line 3, column 7" in out


def test_a_missing_file_is_reported_not_a_traceback(tmp_path: Path) -> None:
    status, out = run("validate", "-f", str(tmp_path / "nope.yaml"))
    assert status == 1
    assert "nope.yaml: no such file" in out


def test_multi_document_files_are_checked_document_by_document(tmp_path: Path) -> None:
    good = (REPO / "examples" / "plan.yaml").read_text()
    f = tmp_path / "many.yaml"
    f.write_text(good + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert f"{f}#1 (workers-plan): valid" in out
    assert f"{f}#2 (c): invalid" in out
    assert "kind: must be NodeMigration, not 'ConfigMap'" in out


def test_an_empty_file_is_not_silently_valid(tmp_path: Path) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("# nothing here\n")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert "no NodeMigration documents found" in out


def test_binary_input_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    status, out = run("validate", "-f", str(f))
    assert status == 1
    assert "is not UTF-8 text" in out


def test_usage_errors_exit_64_so_they_never_read_as_plan_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 64
    assert "-f/--filename" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_the_crd_command_prints_the_shipped_crds() -> None:
    status, out = run("crd")
    assert status == 0
    crds = REPO / "crds"
    assert (
        out
        == (crds / "nodemigration.yaml").read_text() + "---\n" + (crds / "nodemigrationnode.yaml").read_text()
    )


# ---- every problem in one run, schema and semantic alike ----------------------------------------------

_HEAD = "apiVersion: shimshift.io/v1alpha1\nkind: NodeMigration\nmetadata: {name: x}\n"


def _problem_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  ")]


def test_a_schema_problem_and_a_semantic_problem_are_both_reported_in_one_run(tmp_path: Path) -> None:
    f = tmp_path / "both.yaml"
    f.write_text(_HEAD + 'spec: {mode: Migrat, nodeNames: [a], rollout: {maxUnavailable: "150%"}}\n')

    status, out = run("validate", "-f", str(f))

    assert status == 1
    assert f"{f} (x): invalid" in out
    assert _problem_lines(out) == [
        'spec.mode: Unsupported value: "Migrat": supported values: "Plan", "Migrate"',
        "spec.rollout.maxUnavailable: must be a percentage from 1% to 100%, not 150%",
    ]


@pytest.mark.parametrize(
    ("typed", "path"),
    [
        ('drain: {gracePeriodSeconds: "30"}', "spec.drain.gracePeriodSeconds"),
        ("nodeSelector: app=web", "spec.nodeSelector"),
        ("nodeSelector: {matchExpressions: [{key: a, operator: In, values: b}]}", "spec.nodeSelector"),
        ("containerd: {registries: [{mirrors: https://m.example.com}]}", "spec.containerd.registries[0]"),
        ("containerd: {registries: {host: docker.io}}", "spec.containerd.registries"),
        ("containerd: {extraConfig: [1], allowUnsafe: cni}", "spec.containerd"),
        ("kubelet: {runtimeEndpoint: 5}", "spec.kubelet.runtimeEndpoint"),
        ("kubelet: [runtimeEndpoint]", "spec.kubelet"),
        ("ssh: root@node", "spec.ssh"),
        (
            "ssh: {privateKeySecretRef: {name: [k]}, knownHostsSecretRef: {name: h}}",
            "spec.ssh.privateKeySecretRef",
        ),
        ("drain: {podSelector: {app: web}}", "spec.drain.podSelector"),
        ("extra: [{caSecretRef: {name: {a: b}}}]", "spec.extra"),
    ],
)
def test_a_wrongly_typed_field_and_a_semantic_problem_elsewhere_are_both_reported(
    tmp_path: Path, typed: str, path: str
) -> None:
    f = tmp_path / "typed.yaml"
    f.write_text(_HEAD + f'spec:\n  nodeNames: [a, a]\n  rollout: {{maxUnavailable: "150%"}}\n  {typed}\n')

    status, out = run("validate", "-f", str(f))

    assert status == 1, out
    lines = _problem_lines(out)
    assert any(line.startswith(path) for line in lines), out
    assert "spec.rollout.maxUnavailable: must be a percentage from 1% to 100%, not 150%" in lines
    assert 'spec.nodeNames: "a" is listed 2 times; list each node once' in lines


def test_a_problem_both_layers_see_is_reported_once(tmp_path: Path) -> None:
    f = tmp_path / "twice.yaml"
    f.write_text(
        _HEAD + "spec:\n  mode: Migrate\n  nodeNames: [a]\n  drain: {timeout: -5m}\n"
        "  ssh: {privateKeySecretRef: {name: /etc/ssh/key}, knownHostsSecretRef: {name: h}}\n"
    )

    status, out = run("validate", "-f", str(f))

    assert status == 1
    paths = [line.split(": ")[0] for line in _problem_lines(out)]
    assert paths == ["spec.drain.timeout", "spec.ssh.privateKeySecretRef.name"], out
