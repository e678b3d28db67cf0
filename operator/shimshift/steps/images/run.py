"""Node-side image migration: run an `ImagesPlan` on a node, read containerd back, undo.

The node commands (listing, layer sizes, free space, the transfer script, pulls, tagging) are
`shimshift.steps.images.commands`, argv over a `Runner`; no shell string is built from a value. The
decisions (what, how, in which order, disk room) are pure and live in `shimshift.steps.images.plan`,
the verdict on what containerd holds afterwards in `shimshift.steps.images.verdict`.

Idempotent and resumable: the names containerd had before the first run are recorded once under
`/var/lib/shimshift/images/`; a re-run skips every batch whose images are already there (by image
ID), and `undo_images` removes exactly the names that were not there before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from shimshift.model.dockerera import carried_snapshotter
from shimshift.model.errors import NodeError
from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.steps.images.commands import (
    CTR,
    DOCKER_IMAGES_ARGV,
    ID_REF,
    LAYER_SIZES_ARGV,
    TransferConfig,
    check_result,
    free_bytes_of,
    layers_of,
    list_containerd_refs,
    list_images_argv,
    output_tail,
    parse_containerd_images,
    parse_docker_images,
    pull_image,
    run_checked,
    stderr_text,
    stdout_text,
    tag_commands,
    transfer_argv,
    transfer_bytes,
)
from shimshift.steps.images.plan import DiskPolicy, ImageMove, ImagesPlan, Layer, Strategy, plan_images
from shimshift.steps.images.verdict import (
    ContainerdImage,
    ImagesOutcome,
    conflicting_refs,
    refs_to_undo,
    verify_images,
)
from shimshift.steps.runner import Command, CommandResult, Runner, run_batch, script_argv

log = logging.getLogger(__name__)

#: The default bounds and paths, one frozen value shared by the signatures below (TransferConfig
#: lives in shimshift.steps.images.commands, where the commands read it too).
_DEFAULT_CONFIG: Final = TransferConfig()

#: Names `ctr images import --digests` gives images that had no tag in the archive.
_IMPORT_NAME = re.compile(r"^import-\d{4}-\d{2}-\d{2}@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Progress:
    """Reported once before anything moves (batch 0) and after each batch: how far the step is, in
    batches, in bytes streamed of the bytes expected on the wire (`bytes_done`, `bytes_total`), and in
    Docker's sizes of the images moved of those to move (`moved`, `to_move`: the status view's bar).
    Over a runner that streams (`StreamingRunner`, the SSH runner), a transfer's batch is reported as
    it ends, not when the round trip of all transfers does."""

    node: str
    batch: int
    batches: int
    bytes_done: int
    bytes_total: int
    what: str
    moved: int = 0
    to_move: int = 0


# ---- the step -----------------------------------------------------------------------------------


def _record_path(config: TransferConfig) -> str:
    return f"{config.state_dir}/refs-before.txt"


def read_refs_before(runner: Runner, config: TransferConfig = _DEFAULT_CONFIG) -> frozenset[str] | None:
    """The names containerd had before the step's first run, or None when it has not run yet."""
    got = runner.run(["cat", _record_path(config)], timeout=config.command_timeout)
    return frozenset(stdout_text(got).split()) if got.exit_status == 0 else None


def record_command(config: TransferConfig, names: Iterable[str]) -> Command:
    """The command that records `names` as what containerd had before the step's first run, once: a
    resumed step keeps the first record (images_record.sh writes only when there is none)."""
    text = "".join(f"{n}\n" for n in sorted(names))
    return Command(script_argv("images_record", _record_path(config)), 30, stdin=text.encode())


@dataclass(frozen=True)
class NodeImages:
    """What one read of the node says (one round trip, `read_node_images`): containerd's names and
    what they resolve to, the record of what it had before the step's first run (None: no record
    yet), Docker's images as `docker image inspect` shows them and their layer sizes, and the free
    bytes on containerd's root (None when `df` printed none)."""

    listed: tuple[ContainerdImage, ...]
    before: frozenset[str] | None
    docker: tuple[dict[str, object], ...]
    sizes: str
    free_bytes: int | None

    def layers(self, image_ids: Iterable[str]) -> dict[str, tuple[Layer, ...]]:
        return layers_of(self.docker, self.sizes, list(image_ids))

    def docker_images(self) -> tuple[DockerImage, ...]:
        """Docker's image inventory now (for the re-check after the drain)."""
        out = []
        for i in self.docker:
            tags, digests = i.get("RepoTags") or (), i.get("RepoDigests") or ()
            size = i.get("Size")
            out.append(
                DockerImage(
                    id=str(i.get("Id", "")),
                    repo_tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
                    repo_digests=tuple(str(d) for d in digests) if isinstance(digests, list) else (),
                    size=size if isinstance(size, int) else 0,
                )
            )
        return tuple(out)


