"""Node-side procedures as data: load playbooks/*.yaml into typed tasks, and render their argv. Pure.

A playbook is a list of tasks; a task has a name, a timeout, a `when`, and two actions: `run` and its
`undo`. An action is an argv list, or a named script from playbooks/scripts/ with arguments (run as
`/bin/sh -c <script> shimshift-<name> ARG...`, so values only ever arrive as positional parameters), or
an upload of a list of files, or an upload followed by a script (one round trip for both). `node_script`
is the one loader of a node script (lib.sh first), for playbooks and for the steps that run a script
themselves. Each argv element is rendered on its own with Jinja2 (StrictUndefined, sandboxed): a value
can never become two arguments or shell syntax. `{each: var}` expands a list variable into one argument
per item.

The loader rejects a malformed playbook with the file, the task and the field. Nothing here runs
anything; `shimshift.steps.execute` does, through one SSH connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shimshift.model.durations import parse_duration
from shimshift.model.errors import Problem, ValidationError

ACTIONS = ("run", "undo")
#: Shell functions prepended to every playbook script (scripts/lib.sh).
LIB_SCRIPT = "lib.sh"
_TASK_KEYS = frozenset({"name", "timeout", "when", *ACTIONS})
_ACTION_KEYS = frozenset({"argv", "script", "args", "upload"})
_PLAYBOOK_KEYS = frozenset({"playbook", "description", "readOnly", "vars", "tasks"})

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class PlaybookError(ValidationError):
    """A playbook file is malformed, or rendering it failed (a missing variable, a wrong type)."""


@dataclass(frozen=True)
class Each:
    """`{each: var}` in an argv: one argument per item of the list variable `var`."""

    var: str


Arg = str | Each


@dataclass(frozen=True)
class Action:
    argv: tuple[Arg, ...] = ()
    script: str | None = None
    #: name of a variable holding a list of NodeFile; with a `script`, the files are installed and
    #: then the script runs, in one round trip
    upload: str | None = None


@dataclass(frozen=True)
class Task:
    name: str
    run: Action
    timeout: float = 60.0
    undo: Action | None = None
    when: str | None = None  # a Jinja expression; the task is skipped when it is false


@dataclass(frozen=True)
class Playbook:
    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    read_only: bool = False
    vars: tuple[str, ...] = ()
    scripts: Mapping[str, str] = field(default_factory=dict)  # script name -> text
    source: str = ""


class FileLike(Protocol):
    """What the renderer gives us: a path on the node, its bytes and mode."""

    @property
    def path(self) -> str: ...

    @property
    def content(self) -> bytes: ...

    @property
    def mode(self) -> int: ...


@dataclass(frozen=True)
class NodeFile:
    """A file to install on a node: exact bytes, mode, owner, and an optional check of the temp file.

    `validate` is an argv run on the node against the uploaded temp file before it replaces the
    target; the element `{tmp}` stands for the temp file's path.
    """

    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    owner: str = "0:0"
    validate: tuple[str, ...] = ()
    #: A path that, when it already holds exactly these bytes, means there is nothing to upload (a staged
    #: file that a later step already moved into place).
    done_if: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @classmethod
    def from_rendered(cls, f: FileLike, validate: Sequence[str] = ()) -> NodeFile:
        return cls(path=f.path, content=f.content, mode=f.mode, validate=tuple(validate))


# ---- loading -------------------------------------------------------------------------------------


def default_dir() -> Path:
    """playbooks/ as installed with the package (a symlink to the repo's playbooks/ in a checkout)."""
    return Path(str(resources.files("shimshift") / "data" / "playbooks"))


def load_playbook(path: Path, scripts_dir: Path | None = None) -> Playbook:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PlaybookError([Problem("", f"not valid YAML: {e}")], source=str(path)) from e
    except OSError as e:
        raise PlaybookError([Problem("", f"cannot read: {e}")], source=str(path)) from e
    return parse_playbook(raw, source=str(path), scripts_dir=scripts_dir or path.parent / "scripts")


def load_playbooks(directory: Path | None = None) -> dict[str, Playbook]:
    """Every playbooks/*.yaml, by playbook name."""
    directory = directory or default_dir()
    books = [load_playbook(p) for p in sorted(directory.glob("*.yaml"))]
    return {b.name: b for b in books}


def parse_playbook(raw: Any, *, source: str, scripts_dir: Path | None = None) -> Playbook:
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise PlaybookError(
            [Problem("", "a playbook is a mapping with `playbook` and `tasks`")], source=source
        )
    for key in sorted(set(raw) - _PLAYBOOK_KEYS):
        problems.append(Problem(str(key), f"unknown field; expected one of {sorted(_PLAYBOOK_KEYS)}"))
    name = raw.get("playbook")
    if not isinstance(name, str) or not name:
        problems.append(Problem("playbook", "the playbook's name (a non-empty string) is required"))
    variables = raw.get("vars", [])
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        problems.append(Problem("vars", "a list of variable names"))
        variables = []
    raw_tasks = raw.get("tasks")
    tasks: list[Task] = []
    scripts: dict[str, str] = {}
    if not isinstance(raw_tasks, list) or not raw_tasks:
        problems.append(Problem("tasks", "a non-empty list of tasks"))
        raw_tasks = []
    for i, t in enumerate(raw_tasks):
        task = _task(t, f"tasks[{i}]", problems)
        if task is not None:
            tasks.append(task)
            for action in (task.run, task.undo):
                if action is not None and action.script is not None and action.script not in scripts:
                    text = _script(action.script, scripts_dir, f"tasks[{i}] ({task.name})", problems)
                    if text is not None:
                        scripts[action.script] = text
    names = [t.name for t in tasks]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("tasks", f"task name {dup!r} is used twice; names identify tasks in status"))
    if problems:
        raise PlaybookError(problems, source=source)
    assert isinstance(name, str)
    return Playbook(
        name=name,
        tasks=tuple(tasks),
        description=str(raw.get("description", "")),
        read_only=bool(raw.get("readOnly", False)),
        vars=tuple(variables),
        scripts=scripts,
        source=source,
    )


