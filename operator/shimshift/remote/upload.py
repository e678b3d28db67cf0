"""The upload protocol: several files installed on a node in one command, each atomically
(`playbooks/scripts/upload.sh`: temp file, sha256 check, optional validation, mode and owner, rename),
their bytes concatenated on stdin. `upload_argv` builds the command, `upload_outcome` reads its
answer: per file whether it changed, or an `UploadError` naming the file that was not installed and
why (the script's exit status names the stage).
"""

from __future__ import annotations

from collections.abc import Sequence

from shimshift.model.errors import RemoteError
from shimshift.playbooks import NodeFile
from shimshift.steps.runner import CommandResult, script_argv


class UploadError(RemoteError):
    """A file was not installed; the target on the node is unchanged."""

    transient = True


#: What each exit status of upload.sh means for the file that failed.
_REASONS = {
    20: "cannot create its directory",
    21: "cannot create a temp file next to it",
    22: "writing failed (disk full?)",
    23: "the checksum did not match",
    24: "cannot set mode/owner",
    25: "the new file failed validation",
    26: "the rename failed",
}


def upload_argv(node: str, files: Sequence[NodeFile]) -> tuple[str, ...]:
    """The command that installs `files` (their bytes go to its stdin, in order)."""
    return script_argv("upload", *upload_args(node, files))


def upload_args(node: str, files: Sequence[NodeFile]) -> list[str]:
    """The arguments of node script `upload` that install `files`."""
    args: list[str] = []
    for f in files:
        if not f.path.startswith("/") or "\x00" in f.path or "\n" in f.path:
            raise UploadError(f"node {node}: {f.path!r} is not an absolute single-line path")
        args += [
            f.path,
            f.sha256,
            format(f.mode, "o"),
            f.owner,
            f.done_if,
            str(len(f.content)),
            str(len(f.validate)),
            *f.validate,
        ]
    return args


def upload_outcome(node: str, files: Sequence[NodeFile], result: CommandResult) -> tuple[bool, ...]:
    """Per file, whether it changed; UploadError for the first file that was not installed."""
    names = ", ".join(f.path for f in files)
    if result.exit_status == 0:
        lines = result.text.splitlines()
        if len(lines) != len(files):
            raise UploadError(f"node {node}: upload of {names} printed {len(lines)} results")
        return tuple(line.startswith("changed ") for line in lines)
    done = len(result.text.splitlines())
    failed = files[done].path if done < len(files) else names
    why = _REASONS.get(result.exit_status, f"exit {result.exit_status}")
    raise UploadError(
        f"node {node}: {failed} was not installed, {why}; the file on the node is "
        f"unchanged: {result.stderr_tail()}"
    )
