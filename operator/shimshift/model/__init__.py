"""Typed values shared by every layer: the NodeMigration spec and status, node facts, keys and errors.

Pure: imports nothing that does I/O beyond reading the shipped CRD file through `shimshift.resources`.
"""

from shimshift.model.errors import (
    KubeError,
    NodeError,
    Problem,
    RemoteError,
    RenderError,
    ShimshiftError,
    ValidationError,
)
from shimshift.model.keys import STEP_ORDER, StepId
from shimshift.model.migration import NodeMigration, check_nodemigration, parse_nodemigration
from shimshift.model.spec import NodeMigrationSpec
from shimshift.model.status import MigrationStatus, NodePhase, NodeRecord, Phase

__all__ = [
    "STEP_ORDER",
    "KubeError",
    "MigrationStatus",
    "NodeError",
    "NodeMigration",
    "NodeMigrationSpec",
    "NodePhase",
    "NodeRecord",
    "Phase",
    "Problem",
    "RemoteError",
    "RenderError",
    "ShimshiftError",
    "StepId",
    "ValidationError",
    "check_nodemigration",
    "parse_nodemigration",
]
