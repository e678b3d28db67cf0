"""A stand-in for ``systemctl`` inside a testbed node (PID 1 of a node is tini, not systemd).

It starts, stops, restarts and reports the node's real daemons (containerd, dockerd, the fake
kubelet, ...) from unit descriptions in ``/etc/fake-systemd/<unit>.json``, and appends every call
with its exit status to ``/var/log/systemctl-calls.log`` (JSON lines) so tests can assert which
restarts happened. A daemon that exits before it is ready, or is not ready in time, fails the job
with systemd's own wording and exit status, and the unit is left ``failed``.

Unit description (JSON): ``exec`` argv, optional ``environment``, ``ready`` (``{"socket": path}``
or ``{"exec": argv}``), ``wants`` (units started first), ``start_timeout``, ``stop_timeout``.
With ``unit_files``, the command line, ``Environment=`` and ``EnvironmentFile=`` come from the node's
real unit file and drop-ins as systemd reads them (the last ``ExecStart=``, an empty one resetting),
loaded at the first start and again only at ``daemon-reload``, as systemd does: ``exec`` is then the
program that stands in for the unit's own binary, and ``environment`` what it needs besides. This
reader is the testbed's own, independent of the operator's (``shimshift.model.kubeletunits``).
Runs inside the node only: every path here is a node path.

A daemon starts with the resource limits systemd would give it, not its caller's: the ``Limit*=`` of
the node's real unit file for it (``<name>.service`` in /etc/systemd/system, /run/systemd/system,
/lib/systemd/system or /usr/lib/systemd/system, then its drop-ins in file name order, the last
assignment winning), and systemd's defaults for open files and locked memory where none is set.
``infinity`` for open files is the kernel's ``fs.nr_open``, as systemd caps it. A limit above the
hard limit of the caller is set as near as that allows (systemd's ``setrlimit_closest``): the testbed
runs without CAP_SYS_RESOURCE, so no daemon here gets more open files than the sshd it is started
from (20000 on the machines of this project, where systemd would give 1048576). This is read here
independently of the operator's own parser (``shimshift.model.unitlimits``), which it judges.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.waiting import WaitTimeout, wait_until

UNIT_DIR = Path(os.environ.get("FAKE_SYSTEMD_UNIT_DIR", "/etc/fake-systemd"))
STATE_DIR = Path("/run/fake-systemd")
CALL_LOG = Path("/var/log/systemctl-calls.log")
LOG_DIR = Path("/var/log")

EXIT_NOT_ACTIVE = 3
EXIT_NO_SUCH_UNIT = 5


class JobFailedError(Exception):
    """The start job failed; the message is what systemctl prints."""


@dataclass(frozen=True)
class Unit:
    name: str
    exec: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)
    ready: dict[str, Any] | None = None
    wants: list[str] = field(default_factory=list)
    start_timeout: float = 20.0
    stop_timeout: float = 10.0
    description: str = ""
    #: the command line comes from the node's real unit files (``<name>.service`` and its drop-ins), as
    #: systemd last loaded them: ``exec`` is then only the program that stands in for the unit's own
    #: binary, ``environment`` what it needs besides
    unit_files: bool = False

    @classmethod
    def load(cls, name: str) -> Unit | None:
        path = UNIT_DIR / f"{name}.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        return cls(name=name, **raw)


def _unit_name(arg: str) -> str:
    return arg.removesuffix(".service")


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass
class State:
    """What the fake systemd remembers about a unit: main PID (with its start time, so a reused
    PID is not mistaken for the daemon), and the result of the last job."""

    name: str

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.name}.json"

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def write(self, **values: Any) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(self.path)

    def main_pid(self) -> int | None:
        data = self.read()
        pid = data.get("pid")
        if isinstance(pid, int) and _pid_alive(pid) and _start_time(pid) == data.get("start_time"):
            return pid
        return None

    def active_state(self) -> str:
        if self.main_pid() is not None:
            return "active"
        return "failed" if self.read().get("result", "success") != "success" else "inactive"


def read_environment_file(path: Path) -> dict[str, str]:
    """Parse a systemd ``EnvironmentFile``: KEY=VALUE lines, quotes, backslash continuations."""
    values: dict[str, str] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        try:
            values[key.strip()] = " ".join(shlex.split(raw))
        except ValueError:
            values[key.strip()] = raw.strip()
    return values


def expand_exec(argv: list[str], env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: ``$VAR`` splits into words, ``${VAR}`` stays one word."""
    out: list[str] = []
    for arg in argv:
        if arg.startswith("${") and arg.endswith("}"):
            out.append(env.get(arg[2:-1], ""))
        elif arg.startswith("$") and arg[1:].isidentifier():
            out += env.get(arg[1:], "").split()
        else:
            out.append(arg)
    return out


