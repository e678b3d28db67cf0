"""The image migration plan of one node: what moves from Docker into containerd's `k8s.io`, how, in
which order and in which batches, and whether the containerd root has room for it.

Pure: a function of the node's facts, the spec's `images` section and what the node-side probe
learned (which registries answer, which layers each image has). The node-side half, which runs the
plan and reads containerd back, is `shimshift.steps.images.run`; the verdict on what it read back
(`verify_images`) and the report (`images_report`) are in `shimshift.steps.images.verdict`, so both are
testable without a node.

Why these rules:
- after the switch kubelet sees only containerd's `k8s.io` namespace, so every image a pod may need
  must be there, under every tag and digest reference Docker knew it by;
- `docker save` loses RepoDigests: a transferred image gets its digest references recorded as extra
  names, and where the registry answers the image is pulled by digest instead, which keeps the
  original manifest digest;
- Docker's image ID equals containerd's config digest, so identity is checked by image ID, never by
  manifest digest (ctr import synthesises a new manifest);
- containerd keeps each image twice (blob + unpacked snapshot): the disk check blocks before any
  byte moves rather than filling the disk half way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import Images, ImageStrategy

#: containerd's default root, where the content store and snapshots live.
CONTAINERD_ROOT: Final = "/var/lib/containerd"
MIB: Final = 1 << 20


class Strategy(StrEnum):
    PULL = "Pull"  # by digest through the node's new registry configuration
    TRANSFER = "Transfer"  # docker save | ctr -n k8s.io images import


class Priority(StrEnum):
    """Why an image goes where it goes in the order; the enum order is the migration order."""

    SANDBOX = "Sandbox"
    IN_USE = "InUse"
    OTHER = "Other"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK: Final[Mapping[Priority, int]] = {p: i for i, p in enumerate(Priority)}


class ImageSkipReason(StrEnum):
    ALREADY_PRESENT = "AlreadyInContainerd"
    EXCLUDED = "Excluded"
    NOT_INCLUDED = "NotIncluded"
    DANGLING = "Dangling"
    MIGRATION_OFF = "MigrationOff"


# ---- references ---------------------------------------------------------------------------------

# A fleet names the same few thousand references on every node (a plan of 5,000 nodes normalizes
# ~800,000 of them), so the pure functions of a reference remember their answers; bounded, because
# the operator is long-running.
_REFERENCE_CACHE: Final = 1 << 16


@lru_cache(maxsize=_REFERENCE_CACHE)
def normalize_reference(ref: str) -> str:
    """`nginx:1.25` -> `docker.io/library/nginx:1.25`, as containerd and the CRI name images.

    Follows distribution/reference: the first path component is a registry host only if it has a
    `.` or `:`, is `localhost`, or has upper case; a reference without tag or digest means `latest`.
    """
    name, _, digest = ref.partition("@")
    tag = ""
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    out = f"{domain}/{path}"
    if tag:
        out += f":{tag}"
    elif not digest:
        out += ":latest"
    return f"{out}@{digest}" if digest else out


@lru_cache(maxsize=_REFERENCE_CACHE)
def registry_host(ref: str) -> str:
    """The registry a reference points at (`docker.io` for Docker Hub short names)."""
    return normalize_reference(ref).split("/", 1)[0]


@lru_cache(maxsize=_REFERENCE_CACHE)
def _repository(ref: str) -> str:
    name = normalize_reference(ref).partition("@")[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


@lru_cache(maxsize=_REFERENCE_CACHE)
def _normalized(refs: tuple[str, ...]) -> tuple[str, ...]:
    """`refs` normalized, duplicates (after normalizing) dropped, first occurrence kept."""
    return tuple(dict.fromkeys(normalize_reference(r) for r in refs))


# ---- inputs from the node-side probe --------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer of a Docker image: its diff ID and, when Docker's layer store told us, its size."""

    diff_id: str
    size: int | None = None


@dataclass(frozen=True)
class DiskPolicy:
    """How much room the images need: `copies` x their unpacked size (containerd keeps the content
    blob and the unpacked snapshot) plus a fixed safety margin."""

    copies: float = 2.0
    margin_bytes: int = 512 * MIB
    path: str = CONTAINERD_ROOT