def read_node_images(
    runner: Runner, node: str, config: TransferConfig = _DEFAULT_CONFIG, *, docker: bool = True
) -> NodeImages:
    """Everything the images step reads before it moves anything, in one round trip: the record,
    containerd's names, Docker's images and layer sizes (unless not `docker`), the free space."""
    root = config.containerd_root
    commands = [
        Command(["cat", _record_path(config)], config.command_timeout, may_fail=True),
        Command(list_images_argv(), 120),
        Command(["df", "--output=avail", "-B1", root], 30, may_fail=True),
        Command(["df", "--output=avail", "-B1", root.rsplit("/", 1)[0] or "/"], 30, may_fail=True),
    ]
    if docker:
        commands += [Command(DOCKER_IMAGES_ARGV, 60), Command(LAYER_SIZES_ARGV, 60, may_fail=True)]
    results = run_batch(runner, node, commands)
    if len(results) < 2:
        raise NodeError(node, "reading containerd's images: the node answered too little")
    check_result(node, "listing containerd images", results[1], ("images_list.sh",))
    if docker:
        if len(results) < 5:
            raise NodeError(node, "reading Docker's images: the node answered too little")
        check_result(node, "reading Docker image layers", results[4], DOCKER_IMAGES_ARGV)
    record = results[0]
    free = free_bytes_of(stdout_text(results[2])) if results[2].exit_status == 0 else None
    if free is None and results[3].exit_status == 0:  # the root may not exist yet on a fresh containerd
        free = free_bytes_of(stdout_text(results[3]))
    return NodeImages(
        listed=parse_containerd_images(node, stdout_text(results[1])),
        before=frozenset(stdout_text(record).split()) if record.exit_status == 0 else None,
        docker=tuple(parse_docker_images(node, stdout_text(results[4]))) if docker else (),
        sizes=stdout_text(results[5]) if docker and len(results) > 5 else "",
        free_bytes=free,
    )


def record_refs_before(
    runner: Runner, node: str, config: TransferConfig = _DEFAULT_CONFIG, names: Iterable[str] | None = None
) -> frozenset[str]:
    """The names containerd had before the first run of the step, recorded on the node once: a
    resumed step keeps the first record. `names` is the current listing if the caller has one."""
    recorded = read_refs_before(runner, config)
    if recorded is not None:
        return recorded
    if names is None:
        names = list_containerd_refs(runner, node, config.command_timeout)
    command = record_command(config, names)
    result = runner.run(command.argv, timeout=command.timeout, stdin=command.stdin)
    what = f"recording containerd's images in {_record_path(config)}"
    return frozenset(stdout_text(check_result(node, what, result, command.argv)).split())


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
    moved: int = 0  # Docker's sizes of the images moved (by this run or an earlier one)


