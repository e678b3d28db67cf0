"""The only code that talks to nodes over SSH (the only importer of `paramiko`; never `kubernetes`).

- `NodeConnection(SshTarget, SshOptions)` (`connection`, from `connect`: handshake, host keys, auth;
  `exec`: argv runs; `upload`: the upload protocol): one reused connection per node; `run(argv)` ->
  `CommandResult(argv, exit_status, stdout, stderr, duration)`; `upload(NodeFile)` installs a file
  atomically; `round_trips` / `connects` count the SSH cost; strict host keys (`HostKeyError`), or
  keys pinned on first use in a `HostKeyStore` (`HostKeyMismatch` when one changes).
- `SshNodePort`: the engine's NodePort (facts/backup/configure/images/switch/verify/finish/undo by node
  name): each call runs the node half of a step from its home in `shimshift.steps` over the node's
  `NodeConnection` (re-exported here: `NodeSteps`, `NodeRunPlan`, `run_playbook`, ...).
"""

from shimshift.remote.connection import (
    CommandError,
    CommandTimeout,
    ConnectFailed,
    ConnectionLost,
    NodeConnection,
    PrivateKeyError,
    SshOptions,
    SshTarget,
    UploadError,
    load_private_key,
)
from shimshift.remote.hostkeys import (
    HostKeyError,
    HostKeyMismatch,
    HostKeyPin,
    HostKeyRevoked,
    HostKeyStore,
    LearnedHostKey,
    MemoryHostKeyStore,
    fingerprint,
    parse_known_hosts,
)
from shimshift.remote.port import SshNodePort
from shimshift.steps.execute import (
    PlaybookResult,
    TaskFailed,
    TaskOutcome,
    TaskStatus,
    run_playbook,
    undo_playbook,
)
from shimshift.steps.nodeplan import NodeRunPlan, NotDockershimNode
from shimshift.steps.runner import CommandResult
from shimshift.steps.table import NodeSteps

__all__ = [
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "ConnectFailed",
    "ConnectionLost",
    "HostKeyError",
    "HostKeyMismatch",
    "HostKeyPin",
    "HostKeyRevoked",
    "HostKeyStore",
    "LearnedHostKey",
    "MemoryHostKeyStore",
    "NodeConnection",
    "NodeRunPlan",
    "NodeSteps",
    "NotDockershimNode",
    "PlaybookResult",
    "PrivateKeyError",
    "SshNodePort",
    "SshOptions",
    "SshTarget",
    "TaskFailed",
    "TaskOutcome",
    "TaskStatus",
    "UploadError",
    "fingerprint",
    "load_private_key",
    "parse_known_hosts",
    "run_playbook",
    "undo_playbook",
]
