"""The images step: Docker's images into containerd's `k8s.io` namespace, so the kubelet finds them
after the switch (an air-gapped node cannot pull them again). One package, four parts:

- `plan`: what moves, how (re-pull by digest or a batched `docker save | ctr import` transfer), in
  which order, and whether the disk has room; from the facts and `spec.images`. Pure.
- `fit`: the plan report's summary of that plan. Pure.
- `commands`: the node commands (listing, layer sizes, free space, the transfer script
  `playbooks/scripts/image-transfer.sh`, pulls, tags) as argv over a `Runner`.
- `run`: the step on a node (record what containerd had, migrate, verify by image ID) and its undo
  (remove exactly the names the step added); `verdict` judges what containerd holds afterwards.

The sandbox image the new containerd config names goes first, whichever rule chose it.
"""

from __future__ import annotations

from dataclasses import replace

from shimshift.model.keys import StepId
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.steps.base import NodePort, Outcome, ProgressWriter, Step, StepContext
from shimshift.steps.images.run import Progress, run_images_step, undo_images
from shimshift.steps.images.verdict import image_counts

__all__ = ["STEP", "Progress", "image_counts", "run_images_step", "undo_images"]


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    facts = ctx.facts_of(migration, port, record.name)
    counts = port.images(record.name, facts, progress=ProgressWriter(ctx, migration, record))
    ctx.observer.images_migrated(counts)
    return Outcome(True, replace(record, images=counts))


STEP = Step(StepId.IMAGES, _run, scripts=("batch", "images_list", "image-transfer", "images_record"))
