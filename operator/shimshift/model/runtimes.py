"""Docker's other OCI runtimes (daemon.json `runtimes` and `default-runtime`) as containerd CRI runtimes.
Pure values.

Docker 20.10 runs a runtime registered in daemon.json (`{"nvidia": {"path": "nvidia-container-runtime",
"runtimeArgs": []}}`) through containerd's runc shim with the shim option `BinaryName` set to its
path (daemon/runtime_unix.go), so containerd's CRI plugin can run it the same way: a
`containerd.runtimes.<name>` table with `runtime_type = "io.containerd.runc.v2"` and
`options.BinaryName`, plus the node's `SystemdCgroup`. Docker 23's `runtimeType` (a shim v2 runtime
such as `io.containerd.runsc.v1` or `io.containerd.kata.v2`) and its `options` are carried as they are.

What cannot be carried is named with why:
- `runtimeArgs` other than runc's global flags that the shim has an option for (`--root`, `--criu`,
  `--systemd-cgroup`): the runc shim starts the binary with no arguments of its own;
- Kata Containers 1.x (`kata-runtime`, kata-deploy's `kata-qemu`/`kata-fc` wrappers, Clear
  Containers' `cc-runtime`): an OCI runtime that expects to be run as Docker ran it, which
  containerd's CRI plugin supports only through Kata's own shim v2 (Kata 2.x);
- sysbox (`sysbox-runc`): Sysbox supports Kubernetes on CRI-O only;
- a name that is not a TOML bare key (a RuntimeClass handler is a DNS label anyway), or `runc`, which
  Docker reserves for itself.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUNC_V2 = "io.containerd.runc.v2"
#: Runtime names Docker keeps for itself (daemon/runtime_unix.go): daemon.json may not define them.
DOCKER_RESERVED = frozenset({"runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"})
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
#: A binary as daemon.json's `path` names it: absolute, or a name Docker looks up in its PATH.
_BINARY = re.compile(r"^[^\s\x00-\x1f\x7f\"\\]+$")
#: A shim v2 runtime type (`io.containerd.<name>.v<n>`); a path is not carried (it would be a shim
#: binary chosen by path, which extraConfig may set only with RuntimeBinary in allowUnsafe).
_SHIM_TYPE = re.compile(r"^io\.containerd\.[a-z0-9_-]+\.v[0-9]+$")
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: runc's global flags whose effect the runc shim has an option for.
_ARG_OPTIONS = {"--root": "Root", "--criu": "CriuPath"}
_KATA_1 = ("kata-runtime", "kata-qemu", "kata-fc", "kata-clh", "cc-runtime")


@dataclass(frozen=True)
class CarriedRuntime:
    """One of Docker's runtimes as a containerd CRI runtime (`options` without SystemdCgroup, which
    the renderer sets from the node's cgroup driver for a runc-shim runtime)."""

    name: str
    runtime_type: str
    options: tuple[tuple[str, str | bool], ...] = ()
    source: str = ""  # what daemon.json said, for the plan

    @property
    def binary(self) -> str | None:
        return next((str(v) for k, v in self.options if k == "BinaryName"), None)


@dataclass(frozen=True)
class RefusedRuntime:
    name: str
    reason: str
    advice: str


@dataclass(frozen=True)
class DockerRuntimes:
    """What becomes of daemon.json's runtimes on one node. `default` is Docker's default runtime
    (`runc` when daemon.json names none)."""

    default: str = "runc"
    carried: tuple[CarriedRuntime, ...] = ()
    refused: tuple[RefusedRuntime, ...] = ()
    #: names the runtimes value had that are not an object (Docker would not start with them)
    malformed: bool = False
    notes: tuple[str, ...] = field(default=())

    def carried_names(self) -> frozenset[str]:
        return frozenset(r.name for r in self.carried)

    @property
    def default_carried(self) -> bool:
        return self.default == "runc" or self.default in self.carried_names()

    def refusal(self, name: str) -> RefusedRuntime | None:
        return next((r for r in self.refused if r.name == name), None)


def _default_name(daemon: Mapping[str, Any]) -> str:
    value = daemon.get("default-runtime")
    if value in (None, "", RUNC_V2, "io.containerd.runtime.v1.linux"):
        return "runc"
    return value if isinstance(value, str) else f"({type(value).__name__})"


