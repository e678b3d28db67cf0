"""The built binaries a node profile puts in place of (or beside) the host's packages.

A profile with a containerd version gets that containerd, its ctr and its runc shim bind-mounted over
Debian's /usr/bin/{containerd,ctr,containerd-shim-runc-v2} in the node's own mount namespace; a profile
with crictl gets it at /usr/local/bin/crictl (the node's private overlay of /usr/local/bin). The
binaries come from scripts/build-components' cache (testbed.components); a missing one is an error
that names the command building it, never a node quietly left on other binaries.
"""

from __future__ import annotations

import json
from pathlib import Path

from testbed.components import binary
from testbed.nodes.profiles import Profile

#: node path -> component program, for each piece a profile can replace
CONTAINERD_PROGRAMS = {
    "/usr/bin/containerd": "containerd",
    "/usr/bin/ctr": "ctr",
    "/usr/bin/containerd-shim-runc-v2": "containerd-shim-runc-v2",
}
CRICTL_PATH = "/usr/local/bin/crictl"
MOUNTS_FILE = "binaries.json"


def binary_mounts(p: Profile) -> dict[str, str]:
    """Node path -> host path of each built binary profile `p` uses (raises ComponentMissing)."""
    mounts: dict[str, str] = {}
    if p.containerd:
        for node_path, program in CONTAINERD_PROGRAMS.items():
            mounts[node_path] = str(binary("containerd", program, p.containerd))
    if p.crictl:
        mounts[CRICTL_PATH] = str(binary("crictl", "crictl", p.crictl))
    return mounts


def write_mounts(node_dir: Path, mounts: dict[str, str]) -> None:
    (node_dir / MOUNTS_FILE).write_text(json.dumps(mounts, indent=1, sort_keys=True) + "\n")


def read_mounts(node_dir: Path) -> dict[str, str]:
    path = node_dir / MOUNTS_FILE
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text())
    return {str(k): str(v) for k, v in loaded.items()}
