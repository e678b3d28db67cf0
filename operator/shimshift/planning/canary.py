"""What the plan says of the verify step's canary on each node: which image it will run, or that
none will run for want of an image. Pure; the choice is the images step's
(`shimshift.steps.images.canary`), so the plan names the image Migrate mode will use.
"""

from __future__ import annotations

from shimshift.model.facts import NodeFacts
from shimshift.model.spec import NodeMigrationSpec
from shimshift.planning.findings import Finding, Level
from shimshift.steps.images.canary import canary_image


def canary_findings(spec: NodeMigrationSpec, node: str, facts: NodeFacts | None) -> list[Finding]:
    """One note per node: the canary it will run before its uncordon, or that it will run none."""
    if not spec.verify.canary.enabled:
        return []
    image = canary_image(spec, facts)
    if image is not None:
        return [
            Finding(
                "CanaryPlanned",
                Level.INFO,
                f"before {node} is uncordoned a canary pod pinned to it runs `echo` under containerd, "
                f"image {image.ref} ({image.source}); if it cannot run, the node rolls back",
                "",
                node,
                image.ref,
            )
        ]
    if facts is None:
        return []  # not probed: the node's images are unknown (its missing facts are reported)
    return [
        Finding(
            "NoCanaryImage",
            Level.INFO,
            f"no canary will run on {node} before it is uncordoned: spec.verify.canary.image names none "
            "and the node has no busybox or alpine image that containerd will hold",
            "name a small image with `echo` in spec.verify.canary.image (pulled by the node), or set "
            "spec.verify.canary.enabled: false to say no canary is wanted",
            node,
        )
    ]
