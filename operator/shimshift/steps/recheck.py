"""The re-check step (staged order only): after the drain, Docker's images are listed again and every
image that appeared since the images step staged them (the kubelet may pull while the node still
serves) moves into containerd's `k8s.io` namespace too; images staged already are skipped by image
ID, so this moves only the difference. Over the images step's own node half
(`shimshift.steps.images.run_images_step`, behind `NodePort.recheck_images`), over Docker's image
inventory as it is now (read in that step's own first round trip, with containerd's names: one round
trip when nothing appeared); its undo is the images step's (remove exactly the names the migration
added), run by the rollback.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import ImageCounts, NodeRecord
from shimshift.steps.base import NodePort, Outcome, ProgressWriter, Step, StepContext


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    staged = record.images
    facts = ctx.facts_of(migration, port, record.name)
    total = port.recheck_images(record.name, facts, progress=ProgressWriter(ctx, migration, record))
    new = ImageCounts(
        transferred=max(0, total.transferred - staged.transferred),
        pulled=max(0, total.pulled - staged.pulled),
        bytes=max(0, total.bytes - staged.bytes),
    )
    ctx.observer.images_migrated(new)
    moved = new.transferred + new.pulled
    message = (
        f"{moved} image(s) appeared since staging, moved" if moved else "no image appeared since staging"
    )
    return Outcome(True, replace(record, images=total), message)


STEP = Step(StepId.RECHECK, _run, scripts=("batch", "images_list", "image-transfer", "images_record"))