def _args_options(args: list[Any]) -> tuple[list[tuple[str, str | bool]], list[str]]:
    """runtimeArgs as runc shim options, and the arguments that have none."""
    options: list[tuple[str, str | bool]] = []
    lost: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not isinstance(arg, str):
            lost.append(repr(arg))
            i += 1
            continue
        flag, eq, value = arg.partition("=")
        if flag in _ARG_OPTIONS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) and isinstance(args[i + 1], str) else ""
                i += 1
            if value.startswith("/") and _BINARY.match(value):
                options.append((_ARG_OPTIONS[flag], value))
            else:
                lost.append(arg if eq else f"{arg} {value}".strip())
        elif arg != "--systemd-cgroup":  # the renderer sets SystemdCgroup from the node's driver
            lost.append(arg)
        i += 1
    return options, lost


def _kata_1(binary: str) -> bool:
    return posixpath.basename(binary) in _KATA_1


def _one(name: str, entry: Any) -> CarriedRuntime | RefusedRuntime:
    if name in DOCKER_RESERVED:
        return RefusedRuntime(
            name,
            f"{name!r} is a name Docker reserves for itself (dockerd does not start with it defined)",
            "remove it from daemon.json runtimes",
        )
    if not _NAME.match(name):
        return RefusedRuntime(
            name,
            "the name is not one containerd's runtimes table and a RuntimeClass handler can both hold "
            "(letters, digits, - and _)",
            "rename the runtime in daemon.json (and in its RuntimeClass), then probe the node again",
        )
    if not isinstance(entry, Mapping):
        return RefusedRuntime(name, "its entry is not an object with a path", "fix daemon.json runtimes")
    runtime_type = entry.get("runtimeType")
    if runtime_type not in (None, ""):
        return _shim_runtime(name, entry, runtime_type)
    binary = entry.get("path")
    if not isinstance(binary, str) or not binary or not _BINARY.match(binary):
        return RefusedRuntime(
            name, "its path is not a binary's path or name", "fix daemon.json runtimes, then plan again"
        )
    if _kata_1(binary):
        return RefusedRuntime(
            name,
            f"{binary} is Kata Containers 1.x's OCI runtime, which containerd's CRI plugin does not run "
            "(containerd runs Kata through Kata's own shim, runtime_type io.containerd.kata.v2, of Kata 2.x)",
            "install Kata Containers 2.x on the node and add its runtime as containerd.runtimes.<name> with "
            "runtime_type io.containerd.kata.v2 in spec.containerd.extraConfig, then plan again",
        )
    if posixpath.basename(binary) == "sysbox-runc":
        return RefusedRuntime(
            name,
            "Sysbox supports Kubernetes nodes on CRI-O only, not on containerd's CRI plugin",
            "run these workloads on CRI-O nodes with Sysbox, or without Sysbox",
        )
    args = entry.get("runtimeArgs") or []
    options, lost = _args_options(args if isinstance(args, list) else [args])
    if lost:
        return RefusedRuntime(
            name,
            f"runtimeArgs {', '.join(lost)}: containerd's runc shim starts {binary} with no arguments of "
            "its own (its options have only --root and --criu of runc's flags)",
            f"wrap {binary} in a script that runs it with those arguments and name the script as this "
            "runtime's path in daemon.json (as Docker itself does for runtimeArgs), or configure the "
            "runtime through its own configuration file, then probe the node again",
        )
    shown = binary + (" " + " ".join(str(a) for a in args) if args else "")
    return CarriedRuntime(name, RUNC_V2, (("BinaryName", binary), *options), shown)