def unit_environment(unit: Unit) -> dict[str, str]:
    env = {**os.environ, **unit.environment}
    for spec in unit.environment_files:
        optional, path = spec.startswith("-"), Path(spec.removeprefix("-"))
        if path.is_file():
            env |= read_environment_file(path)
        elif not optional:
            raise JobFailedError(f"Failed to load environment files: {path}: No such file or directory")
    return env


#: systemd's directories of unit files, the first holding the unit winning
SYSTEMD_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
RLIMITS = {
    "LimitNOFILE": resource.RLIMIT_NOFILE,
    "LimitMEMLOCK": resource.RLIMIT_MEMLOCK,
    "LimitNPROC": resource.RLIMIT_NPROC,
    "LimitCORE": resource.RLIMIT_CORE,
}
#: systemd's DefaultLimitNOFILE= (since v240) and DefaultLimitMEMLOCK= (since v253)
DEFAULT_LIMITS = {"LimitNOFILE": "1024:524288", "LimitMEMLOCK": "8M"}


def _systemd_files(name: str) -> list[Path]:
    unit = f"{name}.service"
    main = next((Path(d, unit) for d in SYSTEMD_DIRS if Path(d, unit).is_file()), None)
    dropins: dict[str, Path] = {}
    for d in reversed(SYSTEMD_DIRS):
        directory = Path(d, f"{unit}.d")
        if directory.is_dir():
            dropins |= {f.name: f for f in directory.glob("*.conf") if f.is_file()}
    return ([main] if main else []) + [dropins[n] for n in sorted(dropins)]


def _rlimit_value(text: str, nofile: bool) -> int:
    text = text.strip().lower()
    if text in ("infinity", "unlimited"):
        return int(Path("/proc/sys/fs/nr_open").read_text()) if nofile else resource.RLIM_INFINITY
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def _capped(value: int, most: int) -> int:
    if most == resource.RLIM_INFINITY:
        return value
    return most if value == resource.RLIM_INFINITY else min(value, most)


def unit_limits(name: str) -> dict[int, tuple[int, int]]:
    """The rlimits systemd starts unit `name` with: {RLIMIT_*: (soft, hard)}."""
    values = dict(DEFAULT_LIMITS)
    for path in _systemd_files(name):
        section = ""
        for line in path.read_text(errors="replace").replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            key, eq, value = line.partition("=")
            if section == "Service" and eq and key.strip() in RLIMITS:
                if value.strip():
                    values[key.strip()] = value.strip()
                else:
                    values.pop(key.strip(), None)
    out: dict[int, tuple[int, int]] = {}
    for key, value in values.items():
        soft, colon, hard = value.partition(":")
        nofile = key == "LimitNOFILE"
        try:
            pair = (_rlimit_value(soft, nofile), _rlimit_value(hard if colon else soft, nofile))
        except ValueError:
            continue  # systemd ignores an unreadable value too (with a warning)
        out[RLIMITS[key]] = pair
    return out


def _is_ready(unit: Unit) -> bool:
    if not unit.ready:
        return True
    if "file" in unit.ready:
        return Path(unit.ready["file"]).exists()
    if "socket" in unit.ready:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(unit.ready["socket"])
            except OSError:
                return False
            return True
    result = subprocess.run(
        unit.ready["exec"], stdin=subprocess.DEVNULL, capture_output=True, timeout=5, check=False
    )
    return result.returncode == 0


def _failure(unit: Unit, why: str) -> JobFailedError:
    return JobFailedError(
        f"Job for {unit.name}.service failed because {why}.\n"
        f'See "systemctl status {unit.name}.service" and "journalctl -xeu {unit.name}.service" for details.'
    )


def _service_lines(path: Path) -> list[tuple[str, str]]:
    """The (key, value) lines of a unit file's [Service] section, continuations joined, comments left out."""
    out: list[tuple[str, str]] = []
    section = ""
    for line in path.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        if eq and section == "Service":
            out.append((key.strip(), value.strip()))
    return out


