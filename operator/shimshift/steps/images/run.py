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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from shimshift.model.dockerera import carried_snapshotter
from shimshift.model.errors import NodeError
from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.steps.images.commands import (
    CTR,
    TransferConfig,
    check_result,
    list_containerd_images,
    list_containerd_refs,
    output_tail,
    pull_image,
    read_containerd_free_bytes,
    read_image_layers,
    run_checked,
    stderr_text,
    stdout_text,
    tag_missing,
    transfer_batch,
)
from shimshift.steps.images.plan import DiskPolicy, ImagesPlan, Strategy, plan_images
from shimshift.steps.images.verdict import ImagesOutcome, conflicting_refs, refs_to_undo, verify_images
from shimshift.steps.runner import Runner, script_argv

log = logging.getLogger(__name__)

#: The default bounds and paths, one frozen value shared by the signatures below (TransferConfig
#: lives in shimshift.steps.images.commands, where the commands read it too).
_DEFAULT_CONFIG: Final = TransferConfig()

#: Names `ctr images import --digests` gives images that had no tag in the archive.
_IMPORT_NAME = re.compile(r"^import-\d{4}-\d{2}-\d{2}@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Progress:
    """Reported after each batch: how far the step is, in bytes and batches."""

    node: str
    batch: int
    batches: int
    bytes_done: int
    bytes_total: int
    what: str


# ---- the step -----------------------------------------------------------------------------------


def _record_path(config: TransferConfig) -> str:
    return f"{config.state_dir}/refs-before.txt"


def read_refs_before(runner: Runner, config: TransferConfig = _DEFAULT_CONFIG) -> frozenset[str] | None:
    """The names containerd had before the step's first run, or None when it has not run yet."""
    got = runner.run(["cat", _record_path(config)], timeout=config.command_timeout)
    return frozenset(stdout_text(got).split()) if got.exit_status == 0 else None


def record_refs_before(
    runner: Runner, node: str, config: TransferConfig = _DEFAULT_CONFIG, names: Iterable[str] | None = None
) -> frozenset[str]:
    """The names containerd had before the first run of the step, recorded on the node once: a
    resumed step keeps the first record. `names` is the current listing if the caller has one."""
    path = _record_path(config)
    recorded = read_refs_before(runner, config)
    if recorded is not None:
        return recorded
    if names is None:
        names = list_containerd_refs(runner, node, config.command_timeout)
    argv = script_argv("images_record", path)
    text = "".join(f"{n}\n" for n in sorted(names))
    result = runner.run(argv, timeout=30, stdin=text.encode())
    return frozenset(
        stdout_text(check_result(node, f"recording containerd's images in {path}", result, argv)).split()
    )


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
    config: TransferConfig = _DEFAULT_CONFIG,
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
            result = pull_image(runner, move, config)
            if result.exit_status == 0:
                done.pulled.append(move.image_id)
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
            done.bytes += transfer_batch(runner, node, pending_transfer, size, config)
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
    tagged = tag_missing(runner, node, plan, listed, config)
    temporary = [r for r in refs_to_undo(before, (c.ref for c in listed)) if _IMPORT_NAME.match(r)]
    if temporary:
        run_checked(
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
) -> tuple[ImagesPlan, ImagesOutcome]:
    """The whole images step for one node, for the NodePort: read the layers, plan, run, verify.

    `sandbox_image` is the one the rendered containerd config names (default: the spec's);
    `reachable_registries` are the hosts the probe found answering through the new registry config.
    Counts for the status: `shimshift.steps.images.verdict.image_counts(plan, outcome)`.
    """
    if facts.containerd_major is not None and facts.containerd_major >= 2:
        config = replace(config, import_local=True)  # containerd#9039: the transfer API names nothing
    snapshotter = carried_snapshotter(facts.daemon_json, facts.snapshotters)
    if snapshotter is not None:  # the CRI plugin's (rendering): the images are unpacked where it looks
        config = replace(config, snapshotter=snapshotter)
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
