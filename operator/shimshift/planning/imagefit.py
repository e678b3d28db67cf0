"""Image budget for the plan report: which Docker images move into containerd, their bytes, whether they fit.

Docker reports an image's unpacked size. containerd keeps the compressed layers in its content store and
the unpacked ones as snapshots, so the space needed is estimated as 1.5 x Docker's size (DISK_FACTOR);
images whose ID containerd already holds in `k8s.io` cost nothing. Pure.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import Images

DISK_FACTOR = 1.5
#: Free space to keep on the containerd root after the images are in (logs, new pulls, ephemeral data).
HEADROOM_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ImagePlan:
    migrate: bool
    count: int  # images to migrate
    bytes: int  # their size as Docker reports it
    needed_bytes: int  # estimated space on the containerd root
    free_bytes: int | None  # free on the containerd root now; None when unknown
    in_use: int  # of `count`, images used by running containers
    already_present: int  # already in containerd's k8s.io namespace
    excluded: int  # by spec.images.exclude / include, or untagged
    largest: tuple[tuple[str, int], ...] = ()  # (reference, bytes) of the biggest few

    @property
    def fits(self) -> bool | None:
        if self.free_bytes is None:
            return None
        return self.needed_bytes <= self.free_bytes


def _refs(image: DockerImage) -> tuple[str, ...]:
    return image.repo_tags + image.repo_digests


def _selected(image: DockerImage, spec: Images) -> bool:
    refs = [r for r in _refs(image) if not r.startswith("<none>")]
    if not refs:
        return False
    if any(fnmatch.fnmatchcase(r, pat) for r in refs for pat in spec.exclude):
        return False
    return not spec.include or any(fnmatch.fnmatchcase(r, pat) for r in refs for pat in spec.include)


def plan_images(facts: NodeFacts, spec: Images) -> ImagePlan:
    present = set(facts.containerd_images)
    chosen: list[DockerImage] = []
    excluded = already = 0
    for image in facts.images:
        if image.id in present:
            already += 1
        elif _selected(image, spec):
            chosen.append(image)
        else:
            excluded += 1
    if not spec.migrate:
        chosen = []
    size = sum(i.size for i in chosen)
    largest: Sequence[DockerImage] = sorted(chosen, key=lambda i: (-i.size, i.id))[:5]
    return ImagePlan(
        migrate=spec.migrate,
        count=len(chosen),
        bytes=size,
        needed_bytes=int(size * DISK_FACTOR),
        free_bytes=facts.containerd_root_free_bytes,
        in_use=sum(1 for i in chosen if i.in_use),
        already_present=already,
        excluded=excluded,
        largest=tuple(((_refs(i) or (i.id,))[0], i.size) for i in largest),
    )


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns
