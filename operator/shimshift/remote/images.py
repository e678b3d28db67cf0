"""Node-side image migration (issue 7): run an `ImagesPlan` on a node, read containerd back, undo.

Everything here is argv over a `Runner` (the SSH runner of `shimshift.remote` satisfies it; tests
may run the same argv inside a testbed node). No shell string is built from a value: the one
pipeline (`docker save IMG… | ctr -n k8s.io images import -`) is the fixed script
`playbooks/scripts/image-transfer.sh`, run as `bash -c <script> image-transfer.sh IMG…`, so image
references only ever travel as arguments. The decisions (what, how, in which order, disk room, the
verdict) are pure and live in `shimshift.planning.images`.

Idempotent and resumable: the names containerd had before the first run are recorded once under
`/var/lib/shimshift/images/`; a re-run skips every batch whose images are already there (by image
ID), and `undo_images` removes exactly the names that were not there before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Protocol

from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.keys import CONTAINERD_CERTS_DIR, CONTAINERD_K8S_NAMESPACE, NODE_STATE_DIR
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.images import (
    CONTAINERD_ROOT,
    Batch,
    ContainerdImage,
    DiskPolicy,
    ImageMove,
    ImagesOutcome,
    ImagesPlan,
    Layer,
    Strategy,
    conflicting_refs,
    missing_refs,
    plan_images,
    refs_to_undo,
    verify_images,
)
from shimshift.resources import data_path

log = logging.getLogger(__name__)

CTR = ("ctr", "-n", CONTAINERD_K8S_NAMESPACE)
#: Names `ctr images import --digests` gives images that had no tag in the archive.
_IMPORT_NAME = re.compile(r"^import-\d{4}-\d{2}-\d{2}@sha256:[0-9a-f]{64}$")
_ID_REF = re.compile(r"^sha256:[0-9a-f]{64}$")
_BYTES = re.compile(r"shimshift-transfer: bytes=(\d+)")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
#: Prints each content blob named in "$@" after a separator line naming it (one round trip for all).
_CONTENT_SEPARATOR = "\n--- shimshift content "
_CONTENT_GET = 'for d; do printf "\\n--- shimshift content %s\\n" "$d"; ctr -n k8s.io content get "$d"; done'
#: Writes stdin to "$1" only if "$1" does not exist yet (the first run wins), atomically; prints "$1".
_RECORD_ONCE = (
    'set -eu; if [ ! -e "$1" ]; then mkdir -p "${1%/*}"; cat > "$1.tmp"; mv "$1.tmp" "$1"; fi; cat "$1"'
)


class CommandOutput(Protocol):
    @property
    def exit_status(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...


class Runner(Protocol):
    """Runs one argv on the node (quoted argument by argument at the SSH boundary), bounded.
    `shimshift.remote.connection.NodeConnection` is one."""

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandOutput: ...


def _out(result: CommandOutput) -> str:
    return result.stdout.decode("utf-8", errors="replace")


def _err(result: CommandOutput) -> str:
    return result.stderr.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class TransferConfig:
    """Bounds and paths of the images step."""

    min_rate: float = 8 * 2**20  # bytes/s a batch may not fall below before it times out
    base_timeout: float = 120.0  # on top of size / min_rate, for every batch and pull
    command_timeout: float = 60.0  # listing, tagging, removing
    hosts_dir: str = CONTAINERD_CERTS_DIR  # the node's new registry configuration, for pulls
    containerd_root: str = CONTAINERD_ROOT
    state_dir: str = f"{NODE_STATE_DIR}/images"
    import_local: bool = False  # containerd 2.x: `ctr images import --local`

    def timeout_for(self, size: int) -> float:
        return self.base_timeout + size / self.min_rate


@dataclass(frozen=True)
class Progress:
    """Reported after each batch: how far the step is, in bytes and batches."""

    node: str
    batch: int
    batches: int
    bytes_done: int
    bytes_total: int
    what: str


@cache
def transfer_script() -> str:
    """The fixed pipeline script, as shipped in the package data."""
    return data_path("playbooks", "scripts", "image-transfer.sh").read_text(encoding="utf-8")


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().replace("\r", "\n").splitlines()[-lines:])


def _check(node: str, what: str, result: CommandOutput, argv: Sequence[str]) -> CommandOutput:
    if result.exit_status != 0:
        shown = " ".join(argv[:6]) + (" …" if len(argv) > 6 else "")
        raise NodeError(
            node,
            f"{what} failed (exit {result.exit_status}, `{shown}`): {_tail(_err(result)) or '(no output)'}",
        )
    return result


def _run(runner: Runner, node: str, what: str, argv: Sequence[str], timeout: float) -> CommandOutput:
    return _check(node, what, runner.run(argv, timeout=timeout), argv)


# ---- reading the node ---------------------------------------------------------------------------


def read_containerd_free_bytes(runner: Runner, node: str, path: str = CONTAINERD_ROOT) -> int:
    """Free bytes on the filesystem of containerd's root (its nearest existing parent)."""
    argv = ["df", "--output=avail", "-B1", path]
    result = runner.run(argv, timeout=30)
    if result.exit_status != 0:  # the root may not exist yet on a fresh containerd
        argv = ["df", "--output=avail", "-B1", path.rsplit("/", 1)[0] or "/"]
        result = _run(runner, node, "measuring free space", argv, 30)
    lines = _out(result).split()
    if len(lines) < 2 or not lines[-1].isdigit():
        raise NodeError(node, f"cannot read free space of {path} from `df`: {_out(result)!r}")
    return int(lines[-1])


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Docker's layer chain IDs (the layerdb directory names) from an image's diff IDs."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def read_image_layers(runner: Runner, node: str, image_ids: Sequence[str]) -> dict[str, tuple[Layer, ...]]:
    """Each image's layers (diff IDs) and their sizes from Docker's layer store, in two commands.

    Sizes that cannot be read stay None; the planner then estimates from image sizes instead.
    """
    if not image_ids:
        return {}
    fmt = "{{.Id}} {{.GraphDriver.Name}} {{range .RootFS.Layers}}{{.}} {{end}}"
    argv = ["docker", "image", "inspect", "--format", fmt, *image_ids]
    result = _run(runner, node, "reading Docker image layers", argv, 60)
    info = runner.run(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout=30)
    root = _out(info).strip() if info.exit_status == 0 else "/var/lib/docker"
    diffs: dict[str, list[str]] = {}
    size_files: dict[str, str] = {}  # size file path -> diff id
    for line in _out(result).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        image_id, driver, layers = parts[0], parts[1], parts[2:]
        diffs[image_id] = layers
        for diff, chain in zip(layers, chain_ids(layers), strict=True):
            size_files[f"{root}/image/{driver}/layerdb/sha256/{chain.removeprefix('sha256:')}/size"] = diff
    sizes: dict[str, int] = {}
    if size_files:
        got = runner.run(["grep", "-H", "", *size_files], timeout=60)  # exit 2 if one is unreadable
        for line in _out(got).splitlines():
            path, _, value = line.rpartition(":")
            if path in size_files and value.strip().isdigit():
                sizes[size_files[path]] = int(value)
    return {i: tuple(Layer(d, sizes.get(d)) for d in layers) for i, layers in diffs.items()}