def _task(raw: Any, where: str, problems: list[Problem]) -> Task | None:
    if not isinstance(raw, dict):
        problems.append(Problem(where, "a task is a mapping with `name` and `run`"))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{where}.name", "required, a non-empty string"))
        name = "?"
    where = f"{where} ({name})"
    for key in sorted(set(raw) - _TASK_KEYS):
        problems.append(Problem(f"{where}.{key}", f"unknown field; expected one of {sorted(_TASK_KEYS)}"))
    timeout = 60.0
    if "timeout" in raw:
        try:
            timeout = parse_duration(str(raw["timeout"]))
        except ValueError as e:
            problems.append(Problem(f"{where}.timeout", str(e)))
        if timeout <= 0:
            problems.append(Problem(f"{where}.timeout", "must be positive: every step is bounded in time"))
    when = raw.get("when")
    if when is not None:
        if not isinstance(when, str):
            problems.append(Problem(f"{where}.when", "a Jinja expression string"))
        else:
            try:
                _ENV.compile_expression(when)
            except jinja2.TemplateSyntaxError as e:
                problems.append(Problem(f"{where}.when", f"not a valid expression: {e}"))
    actions = {k: _action(raw[k], f"{where}.{k}", problems) for k in ACTIONS if k in raw}
    run = actions.get("run")
    if "run" not in raw:
        problems.append(Problem(f"{where}.run", "required: what the task does"))
    if run is None:
        return None
    return Task(
        name=name,
        run=run,
        timeout=timeout,
        undo=actions.get("undo"),
        when=when if isinstance(when, str) else None,
    )


def _action(raw: Any, where: str, problems: list[Problem]) -> Action | None:
    if isinstance(raw, list):
        raw = {"argv": raw}
    if not isinstance(raw, dict):
        problems.append(Problem(where, "an argv list, or a mapping with `argv`, `script`+`args` or `upload`"))
        return None
    for key in sorted(set(raw) - _ACTION_KEYS):
        problems.append(Problem(f"{where}.{key}", f"unknown field; expected one of {sorted(_ACTION_KEYS)}"))
    kinds = [k for k in ("argv", "script", "upload") if k in raw]
    if len(kinds) != 1 and kinds != ["script", "upload"]:
        problems.append(
            Problem(where, "exactly one of `argv`, `script` or `upload` (or `upload` with a `script`)")
        )
        return None
    if "args" in raw and "script" not in raw:
        problems.append(Problem(f"{where}.args", "`args` belongs to a `script` action"))
    argv_raw = raw.get("argv", raw.get("args", []))
    argv = _argv(argv_raw, f"{where}.{'argv' if 'argv' in raw else 'args'}", problems)
    if "argv" in raw and not argv:
        problems.append(Problem(f"{where}.argv", "must not be empty"))
    for key in ("script", "upload"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].isidentifier()):
            problems.append(Problem(f"{where}.{key}", "a name (letters, digits, underscores)"))
    return Action(
        argv=argv,
        script=raw.get("script"),
        upload=raw.get("upload"),
    )