def _shim_runtime(name: str, entry: Mapping[str, Any], runtime_type: Any) -> CarriedRuntime | RefusedRuntime:
    if not isinstance(runtime_type, str) or not _SHIM_TYPE.match(runtime_type):
        return RefusedRuntime(
            name,
            "its runtimeType is not a shim v2 runtime name (io.containerd.<name>.v<n>); a shim chosen by "
            "path is not carried",
            "set the runtime in spec.containerd.extraConfig (a shim path needs RuntimeBinary in "
            "spec.containerd.allowUnsafe), then plan again",
        )
    raw = entry.get("options") or {}
    options: list[tuple[str, str | bool]] = []
    for key, value in raw.items() if isinstance(raw, Mapping) else ():
        if key == "SystemdCgroup":
            continue
        if not _OPTION_KEY.match(str(key)) or not isinstance(value, str | bool):
            return RefusedRuntime(
                name,
                f"its option {key!s} is not a string or boolean option shimshift carries",
                "set the runtime in spec.containerd.extraConfig, then plan again",
            )
        options.append((str(key), value))
    return CarriedRuntime(name, runtime_type, tuple(options), runtime_type)


def docker_runtimes(daemon: Mapping[str, Any] | None) -> DockerRuntimes:
    """Docker's runtimes on a node, each carried or refused with why."""
    daemon = daemon or {}
    raw = daemon.get("runtimes")
    carried: list[CarriedRuntime] = []
    refused: list[RefusedRuntime] = []
    notes: list[str] = []
    if isinstance(raw, Mapping):
        for name in sorted(raw, key=str):
            one = _one(str(name), raw[name])
            (carried if isinstance(one, CarriedRuntime) else refused).append(one)  # type: ignore[arg-type]
    for runtime in carried:
        if runtime.binary is not None and posixpath.basename(runtime.binary) == "runsc":
            notes.append(
                f"runtime {runtime.name}: gVisor's runsc runs through runc's shim with BinaryName, as "
                "Docker ran it; gVisor's own shim for containerd (io.containerd.runsc.v1) is not "
                "installed by shimshift"
            )
    return DockerRuntimes(
        _default_name(daemon),
        tuple(carried),
        tuple(refused),
        malformed=raw is not None and not isinstance(raw, Mapping),
        notes=tuple(notes),
    )


def shim_binary(runtime_type: str) -> str:
    """The shim binary containerd starts for a runtime type: `io.containerd.runsc.v1` is
    `containerd-shim-runsc-v1`, looked up in containerd's PATH and beside containerd itself."""
    name = runtime_type.removeprefix("io.containerd.")
    kind, _, version = name.rpartition(".")
    return f"containerd-shim-{kind}-{version}"


@dataclass(frozen=True)
class MissingBinary:
    """A carried runtime whose binary (its BinaryName, or the shim of its runtime type) the node does
    not have as an executable: containerd loads the configuration, and every pod of that runtime fails
    to start. `default`: Docker's default runtime, which containerd runs every pod without a
    RuntimeClass with."""

    runtime: str
    binary: str
    shim: bool
    default: bool

    @property
    def text(self) -> str:
        what = (
            f"the shim {self.binary} of its runtime type"
            if self.shim
            else f"its binary {self.binary} (runc's shim runs it as BinaryName)"
        )
        where = "in containerd's PATH" + (" or beside containerd" if self.shim else "")
        if "/" in self.binary:
            where = "on the node"
        pods = (
            "every pod without a RuntimeClass (it is containerd's default_runtime_name) would fail to start"
            if self.default
            else f"pods of a RuntimeClass with handler {self.runtime} would fail to start"
        )
        return f"runtime {self.runtime}: {what} is not an executable file {where}, so {pods}"

    @property
    def advice(self) -> str:
        fix = f"install {self.binary} on the node"
        other = (
            "or make another runtime Docker's default-runtime in daemon.json"
            if self.default
            else "or remove the runtime from daemon.json runtimes (and its RuntimeClass)"
        )
        return f"{fix} ({other}), then plan again"


def missing_binaries(found: DockerRuntimes, present: Mapping[str, str]) -> tuple[MissingBinary, ...]:
    """The carried runtimes' binaries the probe looked for and did not find (`NodeFacts.runtime_binaries`:
    as named -> the executable, "" when none; one not looked for is not reported)."""
    out: list[MissingBinary] = []
    for runtime in found.carried:
        for binary, shim in ((shim_binary(runtime.runtime_type), True), (runtime.binary, False)):
            if binary is not None and present.get(binary) == "":
                out.append(MissingBinary(runtime.name, binary, shim, runtime.name == found.default))
    return tuple(out)
