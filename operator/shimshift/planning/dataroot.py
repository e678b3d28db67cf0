"""Docker's data root on another filesystem than containerd's root: where the images will go. Pure.

The images step imports Docker's images into containerd's root (/var/lib/containerd), and the disk
check measures that root's filesystem. When Docker's `data-root` put its images on another disk, the
plan says so with both filesystems and what the images need. shimshift does not move containerd's
root itself: containerd keeps its record of Docker's running containers (its metadata) under that
root, and a containerd restarted on another root no longer knows them (on the real 1.6, 2.2 and 2.3:
the container's task runs on, the container is gone from `ctr containers ls`; the integration test
test_root_move_on_containerd), so Docker could not stop them at the switch. Moving it is a
maintenance-window job, and the finding says how: a directory beside Docker's on the same disk, never
inside Docker's data root. For the same reason a config.toml
whose `root` (set through spec.containerd.extraConfig) differs from the node's current one blocks it.
"""

from __future__ import annotations

import posixpath
import tomllib
from collections.abc import Iterator

from shimshift.model.facts import NodeFacts
from shimshift.planning.findings import Finding, Level
from shimshift.planning.settings import rendered_config
from shimshift.steps.filesection import FileSection

DOCKER_ROOT_OTHER_FILESYSTEM = "DockerRootOtherFilesystem"


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def sibling_root(docker_root: str) -> str:
    """Where containerd's root would go on Docker's disk: `containerd` beside Docker's data root
    (/data/docker -> /data/containerd), never inside it."""
    parent = posixpath.dirname(docker_root.rstrip("/")) or "/"
    return posixpath.join(parent, "containerd")


def data_root_findings(facts: NodeFacts | None) -> Iterator[Finding]:
    if facts is None or not facts.docker_root or facts.roots_share_filesystem is not False:
        return
    images = sum(i.size for i in facts.images)
    docker_fs = facts.docker_root_mount or "a filesystem of its own"
    sibling = sibling_root(facts.docker_root)
    yield Finding(
        DOCKER_ROOT_OTHER_FILESYSTEM,
        Level.WARNING,
        f"Docker's data root {facts.docker_root} is on {docker_fs} "
        f"({_size(facts.docker_root_free_bytes)} free), containerd's root {facts.containerd_root} on "
        f"{facts.containerd_root_mount or 'another'} ({_size(facts.containerd_root_free_bytes)} free): "
        f"the images step puts the images ({_size(images)}) there, and the disk check measures that "
        "filesystem. "
        "shimshift does not move containerd's root: containerd keeps its record of Docker's running "
        "containers under it, and restarted on another root it no longer knows them, so Docker could "
        "not stop them at the switch",
        f"to keep containerd's data on {docker_fs}: in a maintenance window, with Docker's "
        f"containers and containerd stopped, copy {facts.containerd_root} to {sibling} (beside Docker's "
        f"data root, never inside it) and bind-mount it at {facts.containerd_root} (fstab), then probe "
        "the node again; or make sure the images fit where they go",
        facts.node,
        "daemon.json data-root",
    )


CONTAINERD_ROOT_MOVED = "ContainerdRootMoved"
DEFAULT_ROOT = "/var/lib/containerd"


def _current_root(facts: NodeFacts) -> str:
    try:
        doc = tomllib.loads(facts.containerd_config or "")
    except tomllib.TOMLDecodeError:
        return DEFAULT_ROOT
    root = doc.get("root")
    return root if isinstance(root, str) and root else DEFAULT_ROOT


def root_move_findings(facts: NodeFacts | None, containerd: FileSection) -> Iterator[Finding]:
    """A blocker when the new config.toml (spec.containerd.extraConfig) moves containerd's root while
    Docker's containers run on that containerd: the configure step restarts it before the drain."""
    if facts is None or not containerd.computed:
        return
    new = rendered_config(containerd).get("root")
    old = _current_root(facts)
    if not isinstance(new, str) or new.rstrip("/") == old.rstrip("/"):
        return
    yield Finding(
        CONTAINERD_ROOT_MOVED,
        Level.BLOCKER,
        f"the new config.toml moves containerd's root from {old} to {new}: the configure step restarts "
        "containerd while Docker's containers still run on it, and a containerd restarted on another "
        "root no longer knows them (its record of them is under the old root), so Docker could not "
        "stop them at the switch",
        f"remove root from spec.containerd.extraConfig; to move containerd's data, copy {old} to {new} in "
        f"a maintenance window (Docker's containers and containerd stopped) and bind-mount it at {old}",
        facts.node,
        "config.toml root",
    )