def list_containerd_refs(runner: Runner, node: str, timeout: float = 60) -> dict[str, str]:
    """Every image name in containerd's k8s.io namespace -> its target (manifest or index) digest."""
    result = _run(runner, node, "listing containerd images", [*CTR, "images", "ls"], timeout)
    out = {}
    for line in _out(result).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("sha256:"):
            out[parts[0]] = parts[2]
    return out


def read_content_json(runner: Runner, digests: Sequence[str]) -> dict[str, dict[str, object]]:
    """The JSON documents (manifests, indexes) stored under `digests`, read in one command;
    unreadable or non-JSON blobs are left out."""
    if not digests:
        return {}
    result = runner.run(["sh", "-c", _CONTENT_GET, "shimshift-content", *digests], timeout=60)
    out: dict[str, dict[str, object]] = {}
    for chunk in _out(result).split(_CONTENT_SEPARATOR)[1:]:
        digest, _, body = chunk.partition("\n")
        try:
            value = json.loads(body)
        except ValueError:
            continue
        if isinstance(value, dict):
            out[digest.strip()] = value
    return out


def _config_digest(doc: Mapping[str, object]) -> str:
    config = doc.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    return digest if isinstance(digest, str) else ""


def list_containerd_images(runner: Runner, node: str) -> tuple[ContainerdImage, ...]:
    """Every name in k8s.io with the image ID (config digest) it resolves to.

    The CRI plugin names each image it knows `sha256:<image ID>` too; those names resolve the
    targets they share. Any other target is resolved by reading its manifest (or, for an index, the
    manifest of the node's architecture) from the content store: at most three more commands.
    """
    refs = list_containerd_refs(runner, node)
    config_of = {target: ref for ref, target in refs.items() if _ID_REF.match(ref)}
    docs = read_content_json(runner, sorted(set(refs.values()) - set(config_of)))
    chosen: dict[str, str] = {}  # index digest -> the manifest of the node's architecture
    arch = ""
    for target, doc in docs.items():
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            if _config_digest(doc):
                config_of[target] = _config_digest(doc)
            continue
        if not arch:
            machine = _out(runner.run(["uname", "-m"], timeout=30)).strip()
            arch = _ARCH.get(machine, machine)
        entries = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]
        mine = [m for m in entries if (m.get("platform") or {}).get("architecture") == arch]
        if entries:
            chosen[target] = str((mine or entries)[0]["digest"])
    platform_docs = read_content_json(runner, sorted(set(chosen.values())))
    for target, manifest in chosen.items():
        if _config_digest(platform_docs.get(manifest, {})):
            config_of[target] = _config_digest(platform_docs[manifest])
    return tuple(
        ContainerdImage(ref, target, config_of.get(target, "")) for ref, target in sorted(refs.items())
    )


