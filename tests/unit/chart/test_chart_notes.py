"""NOTES.txt tells the user what to apply next, with the names this release actually uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.unit.chart import helm


def notes(*args: str) -> str:
    """The NOTES a `helm install` would print (client-side dry run: no cluster needed)."""
    result = helm.run_helm(
        "install", helm.RELEASE, str(helm.CHART), "--namespace", helm.NAMESPACE, "--dry-run=client", *args
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def sample_nodemigration(text: str) -> dict[str, Any]:
    block = re.search(r"cat <<'YAML' \| kubectl apply -f -\n(.*?)\n\s*YAML\n", text, re.S)
    assert block, text
    sample = yaml.safe_load(block.group(1))
    assert isinstance(sample, dict), block.group(1)
    return sample


def test_notes_give_a_plan_mode_nodemigration_naming_the_releases_ssh_secrets() -> None:
    text = notes("-f", str(helm.VALUE_SETS_DIR / "existing-secrets-servicemonitor.yaml"))
    nm = sample_nodemigration(text)
    assert nm["kind"] == "NodeMigration"
    assert nm["spec"]["mode"] == "Plan"
    assert nm["spec"]["ssh"]["privateKeySecretRef"] == {"name": "ops-ssh-key", "key": "ssh-privatekey"}
    assert nm["spec"]["ssh"]["knownHostsSecretRef"] == {"name": "ops-known-hosts", "key": "known_hosts"}
    assert "No SSH" not in text
    assert f"kubectl -n {helm.NAMESPACE} rollout status deployment/{helm.RELEASE}" in text
    assert '{"spec":{"mode":"Migrate"}}' in text
    assert "port 9191" in text


def test_notes_sample_is_a_valid_nodemigration(tmp_path: Path) -> None:
    from shimshift.entry.cli import main

    manifest = tmp_path / "nm.yaml"
    manifest.write_text(yaml.safe_dump(sample_nodemigration(notes())))
    assert main(["validate", "-q", "-f", str(manifest)]) == 0


def test_notes_warn_about_missing_ssh_secrets_and_crds_managed_elsewhere() -> None:
    text = notes("--set", "crds.enabled=false", "--set", "ssh.knownHosts.existingSecret=kh")
    assert "No SSH private key Secret is configured" in text
    assert "shimshift crd | kubectl apply -f -" in text
    assert sample_nodemigration(text)["spec"]["ssh"]["knownHostsSecretRef"]["name"] == "kh"
    quiet = notes("--set", "ssh.privateKey.existingSecret=k", "--set", "ssh.knownHosts.existingSecret=kh")
    assert "WARNING" not in quiet and "No SSH" not in quiet
