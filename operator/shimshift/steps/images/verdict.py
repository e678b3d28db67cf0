"""What the node-side run of an image plan produced, and the verdict and report on it.

Pure: `shimshift.steps.images.run` runs an `ImagesPlan` (`shimshift.steps.images.plan`) on the node and
reads containerd back as `ContainerdImage`s; which names are missing, which would be replaced, which
to undo, whether every planned image arrived (`verify_images`), and the report and status counts of
the run (`images_report`, `image_counts`) are decided here, so all of it is testable without a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shimshift.model.status import ImageCounts
from shimshift.steps.images.plan import ImageSkipReason, ImagesPlan

# ---- what containerd holds afterwards, and the verdict --------------------------------------------


@dataclass(frozen=True)
class ContainerdImage:
    """One name in containerd's k8s.io namespace and the image (config digest) it resolves to."""

    ref: str
    manifest_digest: str
    image_id: str  # config digest; empty if it could not be resolved


def verify_images(plan: ImagesPlan, listed: Iterable[ContainerdImage]) -> tuple[str, ...]:
    """Every planned image under all its names, each resolving to Docker's image ID; else problems."""
    by_ref = {c.ref: c for c in listed}
    problems = []
    for move in plan.moves:
        for ref in move.refs:
            got = by_ref.get(ref)
            if got is None:
                problems.append(f"{ref} (image {move.image_id}) is missing from containerd k8s.io")
            elif got.image_id != move.image_id:
                problems.append(
                    f"{ref} resolves to image {got.image_id or 'unknown'} in containerd, "
                    f"Docker has {move.image_id}"
                )
    return tuple(problems)


def missing_refs(plan: ImagesPlan, listed: Iterable[ContainerdImage]) -> dict[str, tuple[str, ...]]:
    """image ID -> the planned names it does not have yet (to be tagged onto it)."""
    have = {c.ref for c in listed}
    out = {}
    for move in plan.moves:
        missing = tuple(r for r in move.refs if r not in have)
        if missing:
            out[move.image_id] = missing
    return out


def conflicting_refs(plan: ImagesPlan, listed: Iterable[ContainerdImage]) -> tuple[str, ...]:
    """Planned names that containerd already has for a different image (the migration replaces them)."""
    by_ref = {c.ref: c.image_id for c in listed}
    return tuple(r for m in plan.moves for r in m.refs if r in by_ref and by_ref[r] != m.image_id)


def refs_to_undo(before: Iterable[str], now: Iterable[str]) -> tuple[str, ...]:
    """Names the migration added: present now, absent before. Nothing that existed is touched."""
    old = frozenset(before)
    return tuple(sorted(r for r in frozenset(now) if r not in old))


# ---- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagesOutcome:
    """What the node-side run did (filled in by shimshift.steps.images.run)."""

    transferred: tuple[str, ...] = ()  # image IDs
    pulled: tuple[str, ...] = ()
    fallbacks: Mapping[str, str] = field(default_factory=dict)  # image ID -> why the pull failed
    already_done: tuple[str, ...] = ()  # in containerd before the step's first run: nothing to move
    bytes_streamed: int = 0
    #: moved by an earlier run of the step whose end was never recorded (the operator restarted): by
    #: the batch's strategy, and their size as Docker reports it, shared layers once per batch
    resumed_transferred: tuple[str, ...] = ()
    resumed_pulled: tuple[str, ...] = ()
    resumed_bytes: int = 0
    refs_tagged: tuple[str, ...] = ()
    #: names containerd had for a different image before the run, now pointing at Docker's image;
    #: undo cannot bring the old image back (its content is gone), so the report names them
    refs_replaced: tuple[str, ...] = ()
    #: Docker's sizes of the images the plan moves (not those in containerd before the first run),
    #: and of those moved, by this run or an earlier one (equal once the step is through)
    bytes_to_move: int = 0
    bytes_moved: int = 0


def images_report(plan: ImagesPlan, outcome: ImagesOutcome) -> dict[str, Any]:
    """The node's image section of the run report: what moved, what was pulled, what was skipped and why."""
    moves = {m.image_id: m for m in plan.moves}

    def entry(image_id: str, **extra: Any) -> dict[str, Any]:
        move = moves[image_id]
        return {"id": image_id, "refs": list(move.refs), "priority": str(move.priority), **extra}

    skipped = [
        {"id": s.image_id, "refs": list(s.refs), "reason": str(s.reason), "detail": s.detail}
        for s in plan.skipped
    ]
    skipped += [
        entry(
            i, reason=str(ImageSkipReason.ALREADY_PRESENT), detail="in containerd before the step first ran"
        )
        for i in outcome.already_done
    ]
    return {
        "node": plan.node,
        "transferred": [
            entry(i, **({"pullFailed": outcome.fallbacks[i]} if i in outcome.fallbacks else {}))
            for i in outcome.transferred
        ]
        + [entry(i, byEarlierRun=True) for i in outcome.resumed_transferred],
        "pulled": [entry(i, pulledAs=moves[i].pull_ref) for i in outcome.pulled]
        + [entry(i, pulledAs=moves[i].pull_ref, byEarlierRun=True) for i in outcome.resumed_pulled],
        "skipped": skipped,
        "bytesStreamed": outcome.bytes_streamed,
        "bytesByEarlierRun": outcome.resumed_bytes,
        "replacedNames": list(outcome.refs_replaced),
        "disk": {
            "path": plan.disk.path,
            "freeBytes": plan.disk.free_bytes,
            "requiredBytes": plan.disk.required_bytes,
            "exact": plan.disk.exact,
        },
    }


def image_counts(plan: ImagesPlan, outcome: ImagesOutcome) -> ImageCounts:
    """The counts kept in the node's status record."""
    return ImageCounts(
        transferred=len(outcome.transferred) + len(outcome.resumed_transferred),
        pulled=len(outcome.pulled) + len(outcome.resumed_pulled),
        skipped=len(plan.skipped) + len(outcome.already_done),
        bytes=outcome.bytes_streamed + outcome.resumed_bytes,
        bytes_to_move=outcome.bytes_to_move,
        bytes_moved=outcome.bytes_moved,
    )
