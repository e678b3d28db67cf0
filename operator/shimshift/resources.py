"""Files that ship with the package: the CRD, the templates and the playbooks.

In a source checkout `shimshift/data/{crds,templates,playbooks}` are symlinks to the top-level
directories, so the CLI, the operator and the Helm chart read the very same CRD file; a built wheel
carries copies.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def data_path(*parts: str) -> Path:
    """Path of a shipped data file, e.g. `data_path("crds", "nodemigration.yaml")`."""
    return Path(str(resources.files("shimshift").joinpath("data", *parts)))


@cache
def load_crd() -> dict[str, Any]:
    """The NodeMigration CRD as shipped in `crds/nodemigration.yaml`."""
    with data_path("crds", "nodemigration.yaml").open(encoding="utf-8") as f:
        crd: dict[str, Any] = yaml.safe_load(f)
    return crd


#: The CRD files the operator needs installed, in `crds/`: the NodeMigration it serves and the
#: NodeMigrationNode objects it keeps each node's record in.
CRD_FILES = ("nodemigration.yaml", "nodemigrationnode.yaml")


@cache
def load_node_crd() -> dict[str, Any]:
    """The NodeMigrationNode CRD as shipped in `crds/nodemigrationnode.yaml`."""
    with data_path("crds", "nodemigrationnode.yaml").open(encoding="utf-8") as f:
        crd: dict[str, Any] = yaml.safe_load(f)
    return crd


def crds_text() -> str:
    """Every shipped CRD as one multi-document YAML stream (what `shimshift crd` prints)."""
    return "---\n".join(data_path("crds", name).read_text(encoding="utf-8") for name in CRD_FILES)