# ---- the step -----------------------------------------------------------------------------------


def _record_path(config: TransferConfig) -> str:
    return f"{config.state_dir}/refs-before.txt"


def read_refs_before(runner: Runner, config: TransferConfig = TransferConfig()) -> frozenset[str] | None:
    """The names containerd had before the step's first run, or None when it has not run yet."""
    got = runner.run(["cat", _record_path(config)], timeout=config.command_timeout)
    return frozenset(_out(got).split()) if got.exit_status == 0 else None


def record_refs_before(
    runner: Runner, node: str, config: TransferConfig = TransferConfig(), names: Iterable[str] | None = None
) -> frozenset[str]:
    """The names containerd had before the first run of the step, recorded on the node once: a
    resumed step keeps the first record. `names` is the current listing if the caller has one."""
    path = _record_path(config)
    recorded = read_refs_before(runner, config)
    if recorded is not None:
        return recorded
    if names is None:
        names = list_containerd_refs(runner, node, config.command_timeout)
    argv = ["sh", "-c", _RECORD_ONCE, "shimshift-record", path]
    text = "".join(f"{n}\n" for n in sorted(names))
    result = runner.run(argv, timeout=30, stdin=text.encode())
    return frozenset(_out(_check(node, f"recording containerd's images in {path}", result, argv)).split())


def _transfer(
    runner: Runner, node: str, moves: Sequence[ImageMove], size: int, config: TransferConfig
) -> int:
    batch = Batch(0, Strategy.TRANSFER, tuple(moves), size)
    flags = ["--local"] if config.import_local else []
    argv = ["bash", "-c", transfer_script(), "image-transfer.sh", *flags, "--", *batch.save_refs]
    result = runner.run(argv, timeout=config.timeout_for(size))
    shown = ["image-transfer.sh", *batch.save_refs]
    _check(node, f"transferring {', '.join(m.label for m in moves)}", result, shown)
    found = _BYTES.findall(_err(result))
    return int(found[-1]) if found else 0


def _pull(runner: Runner, move: ImageMove, config: TransferConfig) -> CommandOutput:
    argv = [*CTR, "images", "pull", "--hosts-dir", config.hosts_dir, move.pull_ref]
    return runner.run(argv, timeout=config.timeout_for(move.size))


