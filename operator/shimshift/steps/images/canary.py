"""Which image the verify step's canary runs: the one `spec.verify.canary.image` names, else the
smallest image with a shell's `echo` that this step leaves in containerd's `k8s.io` namespace
(migrated now, or there already), so the canary needs no registry. Pure.

The pause image cannot be it (it runs no command); an image is taken for one with `echo` by its
repository's last path component (busybox, alpine), the few small images known to ship one.
"""

from __future__ import annotations

from shimshift.model.canary import CanaryImage
from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.steps.images.plan import normalize_reference, plan_images

#: Repositories (last path component) whose images ship `echo` and are a few MiB.
SHELL_IMAGES = ("busybox", "alpine")


def _short_name(ref: str) -> str:
    """`docker.io/library/busybox:1.36` -> `busybox`."""
    name = normalize_reference(ref).partition("@")[0].rsplit("/", 1)[-1]
    return name.partition(":")[0]


def canary_image(spec: NodeMigrationSpec, facts: NodeFacts | None) -> CanaryImage | None:
    """The canary's image on `facts.node`, or None when there is none (no image named and no small
    image with `echo` among those containerd will hold; without facts, none can be found)."""
    if spec.verify.canary.image:
        return CanaryImage(spec.verify.canary.image, "spec.verify.canary.image")
    if facts is None:
        return None
    plan = plan_images(facts, spec.images, sandbox_image=spec.containerd.sandbox_image)
    there = {m.image_id for m in plan.moves} | set(facts.containerd_images)
    candidates = []
    for image in facts.images:
        if image.id not in there:
            continue
        tags = [t for t in image.repo_tags if "<none>" not in t]
        for tag in tags:
            if _short_name(tag) in SHELL_IMAGES:
                candidates.append((image.size, normalize_reference(tag)))
                break
    if not candidates:
        return None
    size, ref = min(candidates)
    return CanaryImage(ref, f"the node's own image ({size} bytes), migrated into containerd k8s.io")
