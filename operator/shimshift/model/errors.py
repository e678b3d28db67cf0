"""The one error family of shimshift.

Every error the product raises on purpose is a `ShimshiftError`. Messages name the field path or the
node and say what to do. Only the kopf handler layer maps these to kopf's temporary/permanent errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ShimshiftError(Exception):
    """Base of every error shimshift raises on purpose.

    `transient` says whether the same action can succeed later with nobody changing anything (a dropped
    connection, a throttled or conflicting API call): the engine retries those, and only those. Every
    class declares it; the base says no, so an error nobody thought about fails at once, never in a loop.
    """

    transient: bool = False


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located by a field path such as `spec.rollout.maxUnavailable`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ShimshiftError):
    """An input (a NodeMigration, a manifest file, a playbook) is invalid; carries every problem found."""

    transient = False  # the same input is invalid the next time

    def __init__(self, problems: Iterable[Problem], *, source: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))

    def summary(self, limit: int) -> str:
        """The message in at most `limit` characters: whole problems, then how many more there are."""
        full = str(self)
        if len(full) <= limit:
            return full
        text = f"{self.source}: " if self.source else ""
        for shown, problem in enumerate(self.problems):
            rest = len(self.problems) - shown
            noun = "problem" if rest == 1 else "problems"
            tail = f"and {rest} more {noun}: run `shimshift validate` on the manifest for the full list"
            more = ("; " if shown else "") + str(problem)
            if len(text) + len(more) + len("; ") + len(tail) > limit:
                return (text + ("; " if shown else "") + tail)[:limit]
            text += more
        return text[:limit]  # not reached: the full message was longer than the limit


class NodeError(ShimshiftError):
    """Something on a node is not as expected; the message names the node."""

    transient = False  # a person must look: the message says what

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"node {node}: {message}")


class RenderError(ShimshiftError):
    """A rendered configuration failed its semantic checks; nothing was written."""

    transient = False  # the same spec and facts render the same


class RemoteError(ShimshiftError):
    """A command or transfer over SSH failed; a subclass says whether that heals by itself (a broken
    connection does, a key that does not load never does)."""

    transient = False


class KubeError(ShimshiftError):
    """A Kubernetes API call failed in a way the caller must handle; a subclass says whether it heals
    by itself (throttling, conflicts, server errors, no answer); a bad name or missing Secret content
    does not.

    `api_down` says the API server itself did not answer or answered that it is down (no answer, 502,
    503, 504): a node that runs the cluster's only API server waits that out after its switch.
    """

    transient = False
    api_down = False
