"""The one error family of shimshift.

Every error the product raises on purpose is a `ShimshiftError`. Messages name the field path or the
node and say what to do. Only the kopf handler layer maps these to kopf's temporary/permanent errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ShimshiftError(Exception):
    """Base of every error shimshift raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located by a field path such as `spec.rollout.maxUnavailable`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ShimshiftError):
    """An input (a NodeMigration, a manifest file, a playbook) is invalid; carries every problem found."""

    def __init__(self, problems: Iterable[Problem], *, source: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


class NodeError(ShimshiftError):
    """Something on a node is not as expected; the message names the node."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"node {node}: {message}")


class RenderError(ShimshiftError):
    """A rendered configuration failed its semantic checks; nothing was written."""


class RemoteError(ShimshiftError):
    """A command or transfer over SSH failed."""


class KubeError(ShimshiftError):
    """A Kubernetes API call failed in a way the caller must handle."""