def migrate_images(
    runner: Runner,
    plan: ImagesPlan,
    *,
    config: TransferConfig = _DEFAULT_CONFIG,
    progress: Callable[[Progress], None] | None = None,
    free_bytes: int | None = None,
    read: NodeImages | None = None,
) -> ImagesOutcome:
    """Run `plan` on its node: check the disk, move every batch, restore names, verify by image ID.

    `read` is what the node said before (`read_node_images`; read now, one round trip, if not given).
    The disk check uses `free_bytes` if given, else the free space that read found; a shortfall raises
    before any byte moves. The record of what containerd had, every transfer and the listing after
    them go to the node in one round trip (a pull is one of its own), the missing names and the
    listing that verifies them in one more; a plan with nothing left to move or name costs none.
    Raises NodeError naming the node, the command and its stderr tail.
    """
    node = plan.node
    if read is None:
        read = read_node_images(runner, node, config, docker=False)
    if plan.batches:
        free = free_bytes if free_bytes is not None else read.free_bytes
        if free is None:
            raise NodeError(node, f"cannot read the free space of {config.containerd_root} from `df`")
        blocked = plan.disk.with_free(free).problem(node)
        if blocked:
            raise NodeError(node, blocked.removeprefix(f"node {node}: "))
    listed = read.listed
    recorded = read.before is not None
    before = read.before if read.before is not None else frozenset(c.ref for c in listed)
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
    to_move = sum(m.size for m in plan.moves if m.image_id not in had_before)
    # transfers for the next round trip: the images, the bytes expected, the batch's index
    queue: list[tuple[list[ImageMove], int, int]] = []
    reports: list[tuple[int, str]] = []  # batches done whose progress is not reported yet

    def report(upto: int | None = None, streamed: int = 0) -> None:
        """Report the batches done (those up to index `upto` only, if given)."""
        while reports and (upto is None or reports[0][0] <= upto):
            index, what = reports.pop(0)
            if progress is not None:
                batches = len(plan.batches)
                got = done.bytes + streamed
                progress(Progress(node, index + 1, batches, got, total, what, done.moved, to_move))

    def flush(*, listing: bool) -> tuple[ContainerdImage, ...] | None:
        """Run the queued transfers (after the record, the first time) in one round trip, with the
        listing after them if `listing`; each transfer's batch is reported as its result comes."""
        nonlocal recorded
        commands = [] if recorded else [record_command(config, before)]
        first = len(commands)
        commands += [
            Command(transfer_argv(moves, config), config.timeout_for(size)) for moves, size, _ in queue
        ]
        if listing:
            commands.append(Command(list_images_argv(), 120))
        streamed = 0

        def ended(index: int, result: CommandResult) -> None:
            nonlocal streamed
            if not first <= index < first + len(queue) or result.exit_status != 0:
                return  # a failed transfer raises below, once the batch is over
            moves, _size, batch = queue[index - first]
            done.moved += sum(m.size for m in moves)
            streamed += transfer_bytes(node, moves, result)
            report(upto=batch, streamed=streamed)

        results = iter(run_batch(runner, node, commands, on_result=ended))
        if not recorded:
            what = f"recording containerd's images in {_record_path(config)}"
            check_result(node, what, _next(node, results), commands[0].argv)
            recorded = True
        for moves, _size, _batch in queue:
            done.bytes += transfer_bytes(node, moves, _next(node, results))
            done.transferred.extend(m.image_id for m in moves)
        queue.clear()
        report()
        if not listing:
            return None
        got = check_result(node, "listing containerd images", _next(node, results), ("images_list.sh",))
        return parse_containerd_images(node, stdout_text(got))

    changed = False
    if progress is not None and plan.batches:
        progress(Progress(node, 0, len(plan.batches), 0, total, "", 0, to_move))
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
            done.moved += sum(m.size for m in earlier)
        pending_transfer = todo if batch.strategy is Strategy.TRANSFER else []
        pulls = todo if batch.strategy is Strategy.PULL else []
        if pulls:
            flush(listing=False)  # the record (and earlier transfers) before the first pull
            changed = True
        for move in pulls:
            result = pull_image(runner, move, config)
            if result.exit_status == 0:
                done.pulled.append(move.image_id)
                done.moved += move.size
                continue
            if not move.may_fall_back:
                check_result(
                    node, f"pulling {move.pull_ref}", result, ["ctr", "images", "pull", move.pull_ref]
                )
            reason = f"pull of {move.pull_ref} failed: {output_tail(stderr_text(result), 2)}"
            log.warning("node %s: %s; transferring instead", node, reason)
            done.fallbacks[move.image_id] = reason
            pending_transfer.append(move)
        if pending_transfer:
            size = (
                batch.bytes
                if len(pending_transfer) == len(batch.images)
                else sum(m.size for m in pending_transfer)
            )
            queue.append((pending_transfer, size, batch.index))
        present.update(m.image_id for m in todo)
        reports.append((batch.index, ", ".join(m.label for m in batch.images)))
        if not queue:
            report()
    if queue or changed:
        listed = flush(listing=True) or ()
    report()
    tags = tag_commands(plan, listed, config)
    temporary = [r for r in refs_to_undo(before, (c.ref for c in listed)) if _IMPORT_NAME.match(r)]
    tagged = [ref for _, refs, _ in tags for ref in refs]
    if tags or temporary:
        commands = [] if recorded else [record_command(config, before)]
        commands += [Command(argv, config.command_timeout) for _, _, argv in tags]
        if temporary:
            commands.append(Command((*CTR, "images", "rm", *temporary), config.command_timeout))
        commands.append(Command(list_images_argv(), 120))
        results = iter(run_batch(runner, node, commands))
        if not recorded:
            what = f"recording containerd's images in {_record_path(config)}"
            check_result(node, what, _next(node, results), commands[0].argv)
        for image_id, _, argv in tags:
            check_result(node, f"naming image {image_id}", _next(node, results), argv)
        if temporary:
            check_result(node, "removing temporary import names", _next(node, results), commands[-2].argv)
        got = check_result(node, "listing containerd images", _next(node, results), ("images_list.sh",))
        listed = parse_containerd_images(node, stdout_text(got))
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
        bytes_to_move=to_move,
        bytes_moved=done.moved,
    )