def _tag_missing(
    runner: Runner, node: str, plan: ImagesPlan, listed: Iterable[ContainerdImage], config: TransferConfig
) -> list[str]:
    """Give each planned image the names it lacks (tags of pulled images, digest references of
    transferred ones), tagging from a name that already resolves to its image ID."""
    listed = tuple(listed)
    tagged: list[str] = []
    for image_id, refs in missing_refs(plan, listed).items():
        sources = sorted((c.ref for c in listed if c.image_id == image_id), key=lambda r: r != image_id)
        if not sources:
            continue  # not in containerd at all: verification names it
        argv = [*CTR, "images", "tag", sources[0], *refs]
        _run(runner, node, f"naming image {image_id}", argv, config.command_timeout)
        tagged.extend(refs)
    return tagged


@dataclass
class _Run:
    bytes: int = 0
    transferred: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    fallbacks: dict[str, str] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)
    resumed_transferred: list[str] = field(default_factory=list)
    resumed_pulled: list[str] = field(default_factory=list)
    resumed_bytes: int = 0


def migrate_images(
    runner: Runner,
    plan: ImagesPlan,
    *,
    config: TransferConfig = TransferConfig(),
    progress: Callable[[Progress], None] | None = None,
    free_bytes: int | None = None,
) -> ImagesOutcome:
    """Run `plan` on its node: check the disk, move every batch, restore names, verify by image ID.

    The disk check uses `free_bytes` if given, else measures the containerd root now; a shortfall
    raises before any byte moves. Raises NodeError naming the node, the command and its stderr tail.
    """
    node = plan.node
    if plan.batches:
        free = (
            free_bytes
            if free_bytes is not None
            else read_containerd_free_bytes(runner, node, config.containerd_root)
        )
        blocked = plan.disk.with_free(free).problem(node)
        if blocked:
            raise NodeError(node, blocked.removeprefix(f"node {node}: "))
    listed = list_containerd_images(runner, node)
    before = record_refs_before(runner, node, config, (c.ref for c in listed))
    present = {c.image_id for c in listed}
    # an image containerd had before the step's first run is named in that record; one present now
    # without such a name was moved by an earlier run whose end the operator never recorded
    had_before = {c.image_id for c in listed if c.ref in before}
    replaced = conflicting_refs(plan, listed)
    if replaced:
        log.warning(
            "node %s: containerd names %s point at other images; Docker's images replace them",
            node,
            ", ".join(replaced),
        )
    done = _Run()
    total = plan.bytes
    for batch in plan.batches:
        todo = [m for m in batch.images if m.image_id not in present]
        earlier = [m for m in batch.images if m.image_id in present and m.image_id not in had_before]
        done.already.extend(m.image_id for m in batch.images if m.image_id in had_before)
        if earlier:
            resumed = done.resumed_pulled if batch.strategy is Strategy.PULL else done.resumed_transferred
            resumed.extend(m.image_id for m in earlier)
            # shared layers move once per batch: the batch's bytes when all of it moved earlier
            whole = len(earlier) == len(batch.images)
            done.resumed_bytes += batch.bytes if whole else sum(m.size for m in earlier)
        pending_transfer = todo if batch.strategy is Strategy.TRANSFER else []
        for move in todo if batch.strategy is Strategy.PULL else []:
            result = _pull(runner, move, config)
            if result.exit_status == 0:
                done.pulled.append(move.image_id)
                continue
            if not move.may_fall_back:
                _check(node, f"pulling {move.pull_ref}", result, ["ctr", "images", "pull", move.pull_ref])
            reason = f"pull of {move.pull_ref} failed: {_tail(_err(result), 2)}"
            log.warning("node %s: %s; transferring instead", node, reason)
            done.fallbacks[move.image_id] = reason
            pending_transfer.append(move)
        if pending_transfer:
            size = (
                batch.bytes
                if len(pending_transfer) == len(batch.images)
                else sum(m.size for m in pending_transfer)
            )
            done.bytes += _transfer(runner, node, pending_transfer, size, config)
            done.transferred.extend(m.image_id for m in pending_transfer)
        present.update(m.image_id for m in todo)
        if progress is not None:
            progress(
                Progress(
                    node,
                    batch.index + 1,
                    len(plan.batches),
                    done.bytes,
                    total,
                    ", ".join(m.label for m in batch.images),
                )
            )
    listed = list_containerd_images(runner, node)
    tagged = _tag_missing(runner, node, plan, listed, config)
    temporary = [r for r in refs_to_undo(before, (c.ref for c in listed)) if _IMPORT_NAME.match(r)]
    if temporary:
        _run(
            runner,
            node,
            "removing temporary import names",
            [*CTR, "images", "rm", *temporary],
            config.command_timeout,
        )
    if tagged or temporary:
        listed = list_containerd_images(runner, node)
    problems = verify_images(plan, listed)
    if problems:
        raise NodeError(node, "images missing or different after the migration: " + "; ".join(problems))
    return ImagesOutcome(
        transferred=tuple(done.transferred),
        pulled=tuple(done.pulled),
        fallbacks=dict(done.fallbacks),
        already_done=tuple(done.already),
        bytes_streamed=done.bytes,
        resumed_transferred=tuple(done.resumed_transferred),
        resumed_pulled=tuple(done.resumed_pulled),
        resumed_bytes=done.resumed_bytes,
        refs_tagged=tuple(tagged),
        refs_replaced=replaced,
    )