def read_unit_files(name: str) -> dict[str, Any]:
    """What systemd takes from ``name``'s unit file and drop-ins: the last ExecStart= (an empty one resets),
    the Environment= assignments (the last winning, an empty one resetting) and the EnvironmentFile= list."""
    execs: list[list[str]] = []
    environment: dict[str, str] = {}
    files: list[str] = []
    for path in _systemd_files(name):
        for key, value in _service_lines(path):
            if key == "ExecStart":
                execs = [shlex.split(value.lstrip("-@:+!|"))] if value else []
            elif key == "Environment":
                if not value:
                    environment = {}
                for word in shlex.split(value):
                    var, eq, val = word.partition("=")
                    if eq:
                        environment[var] = val
            elif key == "EnvironmentFile":
                files = files + shlex.split(value) if value else []
    return {"exec": execs[-1] if execs else [], "environment": environment, "environment_files": files}


def _loaded(name: str) -> Path:
    return STATE_DIR / f"{name}.loaded.json"


def daemon_reload() -> None:
    """As systemd: units that read their unit files see them as they are now only from here on."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    for path in sorted(UNIT_DIR.glob("*.json")):
        unit = Unit.load(path.stem)
        if unit is not None and unit.unit_files:
            _loaded(unit.name).write_text(json.dumps(read_unit_files(unit.name)))


def effective(unit: Unit) -> Unit:
    """The unit as it starts: for ``unit_files`` units, the command line and environment of its unit files
    as last loaded (at the first start, as at boot, else at the last daemon-reload)."""
    if not unit.unit_files:
        return unit
    path = _loaded(unit.name)
    if not path.is_file():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(read_unit_files(unit.name)))
    loaded = json.loads(path.read_text())
    if not loaded["exec"]:
        raise JobFailedError(f"Unit {unit.name}.service has no ExecStart= setting.")
    return Unit(
        name=unit.name,
        exec=unit.exec + loaded["exec"][1:],
        environment={**unit.environment, **loaded["environment"]},
        environment_files=loaded["environment_files"],
        ready=unit.ready,
        wants=unit.wants,
        start_timeout=unit.start_timeout,
        stop_timeout=unit.stop_timeout,
        description=unit.description,
    )


def start(unit: Unit) -> None:
    unit = effective(unit)
    for dependency in unit.wants:
        wanted = Unit.load(dependency)
        if wanted is not None:
            start(wanted)
    state = State(unit.name)
    if state.main_pid() is not None:
        return
    env = unit_environment(unit)
    limits = unit_limits(unit.name)

    def set_limits() -> None:  # in the child, before exec
        for which, (soft, hard) in limits.items():
            try:
                resource.setrlimit(which, (soft, hard))
            except (OSError, ValueError):
                # as systemd's setrlimit_closest: as near as the hard limit it may not raise allows
                most = resource.getrlimit(which)[1]
                resource.setrlimit(which, (_capped(soft, most), _capped(hard, most)))

    if unit.ready and "file" in unit.ready:
        Path(unit.ready["file"]).unlink(missing_ok=True)
    with (LOG_DIR / f"{unit.name}.log").open("ab") as log:
        # As systemd starts a service: no descriptor of the caller (a playbook script's step lock on fd 9,
        # its SSH channel on 0-2) reaches the daemon, which would hold them for as long as it runs.
        proc = subprocess.Popen(
            expand_exec(unit.exec, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=set_limits,  # setrlimit only: nothing that takes a lock
        )
    state.write(pid=proc.pid, start_time=_start_time(proc.pid), result="running", since=time.time())

    def ready() -> bool:
        code = proc.poll()
        if code is not None:
            state.write(pid=None, result="exit-code", status=code, since=time.time())
            raise _failure(unit, "the control process exited with error code")
        return _is_ready(unit)

    try:
        wait_until(ready, unit.start_timeout, what=f"unit {unit.name} to be ready", interval=0.02)
    except WaitTimeout:
        proc.kill()
        proc.wait(5)
        state.write(pid=None, result="timeout", since=time.time())
        raise _failure(unit, "a timeout was exceeded") from None
    state.write(pid=proc.pid, start_time=_start_time(proc.pid), result="success", since=time.time())


def stop(unit: Unit) -> None:
    state = State(unit.name)
    pid = state.main_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not _pid_alive(pid), unit.stop_timeout, what="SIGTERM", interval=0.02)
        except WaitTimeout:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(WaitTimeout):
                wait_until(lambda: not _pid_alive(pid), 5, what="SIGKILL", interval=0.02)
    state.write(pid=None, result="success", since=time.time())


def status_text(unit: Unit) -> str:
    state = State(unit.name)
    data, active, pid = state.read(), state.active_state(), state.main_pid()
    since = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(data.get("since", time.time())))
    if active == "active":
        line = f"active (running) since {since}"
    elif active == "failed":
        line = f"failed (Result: {data.get('result')}) since {since}"
    else:
        line = "inactive (dead)"
    lines = [f"● {unit.name}.service - {unit.description or unit.name}", f"     Active: {line}"]
    if pid is not None:
        lines.append(f"   Main PID: {pid} ({Path(unit.exec[0]).name})")
    log = LOG_DIR / f"{unit.name}.log"
    if log.exists():
        lines += ["", *log.read_text(errors="replace").splitlines()[-10:]]
    return "\n".join(lines)


def show(unit: Unit, properties: list[str]) -> dict[str, str]:
    state = State(unit.name)
    active, pid = state.active_state(), state.main_pid()
    values = {
        "Id": f"{unit.name}.service",
        "ActiveState": active,
        "SubState": {"active": "running", "failed": "failed"}.get(active, "dead"),
        "MainPID": str(pid or 0),
        "Result": str(state.read().get("result", "success")).replace("running", "success"),
        "LoadState": "loaded",
        "UnitFileState": "enabled",
    }
    return {k: v for k, v in values.items() if not properties or k in properties}


def run(argv: list[str]) -> int:
    args = [a for a in argv if a not in ("--now", "--no-pager", "-q", "--quiet", "--no-block")]
    if not args:
        print("fake systemctl: missing verb", file=sys.stderr)
        return 1
    verb, rest = args[0], args[1:]
    if verb == "daemon-reload":
        daemon_reload()
        return 0
    if verb in ("reset-failed", "enable", "disable", "mask", "unmask"):
        return 0
    properties: list[str] = []
    value_only = "--value" in rest
    rest = [a for a in rest if a != "--value"]
    while "-p" in rest:
        i = rest.index("-p")
        properties += rest[i + 1].split(",")
        del rest[i : i + 2]
    properties += [a.split("=", 1)[1] for a in rest if a.startswith("--property=")]
    rest = [a for a in rest if not a.startswith("--property=")]
    units: list[Unit] = []
    for arg in rest:
        unit = Unit.load(_unit_name(arg))
        if unit is None and verb in ("is-active", "is-failed"):
            unit = Unit(name=_unit_name(arg), exec=["/bin/false"])  # reported as inactive, like systemd
        if unit is None:
            print(
                f"Failed to {verb} {_unit_name(arg)}.service: Unit {_unit_name(arg)}.service not found.",
                file=sys.stderr,
            )
            return EXIT_NO_SUCH_UNIT if verb != "status" else 4
        units.append(unit)
    rc = 0
    for unit in units:
        try:
            if verb == "start":
                start(unit)
            elif verb == "stop":
                stop(unit)
            elif verb in ("restart", "reload-or-restart", "try-restart"):
                if verb != "try-restart" or State(unit.name).main_pid() is not None:
                    stop(unit)
                    start(unit)
            elif verb in ("is-active", "is-failed"):
                active = State(unit.name).active_state()
                print(active)
                wanted = "active" if verb == "is-active" else "failed"
                rc = rc or (0 if active == wanted else EXIT_NOT_ACTIVE if verb == "is-active" else 1)
            elif verb == "is-enabled":
                print("enabled")
            elif verb == "status":
                print(status_text(unit))
                rc = rc or (0 if State(unit.name).active_state() == "active" else EXIT_NOT_ACTIVE)
            elif verb == "show":
                for key, value in show(unit, properties).items():
                    print(value if value_only else f"{key}={value}")
            elif verb == "cat":
                print(f"# {UNIT_DIR / unit.name}.json")
                print((UNIT_DIR / f"{unit.name}.json").read_text())
            else:
                print(f"fake systemctl: unsupported verb {verb!r}", file=sys.stderr)
                return 1
        except JobFailedError as e:
            print(e, file=sys.stderr)
            rc = 1
    return rc


def main() -> None:
    argv = sys.argv[1:]
    rc = 1
    try:
        rc = run(argv)
    finally:
        with contextlib.suppress(OSError), CALL_LOG.open("a") as log:
            log.write(json.dumps({"time": time.time(), "argv": argv, "rc": rc}) + "\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
