"""Atomic upload against a real sshd: the target is replaced whole or not at all (a full disk, a failed
validation), a second upload of the same bytes changes nothing, mode and owner are set."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shimshift.playbooks import NodeFile
from shimshift.remote import UploadError
from tests.integration.remote.conftest import LocalSshd

pytestmark = pytest.mark.integration


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".shimshift" in p.name]


def test_a_new_file_arrives_with_its_bytes_mode_and_owner(sshd: LocalSshd, tmp_path: Path) -> None:
    target = tmp_path / "sub dir" / "config.toml"
    content = bytes(range(256)) + b"\n$(touch x)\n"
    with sshd.connect() as conn:
        assert conn.upload(NodeFile(str(target), content, 0o640, "0:0")) is True
        assert conn.round_trips == 1
    assert target.read_bytes() == content
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert leftovers(target.parent) == []


def test_uploading_the_same_bytes_again_changes_nothing(sshd: LocalSshd, tmp_path: Path) -> None:
    target = tmp_path / "f"
    f = NodeFile(str(target), b"same\n", 0o644)
    with sshd.connect() as conn:
        assert conn.upload(f) is True
        inode, mtime = target.stat().st_ino, target.stat().st_mtime_ns
        assert conn.upload(f) is False
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (inode, mtime)


def test_a_mode_change_alone_is_applied(sshd: LocalSshd, tmp_path: Path) -> None:
    target = tmp_path / "f"
    with sshd.connect() as conn:
        conn.upload(NodeFile(str(target), b"x", 0o644))
        assert conn.upload(NodeFile(str(target), b"x", 0o600)) is True
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_file_failing_validation_leaves_the_target_untouched(sshd: LocalSshd, tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_bytes(b"old = 1\n")
    bad = NodeFile(
        str(target), b"[unclosed\n", 0o644, validate=("sh", "-c", 'grep -q "^old" "$1"', "v", "{tmp}")
    )
    with (
        sshd.connect() as conn,
        pytest.raises(UploadError, match=r"failed validation; the file on the node is unchanged"),
    ):
        conn.upload(bad)
    assert target.read_bytes() == b"old = 1\n"
    assert leftovers(tmp_path) == []


def test_containerd_rejects_malformed_toml_before_it_replaces_the_live_file(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    if subprocess.run(["sh", "-c", "command -v containerd"], capture_output=True, check=False).returncode:
        pytest.skip("containerd is not installed")
    target = tmp_path / "config.toml"
    target.write_bytes(b"version = 2\n")
    bad = NodeFile(
        str(target),
        b"version = 2\n[plugins\n",
        validate=("containerd", "--config", "{tmp}", "config", "dump"),
    )
    with sshd.connect() as conn, pytest.raises(UploadError, match=r"failed validation.*TOML"):
        conn.upload(bad)
    assert target.read_bytes() == b"version = 2\n"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
        timeout=10,
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=10)


def test_a_full_disk_during_upload_leaves_nothing_half_written(sshd: LocalSshd, tiny_fs: Path) -> None:
    target = tiny_fs / "config.toml"
    target.write_bytes(b"original\n")
    big = NodeFile(str(target), os.urandom(256 * 1024), 0o644)
    with sshd.connect() as conn:
        with pytest.raises(UploadError, match=r"writing failed \(disk full\?\)"):
            conn.upload(big)
        assert conn.run(["true"]).ok
    assert target.read_bytes() == b"original\n"
    assert leftovers(tiny_fs) == []


def test_a_relative_or_multiline_path_is_refused_before_anything_runs(sshd: LocalSshd) -> None:
    with sshd.connect() as conn:
        for path in ("relative/x", "/etc/x\n/etc/y"):
            with pytest.raises(UploadError, match=r"not an absolute single-line path"):
                conn.upload(NodeFile(path, b""))
        assert conn.round_trips == 0


def test_several_files_go_in_one_round_trip_and_a_failure_names_the_file(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    c.write_bytes(b"old c\n")
    files = [NodeFile(str(a), b"A" * 70000), NodeFile(str(b), b""), NodeFile(str(c), b"new c\n")]
    with sshd.connect() as conn:
        assert conn.upload_many(files) == (True, True, True)
        assert conn.upload_many(files) == (False, False, False)
        assert conn.round_trips == 2
        bad = [
            NodeFile(str(a), b"A2"),
            NodeFile(str(b), b"B2", validate=("false", "{tmp}")),
            NodeFile(str(c), b"c3"),
        ]
        with pytest.raises(UploadError, match=f"{b} was not installed, the new file failed validation"):
            conn.upload_many(bad)
    assert (a.read_bytes(), b.read_bytes(), c.read_bytes()) == (b"A2", b"", b"new c\n")
    assert leftovers(tmp_path) == []