def undo_images(runner: Runner, node: str, config: TransferConfig = TransferConfig()) -> tuple[str, ...]:
    """Remove every name the migration added to k8s.io (absent from the record taken before the
    first run); images that were there before are untouched. Idempotent; returns what it removed.
    A name that existed for another image and was replaced (`ImagesOutcome.refs_replaced`) stays."""
    path = _record_path(config)
    got = runner.run(["cat", path], timeout=config.command_timeout)
    if got.exit_status != 0:
        return ()  # never recorded: the step never moved anything
    added = refs_to_undo(_out(got).split(), list_containerd_refs(runner, node, config.command_timeout))
    for start in range(0, len(added), 100):
        argv = [*CTR, "images", "rm", *added[start : start + 100]]
        _run(runner, node, "removing migrated images", argv, config.command_timeout)
    _run(runner, node, f"removing {path}", ["rm", "-f", path], config.command_timeout)
    return added


def run_images_step(
    runner: Runner,
    facts: NodeFacts,
    spec: NodeMigrationSpec,
    *,
    sandbox_image: str | None = None,
    reachable_registries: Iterable[str] = (),
    config: TransferConfig = TransferConfig(),
    progress: Callable[[Progress], None] | None = None,
) -> tuple[ImagesPlan, ImagesOutcome]:
    """The whole images step for one node, for the NodePort: read the layers, plan, run, verify.

    `sandbox_image` is the one the rendered containerd config names (default: the spec's);
    `reachable_registries` are the hosts the probe found answering through the new registry config.
    Counts for the status: `shimshift.planning.images.image_counts(plan, outcome)`.
    """
    if facts.containerd_major is not None and facts.containerd_major >= 2:
        config = replace(config, import_local=True)  # containerd#9039: the transfer API names nothing
    before = read_refs_before(runner, config) if facts.containerd_images else None
    if before is not None:
        # A resumed step (the operator restarted before recording its end): images an earlier run
        # moved are in containerd now, but they are this migration's to move and to count, so only
        # what containerd had before the first run is "already there".
        had = {c.image_id for c in list_containerd_images(runner, facts.node) if c.ref in before}
        facts = replace(facts, containerd_images=tuple(i for i in facts.containerd_images if i in had))
    layers = read_image_layers(runner, facts.node, [i.id for i in facts.images]) if facts.images else {}
    plan = plan_images(
        facts,
        spec.images,
        sandbox_image=sandbox_image or spec.containerd.sandbox_image,
        reachable_registries=reachable_registries,
        layers=layers,
        policy=DiskPolicy(path=config.containerd_root),
    )
    return plan, migrate_images(runner, plan, config=config, progress=progress)