def _next(node: str, results: Iterator[CommandResult]) -> CommandResult:
    """The next result of a batch (a batch stops at its first failure, which is checked first)."""
    got = next(results, None)
    if got is None:
        raise NodeError(node, "a batch of node commands stopped before its end")
    return got


def undo_images(runner: Runner, node: str, config: TransferConfig = _DEFAULT_CONFIG) -> tuple[str, ...]:
    """Remove every name the migration added to k8s.io (absent from the record taken before the
    first run); images that were there before are untouched. Idempotent; returns what it removed.
    A name that existed for another image and was replaced (`ImagesOutcome.refs_replaced`) stays."""
    path = _record_path(config)
    got = runner.run(["cat", path], timeout=config.command_timeout)
    if got.exit_status != 0:
        return ()  # never recorded: the step never moved anything
    added = refs_to_undo(stdout_text(got).split(), list_containerd_refs(runner, node, config.command_timeout))
    for start in range(0, len(added), 100):
        argv = [*CTR, "images", "rm", *added[start : start + 100]]
        run_checked(runner, node, "removing migrated images", argv, config.command_timeout)
    run_checked(runner, node, f"removing {path}", ["rm", "-f", path], config.command_timeout)
    return added


def run_images_step(
    runner: Runner,
    facts: NodeFacts,
    spec: NodeMigrationSpec,
    *,
    sandbox_image: str | None = None,
    reachable_registries: Iterable[str] = (),
    config: TransferConfig = _DEFAULT_CONFIG,
    progress: Callable[[Progress], None] | None = None,
    fresh_inventory: bool = False,
) -> tuple[ImagesPlan, ImagesOutcome]:
    """The whole images step for one node, for the NodePort: read the layers, plan, run, verify.

    `sandbox_image` is the one the rendered containerd config names (default: the spec's);
    `reachable_registries` are the hosts the probe found answering through the new registry config.
    With `fresh_inventory` (the re-check after the drain) Docker's images are the node's as they are
    now, not those of `facts`. One round trip reads the node, at most two more move and name the
    images (a pull costs one of its own); nothing to move or name costs none.
    Counts for the status: `shimshift.steps.images.verdict.image_counts(plan, outcome)`.
    """
    if facts.containerd_major is not None and facts.containerd_major >= 2:
        config = replace(config, import_local=True)  # containerd#9039: the transfer API names nothing
    snapshotter = carried_snapshotter(facts.daemon_json, facts.snapshotters)
    if snapshotter is not None:  # the CRI plugin's (rendering): the images are unpacked where it looks
        config = replace(config, snapshotter=snapshotter)
    # Docker is asked only for what the plan needs: the layers of the images to move, or (re-check) all
    read = read_node_images(runner, facts.node, config, docker=fresh_inventory or bool(facts.images))
    if fresh_inventory:  # the re-check: Docker's images and containerd's image IDs as they are now
        ids = tuple(c.ref for c in read.listed if ID_REF.match(c.ref))
        facts = replace(facts, images=read.docker_images(), containerd_images=ids)
    if read.before is not None and facts.containerd_images:
        # A resumed step (the operator restarted before recording its end): images an earlier run
        # moved are in containerd now, but they are this migration's to move and to count, so only
        # what containerd had before the first run is "already there".
        had = {c.image_id for c in read.listed if c.ref in read.before}
        facts = replace(facts, containerd_images=tuple(i for i in facts.containerd_images if i in had))
    layers = read.layers(i.id for i in facts.images) if facts.images else {}
    plan = plan_images(
        facts,
        spec.images,
        sandbox_image=sandbox_image or spec.containerd.sandbox_image,
        reachable_registries=reachable_registries,
        layers=layers,
        policy=DiskPolicy(path=config.containerd_root),
    )
    return plan, migrate_images(runner, plan, config=config, progress=progress, read=read)