# ---- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMove:
    """One Docker image to bring into containerd, and every name it must end up with."""

    image_id: str
    docker_tags: tuple[str, ...]  # as Docker lists them; what `docker save` is given
    tags: tuple[str, ...]  # normalized tag references to exist in k8s.io afterwards
    digests: tuple[str, ...]  # normalized digest references (`repo@sha256:…`) to exist afterwards
    strategy: Strategy
    priority: Priority
    size: int
    pull_ref: str = ""  # for Strategy.PULL: the normalized digest (or tag) reference pulled
    may_fall_back: bool = False  # Auto chose the pull: a failed pull falls back to a transfer

    @property
    def refs(self) -> tuple[str, ...]:
        return self.tags + self.digests

    @property
    def label(self) -> str:
        return (self.refs or (self.image_id,))[0]


@dataclass(frozen=True)
class Batch:
    """One unit of work: a single pull, or one `docker save … | ctr import` stream of images that
    share layers (so each shared layer crosses once)."""

    index: int
    strategy: Strategy
    images: tuple[ImageMove, ...]
    bytes: int  # expected bytes on the wire (unique layers of the batch)

    @property
    def save_refs(self) -> tuple[str, ...]:
        """What `docker save` is given: every tag (tags survive into the archive), or the image ID
        for a digest-only image (its names are recorded after the import)."""
        out: list[str] = []
        for image in self.images:
            out.extend(image.docker_tags or (image.image_id,))
        return tuple(out)


@dataclass(frozen=True)
class Skip:
    image_id: str
    refs: tuple[str, ...]
    reason: ImageSkipReason
    detail: str


@dataclass(frozen=True)
class DiskCheck:
    path: str
    free_bytes: int | None
    expected_bytes: int  # unpacked size of what moves
    exact: bool  # True: from deduplicated layer sizes; False: sum of image sizes (an upper bound)
    copies: float
    margin_bytes: int

    @property
    def required_bytes(self) -> int:
        return int(self.expected_bytes * self.copies) + self.margin_bytes

    @property
    def ok(self) -> bool:
        return self.expected_bytes == 0 or (
            self.free_bytes is not None and self.free_bytes >= self.required_bytes
        )

    def with_free(self, free_bytes: int) -> DiskCheck:
        """The same check against a fresh measurement of the free space."""
        return DiskCheck(
            self.path, free_bytes, self.expected_bytes, self.exact, self.copies, self.margin_bytes
        )

    def problem(self, node: str) -> str:
        """Why the step is blocked, with the numbers; empty when it is not."""
        if self.ok:
            return ""
        how = "deduplicated layers" if self.exact else "sum of image sizes, an upper bound"
        need = (
            f"the images to migrate need {_size(self.required_bytes)} ({self.required_bytes} bytes) in "
            f"containerd's root {self.path}: {_size(self.expected_bytes)} unpacked ({how}) x "
            f"{self.copies:g} (content blob + snapshot) + {_size(self.margin_bytes)} safety margin"
        )
        if self.free_bytes is None:
            return (
                f"node {node}: {need}, but the free space there is unknown (the probe could not read it); "
                f"check `df {self.path}` on the node and retry"
            )
        return (
            f"node {node}: {need}, but only {_size(self.free_bytes)} ({self.free_bytes} bytes) is free; "
            f"free {_size(self.required_bytes - self.free_bytes)} more there, or leave images out with "
            f"spec.images.exclude, then retry"
        )


@dataclass(frozen=True)
class ImagesPlan:
    node: str
    batches: tuple[Batch, ...]
    skipped: tuple[Skip, ...]
    disk: DiskCheck

    @property
    def moves(self) -> tuple[ImageMove, ...]:
        return tuple(m for b in self.batches for m in b.images)

    @property
    def blocked(self) -> str:
        """Empty, or why the images step must not start (before any byte moves)."""
        return self.disk.problem(self.node)

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self.batches)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _matches(refs: Iterable[str], patterns: Sequence[str]) -> str:
    """The first pattern matching one of `refs` (as Docker lists them or normalized); empty if none."""
    if not patterns:
        return ""
    names = [n for r in refs for n in (r, normalize_reference(r))]
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return pattern
    return ""


