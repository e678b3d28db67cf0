from __future__ import annotations

import copy
from typing import Any

import pytest

from shimshift.resources import load_crd


@pytest.fixture
def crd() -> dict[str, Any]:
    return load_crd()


def minimal_manifest(**spec: Any) -> dict[str, Any]:
    """The smallest valid NodeMigration, with `spec` fields merged on top."""
    body: dict[str, Any] = {
        "apiVersion": "shimshift.io/v1alpha1",
        "kind": "NodeMigration",
        "metadata": {"name": "m"},
        "spec": {"nodeNames": ["node-1"]},
    }
    body["spec"].update(copy.deepcopy(spec))
    return body