def _argv(raw: Any, where: str, problems: list[Problem]) -> tuple[Arg, ...]:
    if not isinstance(raw, list):
        problems.append(Problem(where, "a list of strings (each rendered on its own with Jinja2)"))
        return ()
    out: list[Arg] = []
    for i, element in enumerate(raw):
        if isinstance(element, dict) and set(element) == {"each"} and isinstance(element["each"], str):
            out.append(Each(element["each"]))
        elif isinstance(element, str | int | float) and not isinstance(element, bool):
            text = str(element)
            try:
                _ENV.parse(text)
            except jinja2.TemplateSyntaxError as e:
                problems.append(Problem(f"{where}[{i}]", f"not a valid template: {e}"))
            out.append(text)
        else:
            problems.append(Problem(f"{where}[{i}]", "a string, a number, or {each: <list variable>}"))
    return tuple(out)


def _script(name: str, scripts_dir: Path | None, where: str, problems: list[Problem]) -> str | None:
    if scripts_dir is None:
        problems.append(Problem(where, f"script {name!r} needs a scripts directory"))
        return None
    try:
        return read_script(scripts_dir, name)
    except OSError:
        problems.append(Problem(where, f"script {name!r}: {scripts_dir / f'{name}.sh'} does not exist"))
        return None


def read_script(scripts_dir: Path, name: str) -> str:
    """Node script `name` from `scripts_dir`, with the shared helpers (lib.sh) in front of it."""
    text = (scripts_dir / f"{name}.sh").read_text()
    lib = scripts_dir / LIB_SCRIPT
    return (lib.read_text() + "\n" + text) if lib.is_file() else text


@cache
def node_script(name: str) -> str:
    """A shipped node script (playbooks/scripts/<name>.sh with lib.sh): values reach it only as
    arguments."""
    return read_script(default_dir() / "scripts", name)


# ---- rendering -----------------------------------------------------------------------------------


def render_argv(
    playbook: Playbook, task: Task, action: Action, variables: Mapping[str, Any]
) -> tuple[str, ...]:
    """The argv of one action: each element rendered on its own; a script becomes `/bin/sh -c`."""
    where = f"{playbook.name}: {task.name}"
    args: list[str] = []
    for element in action.argv:
        if isinstance(element, Each):
            items = variables.get(element.var)
            if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
                raise PlaybookError(
                    [Problem(where, f"{{each: {element.var}}} needs a list of strings")],
                    source=playbook.source,
                )
            args.extend(items)
        else:
            args.append(render_value(element, variables, where, playbook.source))
    for arg in args:
        if "\x00" in arg:
            raise PlaybookError([Problem(where, "an argument contains a NUL byte")], source=playbook.source)
    if action.script is not None:
        return ("/bin/sh", "-c", playbook.scripts[action.script], f"shimshift-{action.script}", *args)
    return tuple(args)


def render_value(template: str, variables: Mapping[str, Any], where: str = "", source: str = "") -> str:
    if "{" not in template:
        return template  # fast path: most elements are literals
    try:
        return _ENV.from_string(template).render(variables)
    except jinja2.UndefinedError as e:
        raise PlaybookError(
            [Problem(where, f"{e}; pass it in the playbook's variables")], source=source
        ) from e
    except jinja2.TemplateError as e:
        raise PlaybookError([Problem(where, str(e))], source=source) from e


def task_enabled(task: Task, variables: Mapping[str, Any], source: str = "") -> bool:
    if task.when is None:
        return True
    try:
        return bool(_ENV.compile_expression(task.when, undefined_to_none=False)(**variables))
    except jinja2.UndefinedError as e:
        raise PlaybookError([Problem(task.name, f"when: {e}")], source=source) from e


def missing_vars(playbook: Playbook, variables: Iterable[str]) -> tuple[str, ...]:
    given = set(variables)
    return tuple(v for v in playbook.vars if v not in given)


@cache
def shipped_playbook(name: str) -> Playbook:
    """playbooks/<name>.yaml as shipped with the package, loaded once."""
    return load_playbook(default_dir() / f"{name}.yaml")