@dataclass(frozen=True)
class _Picked:
    image: DockerImage
    priority: Priority
    order: int
    layers: tuple[Layer, ...]
    strategy: Strategy
    pull_ref: str
    fall_back: bool

    @property
    def sized(self) -> bool:
        return bool(self.layers) and all(layer.size is not None for layer in self.layers)


def _used_by_pods(facts: NodeFacts) -> frozenset[str]:
    """IDs of the images dockershim's containers (`k8s_…`) were created from: by reference (tag or
    digest) or by image ID, full or short (dockershim passes kubelet's image ref, an ID)."""
    used: set[str] = set()
    if not facts.containers:
        return frozenset(used)
    by_ref = {normalize_reference(r): i.id for i in facts.images for r in (*i.repo_tags, *i.repo_digests)}
    for container in facts.containers:
        ref = container.image.strip()
        if not ref:
            continue
        bare = ref.removeprefix("sha256:")
        by_id = [
            i.id for i in facts.images if len(bare) >= 12 and i.id.removeprefix("sha256:").startswith(bare)
        ]
        if by_id:
            used.update(by_id)
        elif normalize_reference(ref) in by_ref:
            used.add(by_ref[normalize_reference(ref)])
    return frozenset(used)


def _choose_strategy(
    image: DockerImage, wanted: ImageStrategy, reachable: frozenset[str]
) -> tuple[Strategy, str]:
    if wanted is ImageStrategy.TRANSFER or (wanted is not ImageStrategy.PULL and not reachable):
        return Strategy.TRANSFER, ""  # Auto with no registry answering: nothing to pull from
    digests = [normalize_reference(d) for d in image.repo_digests]
    if wanted is ImageStrategy.PULL:
        # forced: pull by digest if there is one, else by tag; the image ID is checked afterwards
        tags = [normalize_reference(t) for t in image.repo_tags]
        ref = (digests or tags or [""])[0]
        return (Strategy.PULL, ref) if ref else (Strategy.TRANSFER, "")
    tag_repos = {_repository(t) for t in image.repo_tags}
    candidates = [d for d in digests if registry_host(d) in reachable]
    candidates.sort(key=lambda d: _repository(d) not in tag_repos)
    return (Strategy.PULL, candidates[0]) if candidates else (Strategy.TRANSFER, "")


