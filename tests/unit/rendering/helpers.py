from __future__ import annotations

from typing import Any

from shimshift.model import parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.resources import load_crd


def spec_with(**containerd: Any) -> NodeMigrationSpec:
    """A schema-valid, defaulted spec with `containerd` fields set (camelCase, as in the CRD)."""
    manifest = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "t"},
        "spec": {"nodeNames": ["n1"], "containerd": containerd},
    }
    return parse_nodemigration(manifest, load_crd()).spec
