"""The image section of a plan report: a summary of the images step's own plan for one node.

The numbers come from `shimshift.steps.images.plan.plan_images`, the very function the images
step runs, so the report's disk verdict is the one the step will reach: same selection, same order,
same estimate (`DiskPolicy`: unpacked size x copies + margin). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.steps.images.plan import ImageSkipReason, ImagesPlan, Strategy, plan_images


@dataclass(frozen=True)
class ImageSummary:
    migrate: bool
    count: int  # images to migrate
    bytes: int  # their unpacked size (the images step's estimate)
    needed_bytes: int  # what the images step requires free on the containerd root
    free_bytes: int | None  # free on the containerd root now; None when unknown
    in_use: int  # of `count`, images used by a pod's container
    pulls: int  # pulled by digest through the new registry config
    transfers: int  # docker save | ctr import
    already_present: int  # already in containerd's k8s.io namespace
    excluded: int  # by spec.images.include / exclude, or untagged
    blocked: str = ""  # the images step's own refusal message, empty when it fits
    largest: tuple[tuple[str, int], ...] = ()  # (reference, bytes) of the biggest few

    @property
    def fits(self) -> bool:
        return not self.blocked


def summarise_images(spec: NodeMigrationSpec, facts: NodeFacts) -> ImageSummary:
    # The node-side probe of registry reachability runs only in Migrate mode; a plan assumes none
    # answers (every image is a transfer), which is also the case that needs the most disk.
    plan: ImagesPlan = plan_images(facts, spec.images, sandbox_image=spec.containerd.sandbox_image)
    moves = plan.moves
    largest = sorted(moves, key=lambda m: (-m.size, m.image_id))[:5]
    in_use_ids = {i.id for i in facts.images if i.in_use}
    return ImageSummary(
        migrate=spec.images.migrate,
        count=len(moves),
        bytes=plan.disk.expected_bytes,
        needed_bytes=plan.disk.required_bytes,
        free_bytes=plan.disk.free_bytes,
        in_use=sum(1 for m in moves if m.image_id in in_use_ids),
        pulls=sum(1 for m in moves if m.strategy == Strategy.PULL),
        transfers=sum(1 for m in moves if m.strategy == Strategy.TRANSFER),
        already_present=sum(1 for s in plan.skipped if s.reason == ImageSkipReason.ALREADY_PRESENT),
        excluded=sum(1 for s in plan.skipped if s.reason != ImageSkipReason.ALREADY_PRESENT),
        blocked=plan.blocked,
        largest=tuple(((m.docker_tags or m.digests or (m.image_id,))[0], m.size) for m in largest),
    )


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
