"""Every Secret reference in a NodeMigration names a Secret, never a path.

A reference's name is a Kubernetes object name (DNS subdomain) and its key a Secret data key, in the
CRD schema (so the API server refuses a bad one on create) and in the model's own checks (so
`shimshift validate` and the operator refuse it even against a CRD that lost the pattern).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from shimshift.entry.cli import main
from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.migration import version_schema
from shimshift.model.semantics import check_spec
from tests.unit.conftest import minimal_manifest

TRAVERSAL = "../../kube-system/secrets/victim"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
SSH = {"hostKeyPolicy": "AcceptNew", "privateKeySecretRef": {"name": "ssh"}}


def spec_with(where: str, ref: dict[str, str]) -> dict[str, Any]:
    """A valid spec with `ref` placed at `where` (one of the Secret references)."""
    spec: dict[str, Any] = {"mode": "Migrate", "ssh": copy.deepcopy(SSH)}
    if where.startswith("ssh."):
        spec["ssh"][where.removeprefix("ssh.")] = ref
    else:
        spec["containerd"] = {"registries": [{"host": "registry.example.com", where: ref}]}
    return spec


REFS = {
    "ssh.privateKeySecretRef": "spec.ssh.privateKeySecretRef",
    "ssh.knownHostsSecretRef": "spec.ssh.knownHostsSecretRef",
    "caSecretRef": "spec.containerd.registries[0].caSecretRef",
    "clientCertSecretRef": "spec.containerd.registries[0].clientCertSecretRef",
}


def problems_of(body: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(body, crd)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("where", sorted(REFS))
def test_a_secret_name_that_is_a_path_is_refused_naming_the_field(where: str, crd: dict[str, Any]) -> None:
    problems = problems_of(minimal_manifest(**spec_with(where, {"name": TRAVERSAL})), crd)
    assert any(p.startswith(f"{REFS[where]}.name: invalid value {TRAVERSAL!r}: ") for p in problems), problems
    assert any("Secret name" in p for p in problems), problems


@pytest.mark.parametrize("name", ["..", ".", "Upper", "a/b", "a_b", "-a", "a" * 254, ""])
def test_a_private_key_secret_name_that_is_no_object_name_is_refused(name: str, crd: dict[str, Any]) -> None:
    problems = problems_of(minimal_manifest(**spec_with("ssh.privateKeySecretRef", {"name": name})), crd)
    assert any(p.startswith("spec.ssh.privateKeySecretRef.name: ") for p in problems), problems


@pytest.mark.parametrize("where", ["ssh.privateKeySecretRef", "ssh.knownHostsSecretRef", "caSecretRef"])
@pytest.mark.parametrize("key", ["../ssh-privatekey", "a/b", "a b", ""])
def test_a_secret_key_that_is_no_data_key_is_refused_naming_the_field(
    where: str, key: str, crd: dict[str, Any]
) -> None:
    problems = problems_of(minimal_manifest(**spec_with(where, {"name": "s", "key": key})), crd)
    assert any(p.startswith(f"{REFS[where]}.key: ") for p in problems), problems


@pytest.mark.parametrize("where", sorted(REFS))
def test_ordinary_secret_names_and_keys_are_accepted(where: str, crd: dict[str, Any]) -> None:
    ref = (
        {"name": "ops.ssh-key-2"}
        if where == "clientCertSecretRef"
        else {"name": "ops.ssh-key-2", "key": "id_ed25519.pub-2_x"}
    )
    parse_nodemigration(minimal_manifest(**spec_with(where, ref)), crd)


def secret_refs(node: Mapping[str, Any], path: str = "spec") -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, sub in (node.get("properties") or {}).items():
        if name.endswith("SecretRef"):
            yield f"{path}.{name}", sub
        yield from secret_refs(sub, f"{path}.{name}")
    if "items" in node:
        yield from secret_refs(node["items"], f"{path}[]")


def test_every_secret_reference_in_the_crd_has_the_name_and_key_patterns(crd: dict[str, Any]) -> None:
    refs = dict(secret_refs(version_schema(crd)["properties"]["spec"]))
    assert {p.removesuffix("SecretRef").rsplit(".", 1)[1] for p in refs} >= {
        "privateKey",
        "knownHosts",
        "ca",
        "clientCert",
    }
    for path, ref in refs.items():
        props = ref["properties"]
        assert props["name"].get("pattern") == NAME_PATTERN, path
        assert props["name"].get("maxLength") == 253, path
        if "key" in props:
            assert props["key"].get("pattern") == KEY_PATTERN, path


def test_the_model_refuses_a_path_as_secret_name_even_when_the_crd_lost_the_pattern() -> None:
    spec = spec_with("ssh.privateKeySecretRef", {"name": TRAVERSAL, "key": "../k"})
    spec["containerd"] = {"registries": [{"host": "r.example.com", "clientCertSecretRef": {"name": "a/b"}}]}
    problems = [str(p) for p in check_spec(spec)]
    assert any(p.startswith("spec.ssh.privateKeySecretRef.name: ") for p in problems), problems
    assert any(p.startswith("spec.ssh.privateKeySecretRef.key: ") for p in problems), problems
    assert any(p.startswith("spec.containerd.registries[0].clientCertSecretRef.name: ") for p in problems), (
        problems
    )


def test_shimshift_validate_refuses_a_traversal_secret_name_with_the_field_path(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text(
        yaml.safe_dump(minimal_manifest(**spec_with("ssh.privateKeySecretRef", {"name": TRAVERSAL})))
    )
    out = io.StringIO()
    status = main(["validate", "-f", str(f)], out=out)
    assert status == 1
    assert f"spec.ssh.privateKeySecretRef.name: invalid value {TRAVERSAL!r}" in out.getvalue()
    assert "Traceback" not in out.getvalue()
