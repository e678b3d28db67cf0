"""Why shimshift never moves containerd's root while Docker's containers run on it: on the real
containerd of each version (1.6, 2.2, 2.3), a container started under one root keeps its task after
containerd restarts on another root, but containerd no longer has the container itself (its record is
in the metadata under the old root), so a client that asks for it (Docker does, to stop it) finds
nothing. The plan's ContainerdRootMoved and DockerRootOtherFilesystem rest on this.

Everything runs inside one private mount namespace (its own /run, /opt), both daemons one after the
other on the same state directory, as a restart by systemd would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from testbed.nodes.images import pause_image, write_archive

from tests.integration.rendering.harness import BUILD_IDS, BUILDS, Build, node_root

REPO = Path(__file__).resolve().parents[3]
RUNC_SHIM = REPO / "testbed" / "nodes" / "runc_shim.py"
#: Fixed text; every value arrives as an argument ($1 directory, $2 containerd, $3 ctr).
SCRIPT = r"""
set -eu
d=$1 containerd=$2 ctr=$3
mount -t tmpfs tmpfs /run
mount --bind "$d/opt" /opt
mount --bind "$d/runc" /usr/sbin/runc
start() {
    "$containerd" --config "$d/config.toml" --root "$d/$1" --state "$d/state" --address "$d/c.sock" \
        >"$d/$1.log" 2>&1 &
    pid=$!
    i=0
    until "$ctr" --address "$d/c.sock" version >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 100 ] || { echo "containerd did not start" >&2; exit 3; }
        sleep 0.1
    done
}
start rootA
"$ctr" --address "$d/c.sock" -n moby images import "$d/pause.tar" >/dev/null
"$ctr" --address "$d/c.sock" -n moby run --null-io -d k8s.gcr.io/pause:3.6 keepme /bin/sleep 120
echo "A containers: $("$ctr" --address "$d/c.sock" -n moby containers ls -q | tr '\n' ' ')"
kill "$pid"; wait "$pid" || true
start rootB
echo "B containers: $("$ctr" --address "$d/c.sock" -n moby containers ls -q | tr '\n' ' ')"
echo "B tasks: $("$ctr" --address "$d/c.sock" -n moby tasks ls -q | tr '\n' ' ')"
task=$("$ctr" --address "$d/c.sock" -n moby tasks ls | awk '$1 == "keepme" { print $2 }')
shim=
[ -z "$task" ] || shim=$(ps -o ppid= -p "$task" | tr -d ' ')
"$ctr" --address "$d/c.sock" -n moby tasks kill -s KILL keepme >/dev/null 2>&1 || true
kill "$pid"; wait "$pid" || true
# what this test started, by id: the container's process and its shim, which no containerd owns now
[ -z "$task" ] || kill -KILL "$task" 2>/dev/null || true
[ -z "$shim" ] || kill -KILL "$shim" 2>/dev/null || true
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("build", BUILDS, ids=BUILD_IDS)
def test_a_containerd_restarted_on_another_root_no_longer_has_the_running_container(build: Build) -> None:
    with node_root() as root:
        d = root.path
        (d / "opt" / "testbed").mkdir(parents=True)
        runc = shutil.which("runc")
        assert runc is not None
        shutil.copy(runc, d / "opt" / "testbed" / "runc.real")
        (d / "runc").write_text(f'#!/bin/sh\nexec /usr/bin/python3 -I -S {RUNC_SHIM} "$@"\n')
        (d / "runc").chmod(0o755)
        (d / "config.toml").write_text(
            "version = 2\n" if build.schema == 2 else f"version = {build.schema}\n"
        )
        write_archive([pause_image("k8s.gcr.io/pause:3.6")], d / "pause.tar")
        shim_dir = str(Path(build.containerd).parent)
        env = {"PATH": f"{shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        out = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                SCRIPT,
                "sh",
                str(d),
                build.containerd,
                build.ctr,
            ],
            capture_output=True,
            text=True,
            timeout=80,
            env=env,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
        assert lines["A containers"].split() == ["keepme"]
        assert lines["B containers"].split() == []  # the record is gone with the old root
        assert lines["B tasks"].split() == ["keepme"], out.stdout  # while the process runs on