def plan_images(
    facts: NodeFacts,
    spec: Images,
    *,
    sandbox_image: str | None = None,
    reachable_registries: Iterable[str] = (),
    layers: Mapping[str, Sequence[Layer]] | None = None,
    policy: DiskPolicy = DiskPolicy(),
    max_batch_images: int = 32,
) -> ImagesPlan:
    """The image plan of `facts.node`.

    `sandbox_image` is the pause image the new containerd config names; it and the kubelet's
    current `--pod-infra-container-image` go first and are migrated even when `include` does not
    name them, unless `exclude` does. `reachable_registries`
    are the registry hosts the node-side probe found answering through the new configuration.
    `layers` maps image ID to its layers, for batching and an exact disk estimate; without it every
    image is its own batch and the estimate is the sum of image sizes.
    """
    reachable = frozenset(reachable_registries)
    layers = layers or {}
    present = frozenset(facts.containerd_images)
    infra = facts.kubelet.pod_infra_image
    sandboxes = {normalize_reference(r) for r in (sandbox_image, infra.value if infra else None) if r}
    used = _used_by_pods(facts)
    skipped: list[Skip] = []
    picked: list[_Picked] = []
    for order, image in enumerate(facts.images):
        refs = (*image.repo_tags, *image.repo_digests)
        is_sandbox = not sandboxes.isdisjoint(map(normalize_reference, refs))
        excluded_by = _matches(refs, spec.exclude)
        if not spec.migrate:
            skipped.append(
                Skip(image.id, refs, ImageSkipReason.MIGRATION_OFF, "spec.images.migrate is false")
            )
        elif not refs:
            skipped.append(
                Skip(image.id, refs, ImageSkipReason.DANGLING, "no tag and no digest: no pod can name it")
            )
        elif excluded_by:
            skipped.append(
                Skip(image.id, refs, ImageSkipReason.EXCLUDED, f"matches spec.images.exclude {excluded_by!r}")
            )
        elif spec.include and not is_sandbox and not _matches(refs, spec.include):
            skipped.append(
                Skip(
                    image.id, refs, ImageSkipReason.NOT_INCLUDED, "matches no pattern of spec.images.include"
                )
            )
        elif image.id in present:
            skipped.append(
                Skip(
                    image.id,
                    refs,
                    ImageSkipReason.ALREADY_PRESENT,
                    "same image ID already in containerd k8s.io",
                )
            )
        else:
            priority = (
                Priority.SANDBOX
                if is_sandbox
                else Priority.IN_USE
                if image.in_use or image.id in used
                else Priority.OTHER
            )
            strategy, pull_ref = _choose_strategy(image, spec.strategy, reachable)
            picked.append(
                _Picked(
                    image,
                    priority,
                    order,
                    tuple(layers.get(image.id, ())),
                    strategy,
                    pull_ref,
                    fall_back=spec.strategy is ImageStrategy.AUTO,
                )
            )
    picked.sort(key=lambda p: (p.priority.rank, p.order))
    batches = _batches(picked, max_batch_images)
    exact = bool(picked) and all(p.sized for p in picked)
    disk = DiskCheck(
        policy.path,
        facts.containerd_root_free_bytes,
        _unique_bytes(picked),
        exact,
        policy.copies,
        policy.margin_bytes,
    )
    return ImagesPlan(facts.node, batches, tuple(skipped), disk)


def _move(p: _Picked) -> ImageMove:
    image = p.image
    return ImageMove(
        image_id=image.id,
        docker_tags=image.repo_tags,
        tags=_normalized(image.repo_tags),
        digests=_normalized(image.repo_digests),
        strategy=p.strategy,
        priority=p.priority,
        size=image.size,
        pull_ref=p.pull_ref,
        may_fall_back=p.strategy is Strategy.PULL and p.fall_back,
    )


def _unique_bytes(group: Sequence[_Picked]) -> int:
    """Bytes of the group's layers counted once; the sum of image sizes where layers are unknown."""
    if not all(p.sized for p in group):
        return sum(p.image.size for p in group)
    sizes = {layer.diff_id: layer.size or 0 for p in group for layer in p.layers}
    return sum(sizes.values())


def _batches(picked: Sequence[_Picked], max_images: int) -> tuple[Batch, ...]:
    """Pulls alone; transfers grouped by shared layers (connected components), the sandbox image
    alone and first; groups ordered by their most urgent member, then split at `max_images`."""
    transfers = [p for p in picked if p.strategy is Strategy.TRANSFER and p.priority is not Priority.SANDBOX]
    if max_images >= 1 and not any(p.layers for p in transfers):
        # no layer is known (always so in a plan), so none is shared: every image is its own batch
        return tuple(
            Batch(n, p.strategy, (_move(p),), _unique_bytes((p,)) if p.sized else p.image.size)
            for n, p in enumerate(picked)
        )
    parent = list(range(len(transfers)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, p in enumerate(transfers):
        for layer in p.layers:
            parent[root(i)] = root(owner.setdefault(layer.diff_id, i))
    groups: dict[int, list[_Picked]] = {}
    for i, p in enumerate(transfers):
        groups.setdefault(root(i), []).append(p)
    group_of = {p.order: root(i) for i, p in enumerate(transfers)}
    units: list[list[_Picked]] = []
    seen: set[int] = set()
    for p in picked:  # already in migration order
        if p.order not in group_of:
            units.append([p])
            continue
        key = group_of[p.order]
        if key in seen:
            continue
        seen.add(key)
        group = groups[key]
        units.extend(group[start : start + max_images] for start in range(0, len(group), max_images))
    return tuple(
        Batch(n, unit[0].strategy, tuple(_move(p) for p in unit), _unique_bytes(unit))
        for n, unit in enumerate(units)
    )
