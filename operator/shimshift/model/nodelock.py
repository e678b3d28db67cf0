"""The annotations the node lock writes, decided from the node's current annotations (pure).

Taking the lock also keeps the cluster autoscaler off the node while it is in flight: the autoscaler's
`scale-down-disabled` annotation, set in the same patch as the lock and marked with
`shimshift.io/scale-down-disabled-by`, so after any crash the node itself says whether the value is
shimshift's. A node that already carries the autoscaler annotation (an admin's, whatever its value)
keeps it as it is and gets no marker; releasing the lock removes only a value shimshift set.
"""

from __future__ import annotations

from collections.abc import Mapping

from shimshift.model import keys

#: A merge-patch of annotations: a value sets one, None removes it.
AnnotationPatch = dict[str, str | None]


def lock_patch(annotations: Mapping[str, str], owner: str) -> AnnotationPatch:
    """What to write so `owner` holds the lock (the caller has checked that it may); {} when nothing.

    A marker naming another NodeMigration is shimshift's too (a lock taken over from a deleted owner):
    it passes to `owner`, so `owner` removes it when it is done.
    """
    patch: AnnotationPatch = {}
    if annotations.get(keys.LOCK_ANNOTATION) != owner:
        patch[keys.LOCK_ANNOTATION] = owner
    marker = annotations.get(keys.SCALE_DOWN_DISABLED_BY_ANNOTATION)
    if marker is not None:
        if marker != owner:
            patch[keys.SCALE_DOWN_DISABLED_BY_ANNOTATION] = owner
    elif keys.SCALE_DOWN_DISABLED_ANNOTATION not in annotations:
        patch[keys.SCALE_DOWN_DISABLED_ANNOTATION] = "true"
        patch[keys.SCALE_DOWN_DISABLED_BY_ANNOTATION] = owner
    return patch


def unlock_patch(annotations: Mapping[str, str], owner: str) -> AnnotationPatch:
    """What to write so `owner` no longer holds the lock; {} when it does not hold it (someone else's
    lock, and the autoscaler annotation, are left alone)."""
    if annotations.get(keys.LOCK_ANNOTATION) != owner:
        return {}
    patch: AnnotationPatch = {keys.LOCK_ANNOTATION: None}
    if annotations.get(keys.SCALE_DOWN_DISABLED_BY_ANNOTATION) == owner:
        patch[keys.SCALE_DOWN_DISABLED_ANNOTATION] = None
        patch[keys.SCALE_DOWN_DISABLED_BY_ANNOTATION] = None
    return patch
