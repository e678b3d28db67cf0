"""The only code that talks to nodes over SSH (the only importer of `paramiko`; never `kubernetes`).

- `NodeConnection(SshTarget, SshOptions)`: one reused connection per node; `run(argv)` ->
  `CommandResult(argv, exit_status, stdout, stderr, duration)`; `upload(NodeFile)` installs a file
  atomically; `round_trips` / `connects` count the SSH cost; strict host keys (`HostKeyError`), or
  keys pinned on first use in a `HostKeyStore` (`HostKeyMismatch` when one changes).
- `run_playbook` / `undo_playbook`: execute playbooks/*.yaml tasks (check, run, verify, undo).
- `NodeSteps(conn)`: the node steps of the migration (facts, backup, configure, images hook, switch,
  verify, cleanup) and their rollback, driven by a `NodeRunPlan`.
- `SshNodePort`: the engine's NodePort (facts/backup/configure/images/switch/verify/finish/undo by node
  name) on top of these, with plans from shimshift.rendering and shimshift.planning.kubelet.
"""

from shimshift.remote.connection import (
    CommandError,
    CommandResult,
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
from shimshift.remote.executor import (
    PlaybookResult,
    TaskFailed,
    TaskOutcome,
    TaskStatus,
    run_playbook,
    undo_playbook,
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
from shimshift.remote.steps import NodeRunPlan, NodeSteps, NotDockershimNode

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
