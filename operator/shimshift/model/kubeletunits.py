"""The kubelet's flags in its systemd units and drop-ins: which are on its command line, and the edit
that takes flags out of an admin's unit file. Pure.

Kubespray, hand-rolled and kops-like nodes keep kubelet flags in `kubelet.service` or its drop-ins
(`Environment="KUBELET_EXTRA_ARGS=--network-plugin=kubenet"`, or literally on `ExecStart=`). A flag
is read as systemd reads it: the unit file and then its drop-ins by file name (`unit_order`), only
the `[Service]` section, backslash continuations joined; an empty `ExecStart=` drops the command
lines before it; an `Environment=` variable counts only when a live `ExecStart=` uses it (`$VAR`), the
last assignment winning, an empty `Environment=` dropping the ones before it, and an
`EnvironmentFile=` that sets the same variable winning over it (systemd's rule). A flag that is not
on the command line is `live=False` with the reason.

Only files under /etc/systemd/system (the admin's) are edited; packaged units in /lib and /usr/lib
are the package's and a package upgrade would overwrite them. An edit replaces exactly the words it
changes: a flag on `ExecStart=` loses its word(s), an `Environment=` assignment that changes is
written again as one double-quoted word; every other byte stays. What the edit cannot do safely is
`unsafe` with the reason (a value that comes from a variable, an escape sequence it does not read)
and is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from shimshift.model.facts import KubeletFacts
from shimshift.model.unitlimits import unit_order

KUBELET_UNIT = "kubelet.service"
#: `UnitFlag.directive` of a flag set in a file a unit reads in EnvironmentFile=
ENV_FILE = "EnvironmentFile"
#: the admin's unit files, which the switch edits (a package owns /lib and /usr/lib)
EDITABLE_DIR = "/etc/systemd/system/"
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PREFIX = "-@:+!|"
#: a word as systemd splits them: double- or single-quoted strings, escapes and other non-blanks
_WORD = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|\\.|[^ \t"'\\])+""")
_BLANKS = re.compile(r"[ \t]*")
_SEGMENT = re.compile(r""""([^"]*)"|'([^']*)'|([^"']+)""")
#: a word the edit writes into ExecStart= unquoted (no specifier, variable, quote or escape)
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_./:@+,=-]+$")


class UnitEditError(ValueError):
    """The edit of a unit file did not come out as meant (the message says where)."""


def editable(path: str) -> bool:
    """The switch edits this unit file: it is the admin's, under /etc/systemd/system."""
    return path.startswith(EDITABLE_DIR)


def switch_edits(flag: UnitFlag) -> bool:
    """The switch edits the file `flag` is in: an admin's unit, not a packaged one, nor another file a
    unit reads in EnvironmentFile= (whatever its directory)."""
    return flag.directive != ENV_FILE and editable(flag.path)


@dataclass(frozen=True)
class UnitFlag:
    """One literal kubelet flag on a unit's `ExecStart=`, in an `Environment=` assignment, or in an
    assignment of a file a unit reads in `EnvironmentFile=` (then `path` is that file's)."""

    path: str
    line: int  # the (first physical) line of its directive, from 1
    directive: str  # "ExecStart", "Environment" or "EnvironmentFile"
    name: str  # without dashes
    value: str | None  # None: a bare flag
    variable: str = ""  # the Environment= variable it is in
    live: bool = True
    why_not_live: str = ""
    unsafe: str = ""  # why the switch cannot edit it ("" when it can)

    @property
    def shown(self) -> str:
        return f"--{self.name}" + ("" if self.value is None else f"={self.value}")


@dataclass(frozen=True)
class _Word:
    start: int  # offsets in the logical line
    end: int
    text: str  # unquoted
    unsafe: str = ""


@dataclass(frozen=True)
class _Line:
    start: int  # offsets in the file: the logical line's raw bytes, without its final newline
    end: int
    number: int
    text: str  # continuations joined, each `\`+newline one space
    offsets: Sequence[int]  # file offset of each character of `text`

    def at(self, i: int) -> int:
        """The file offset of character `i` of `text` (its end: the end of the line)."""
        return self.offsets[i] if i < len(self.offsets) else self.end


def _lines(text: str) -> Iterator[_Line]:
    """The logical lines of `text`: a physical line ending in `\\` continues on the next, the two
    characters one space."""
    pos, number = 0, 1
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    i = 0
    while i < len(raw):
        start, first = pos, number
        if not raw[i].endswith("\\") or i + 1 >= len(raw):
            line = raw[i]
            yield _Line(start, start + len(line), first, line, range(start, start + len(line)))
            pos += len(line) + 1
            number += 1
            i += 1
            continue
        chars: list[str] = []
        offsets: list[int] = []
        while i < len(raw):
            line = raw[i]
            continued = line.endswith("\\") and i + 1 < len(raw)
            body = line[:-1] if continued else line
            chars.append(body)
            offsets.extend(range(pos, pos + len(body)))
            if continued:
                chars.append(" ")
                offsets.append(pos + len(body))  # the backslash
            pos += len(line) + 1
            number += 1
            i += 1
            if not continued:
                break
        yield _Line(start, pos - 1, first, "".join(chars), tuple(offsets))


def _words(s: str, begin: int) -> list[_Word]:
    """systemd's word splitting (extract_first_word with quotes and C escapes) from `begin`: each word's
    span and unquoted text; escapes other than \\\\, \\" and \\' are not read (`unsafe`)."""
    fast: list[_Word] = []
    for m in _WORD.finditer(s, begin):  # quoted strings kept whole; a word without quote or escape as is
        word = m.group(0)
        if "\\" not in word and ('"' in word or "'" in word):  # quotes, no escape: the quotes go
            fast.append(_Word(m.start(), m.end(), "".join(a or b or c for a, b, c in _SEGMENT.findall(word))))
        elif "\\" in word:
            one = _slow_words(word, 0)
            if len(one) != 1 or one[0].end != len(word) or one[0].unsafe:
                return _slow_words(s, begin)
            fast.append(_Word(m.start(), m.end(), one[0].text, one[0].unsafe))
        else:
            fast.append(_Word(m.start(), m.end(), word))
    if all(_BLANKS.fullmatch(s, a, b) for a, b in _gaps(fast, begin, len(s))):
        return fast
    return _slow_words(s, begin)


def _gaps(words: list[_Word], begin: int, end: int) -> Iterator[tuple[int, int]]:
    at = begin
    for w in words:
        yield at, w.start
        at = w.end
    yield at, end


def _slow_words(s: str, begin: int) -> list[_Word]:
    out: list[_Word] = []
    i, n = begin, len(s)
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return out
        start, buf, quote, unsafe = i, [], "", ""
        while i < n and (quote or s[i] not in " \t"):
            c = s[i]
            if c == "\\":
                nxt = s[i + 1] if i + 1 < n else ""
                if nxt in "\\\"'":
                    buf.append(nxt)
                    i += 2
                    continue
                unsafe = unsafe or f"the escape sequence \\{nxt} is not read by shimshift"
                buf.append(c)
                i += 1
                continue
            if quote and c == quote:
                quote = ""
            elif not quote and c in "\"'":
                quote = c
            else:
                buf.append(c)
            i += 1
        if quote:
            unsafe = unsafe or f"an unterminated {quote} quote"
        out.append(_Word(start, i, "".join(buf), unsafe))


@dataclass(frozen=True)
class _Directive:
    line: _Line
    key: str
    value_at: int  # where the value starts in line.text


def _directives(text: str) -> Iterator[_Directive]:
    section = ""
    for line in _lines(text):
        stripped = line.text.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        key, eq, _ = line.text.partition("=")
        if eq and section == "Service":
            at = len(key) + 1
            while at < len(line.text) and line.text[at] in " \t":
                at += 1
            yield _Directive(line, key.strip(), at)


@dataclass(frozen=True)
class _Token:
    """One flag in a value: its words (1, or 2 for `--name value`), name, value."""

    words: tuple[int, ...]
    name: str
    value: str | None
    unsafe: str = ""


def _tokens(texts: list[str], exec_line: bool) -> list[_Token]:
    """The flags among `texts` (the words of an ExecStart= line, or of an Environment= value split on
    whitespace), as the kubelet's flag parser reads them (`--name=value`, `--name value`, `--name`)."""
    out: list[_Token] = []
    i = 0
    while i < len(texts):
        t = texts[i]
        if not t.startswith("--") or len(t) < 3:
            i += 1
            continue
        name, eq, value = t[2:].partition("=")
        words: tuple[int, ...] = (i,)
        unsafe = ""
        val: str | None = value if eq else None
        if not eq and i + 1 < len(texts) and not texts[i + 1].startswith("-"):
            val, words = texts[i + 1], (i, i + 1)
        if exec_line and val is not None and "$" in val:
            unsafe = f"its value {val} comes from a variable set elsewhere"
        if exec_line and "%" in t:
            unsafe = unsafe or "it holds a systemd specifier (%)"
        out.append(_Token(words, name, val, unsafe))
        i = words[-1] + 1
    return out


def _exec(d: _Directive) -> tuple[list[_Word], list[_Token]]:
    """An ExecStart= line's words (after its prefixes) and flags."""
    at = d.value_at
    while at < len(d.line.text) and d.line.text[at] in _PREFIX:
        at += 1
    words = _words(d.line.text, at)
    tokens = _tokens([w.text for w in words], exec_line=True)
    return words, [
        replace(t, unsafe=t.unsafe or next((words[k].unsafe for k in t.words if words[k].unsafe), ""))
        for t in tokens
    ]


def _assignments(d: _Directive) -> Iterator[tuple[_Word, str, list[str], list[_Token]]]:
    """An Environment= line's assignments: word, variable, its value's parts, its flags."""
    for w in _words(d.line.text, d.value_at):
        name, eq, value = w.text.partition("=")
        if eq and _NAME.match(name):
            parts = value.split()
            yield w, name, parts, [replace(t, unsafe=t.unsafe or w.unsafe) for t in _tokens(parts, False)]


def _flags_of(path: str, text: str) -> Iterator[tuple[_Directive, list[UnitFlag]]]:
    for d in _directives(text):
        if d.key == "ExecStart":
            _, tokens = _exec(d)
            yield (
                d,
                [UnitFlag(path, d.line.number, d.key, t.name, t.value, "", unsafe=t.unsafe) for t in tokens],
            )
        elif d.key == "Environment":
            yield (
                d,
                [
                    UnitFlag(path, d.line.number, d.key, t.name, t.value, name, unsafe=t.unsafe)
                    for _, name, _, tokens in _assignments(d)
                    for t in tokens
                ],
            )
        elif d.key == "EnvironmentFile":
            yield d, []


def _env_assignments(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, name, value) of each assignment of an EnvironmentFile (`NAME=...`, `export
    NAME=...`), the value stripped."""
    for number, line in enumerate(text.splitlines(), 1):
        name, eq, value = line.strip().removeprefix("export ").partition("=")
        if eq and _NAME.match(name.strip()):
            yield number, name.strip(), value.strip()


def _env_names(text: str) -> set[str]:
    """The names an EnvironmentFile assigns."""
    return {name for _, name, _ in _env_assignments(text)}


def kubelet_unit_flags(
    units: Mapping[str, str],
    env_files: Mapping[str, str] | None = None,
    other_env_files: Mapping[str, str] | None = None,
) -> tuple[UnitFlag, ...]:
    """Every literal kubelet flag of `units` (path -> text), in systemd's order, each with whether it
    is on the kubelet's command line; `env_files`: the texts of the EnvironmentFiles it may read (the
    kubelet's flags files), whose variables win over `Environment=`; `other_env_files`: the other
    files its units read in EnvironmentFile= (`KubeletFacts.env_files`), whose flags are listed too
    (directive `ENV_FILE`). Parsed once per distinct set of files (look-alike nodes share them)."""
    if not units:
        return ()
    return _unit_flags(
        tuple(sorted(units.items())),
        tuple(sorted((env_files or {}).items())),
        tuple(sorted((other_env_files or {}).items())),
    )


def _env_file_flags(path: str, text: str) -> Iterator[tuple[str, UnitFlag]]:
    """(variable, flag) for each flag of an EnvironmentFile's assignments (the value unquoted as
    systemd reads it), each flag marked not live when a later line of the file assigns its variable
    again."""
    assignments = list(_env_assignments(text))
    last = {name: number for number, name, _ in assignments}
    for number, name, value in assignments:
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        for t in _tokens(value.split(), False):
            flag = UnitFlag(path, number, ENV_FILE, t.name, t.value, name)
            if last[name] != number:
                flag = replace(flag, live=False, why_not_live=f"a later {name}= in {path} wins")
            yield name, flag


@lru_cache(maxsize=1024)
def _unit_flags(
    unit_items: tuple[tuple[str, str], ...],
    env_items: tuple[tuple[str, str], ...],
    other_items: tuple[tuple[str, str], ...] = (),
) -> tuple[UnitFlag, ...]:
    units, env_files, others = dict(unit_items), dict(env_items), dict(other_items)
    order = unit_order(units, KUBELET_UNIT)
    flags: list[UnitFlag] = []
    execs: list[int] = []  # the flags of the ExecStart= lines not reset
    exec_text: list[str] = []
    env: dict[str, list[int]] = {}  # variable -> the flags of its last assignment
    files: list[str] = []  # the EnvironmentFile= paths
    any_exec = False

    def dead(indexes: list[int], why: str) -> None:
        for i in indexes:
            if flags[i].live:
                flags[i] = replace(flags[i], live=False, why_not_live=why)

    for path in order:
        for d, found in _flags_of(path, units[path]):
            value = d.line.text[d.value_at :].strip()
            first = len(flags)
            flags += found
            here = list(range(first, len(flags)))
            if d.key == "ExecStart":
                if not value:
                    dead(execs, f"a later ExecStart= in {path} resets it")
                    execs, exec_text = [], []
                    continue
                any_exec = True
                execs += here
                exec_text.append(value)
            elif d.key == "EnvironmentFile":
                files = (
                    []
                    if not value
                    else files + [w.text.removeprefix("-") for w in _words(d.line.text, d.value_at)]
                )
            elif not value:
                dead([i for idx in env.values() for i in idx], f"a later Environment= in {path} resets it")
                env = {}
            else:
                for _, name, _, _ in _assignments(d):
                    dead(env.get(name, []), f"a later Environment={name}=... in {path} wins")
                    env[name] = [i for i in here if flags[i].variable == name]
    used = {m for text in exec_text for m in _VAR.findall(text)}
    readable = {**others, **env_files}
    from_file = {name: f for f in files if f in readable for name in _env_names(readable[f])}
    for name, idx in env.items():
        if name in from_file:
            dead(idx, f"EnvironmentFile={from_file[name]} sets {name} too, which systemd lets win")
        elif any_exec and name not in used:
            dead(idx, f"no ExecStart= of the kubelet uses ${name}")
    # the flags of the other EnvironmentFiles: on the command line when an ExecStart= uses their
    # variable and no later file (or later line of the same file) sets it again
    for path in dict.fromkeys(f for f in files if f in others):
        for name, flag in _env_file_flags(path, others[path]):
            if not flag.live:
                pass  # a later line of the same file wins
            elif from_file.get(name) != path:
                why = f"EnvironmentFile={from_file.get(name, path)} sets {name} again, which wins"
                flag = replace(flag, live=False, why_not_live=why)
            elif any_exec and name not in used:
                flag = replace(flag, live=False, why_not_live=f"no ExecStart= of the kubelet uses ${name}")
            flags.append(flag)
    rest = [
        replace(f, live=False, why_not_live=_shadowed(p, order))
        for p in sorted(set(units) - set(order))
        for _, found in _flags_of(p, units[p])
        for f in found
    ]
    return (*flags, *rest)


def _shadowed(path: str, order: list[str]) -> str:
    base = path.rsplit("/", 1)[-1]
    winner = next((p for p in order if p.rsplit("/", 1)[-1] == base), None)
    return f"{winner} replaces it" if winner else "systemd does not read this file for the kubelet"


def live_unit_flags(
    units: Mapping[str, str], env_files: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """The (name, value) flags the kubelet's units put on its command line, in order."""
    return tuple((f.name, f.value or "") for f in kubelet_unit_flags(units, env_files) if f.live)


def kubelet_facts_unit_flags(kubelet: KubeletFacts) -> tuple[UnitFlag, ...]:
    """`kubelet_unit_flags` of the node's kubelet: its units, flags files and other EnvironmentFiles."""
    return kubelet_unit_flags(kubelet.units, kubelet.files, kubelet.env_files)


def live_kubelet_unit_flags(kubelet: KubeletFacts) -> tuple[UnitFlag, ...]:
    """The flags the node's kubelet units put on its command line."""
    return tuple(f for f in kubelet_facts_unit_flags(kubelet) if f.live)


def command_flags(kubelet: KubeletFacts) -> tuple[tuple[str, str], ...]:
    """The kubelet's flags wherever they are set: its flags files (`kubelet.flags`), then the literal
    flags its systemd units put on its command line. What a flag is translated into (kubenet's
    network, the CNI directories, the sandbox image) is read from these, so a flag in a drop-in is
    carried as the same flag in a flags file is."""
    units = live_kubelet_unit_flags(kubelet)
    return kubelet.flags + tuple((f.name, f.value or "") for f in units) if units else kubelet.flags


#: what the switch does with one flag: (kept, its new value)
Decide = Callable[[str, str | None], tuple[bool, str | None]]


@dataclass(frozen=True)
class UnitEdit:
    after: str
    #: (flag as it was, what the switch did: "removed" or the new value) per changed flag
    changed: tuple[tuple[UnitFlag, str], ...]


def edit_unit(path: str, text: str, decide: Decide) -> UnitEdit:
    """`text` with every flag `decide` removes or changes taken out or rewritten; an unsafe flag is left
    as it is. The result is parsed back and checked before it is returned."""
    edits: list[tuple[int, int, str]] = []  # file offsets [a, b) and their replacement
    changed: list[tuple[UnitFlag, str]] = []
    expected: list[tuple[str, str, str, str | None]] = []
    for d in _directives(text):
        line = d.line

        if d.key == "ExecStart":
            words, tokens = _exec(d)
            for t in tokens:
                flag = UnitFlag(path, line.number, d.key, t.name, t.value, unsafe=t.unsafe)
                keep, new = (True, t.value) if t.unsafe else decide(t.name, t.value)
                if keep and new == t.value:
                    expected.append((d.key, "", t.name, t.value))
                    continue
                first, last = t.words[0], t.words[-1]
                if not keep:  # the word(s) and the blanks before them
                    a = words[first - 1].end if first > 0 else words[first].start
                    b = words[last].end if first > 0 or last + 1 >= len(words) else words[last + 1].start
                    edits.append((line.at(a), line.at(b), ""))
                    changed.append((flag, "removed"))
                    continue
                if new is None or not _PLAIN_WORD.match(new):
                    raise UnitEditError(
                        f"{path} line {line.number}: cannot write --{t.name}={new} on ExecStart="
                    )
                word = f"--{t.name}={new}" if len(t.words) == 1 else new
                edits.append((line.at(words[last].start), line.at(words[last].end), word))
                changed.append((flag, new))
                expected.append((d.key, "", t.name, new))
        elif d.key == "Environment":
            for w, name, parts, tokens in _assignments(d):
                out: list[str] = list(parts)
                dirty = False
                for t in tokens:
                    flag = UnitFlag(path, line.number, d.key, t.name, t.value, name, unsafe=t.unsafe)
                    keep, new = (True, t.value) if t.unsafe else decide(t.name, t.value)
                    if keep and new == t.value:
                        expected.append((d.key, name, t.name, t.value))
                        continue
                    dirty = True
                    if not keep:
                        for k in t.words:
                            out[k] = ""
                        changed.append((flag, "removed"))
                        continue
                    if new is None or any(c.isspace() for c in new):
                        raise UnitEditError(f"{path} line {line.number}: cannot write --{t.name}={new}")
                    if len(t.words) == 1:
                        out[t.words[0]] = f"--{t.name}={new}"
                    else:
                        out[t.words[1]] = new
                    changed.append((flag, new))
                    expected.append((d.key, name, t.name, new))
                if dirty:
                    joined = " ".join(p for p in out if p)
                    quoted = '"' + f"{name}={joined}".replace("\\", "\\\\").replace('"', '\\"') + '"'
                    edits.append((line.at(w.start), line.at(w.end), quoted))
    after = text
    for a, b, new_text in sorted(edits, reverse=True):
        after = after[:a] + new_text + after[b:]
    got = [(d.key, f.variable, f.name, f.value) for d, found in _flags_of(path, after) for f in found]
    if got != expected:
        raise UnitEditError(f"{path}: the edit did not come out as meant (internal error)")
    return UnitEdit(after, tuple(changed))


def live_exec_unit(units: Mapping[str, str]) -> str | None:
    """The unit file whose `ExecStart=` is the kubelet's command line (the last one not reset)."""
    found = None
    for path in unit_order(units, KUBELET_UNIT):
        for d in _directives(units[path]):
            if d.key == "ExecStart":
                found = path if d.line.text[d.value_at :].strip() else None
    return found


def add_exec_flags(path: str, text: str, flags: list[tuple[str, str]]) -> str:
    """`text` with `flags` (`--name=value` each) added at the end of its last `ExecStart=` command line,
    every other byte as it was; checked by parsing the result back."""
    last = None
    for d in _directives(text):
        if d.key == "ExecStart" and d.line.text[d.value_at :].strip():
            last = d
    if last is None:
        raise UnitEditError(f"{path} has no ExecStart= command line to add {flags_shown(flags)} to")
    words = [f"--{n}={v}" for n, v in flags]
    if not all(_PLAIN_WORD.match(w) for w in words):
        raise UnitEditError(f"{path}: cannot write {flags_shown(flags)} on ExecStart=")
    end = last.line.end
    while end > last.line.start and text[end - 1] in " \t":
        end -= 1
    after = text[:end] + "".join(" " + w for w in words) + text[end:]
    before_flags = [(f.name, f.value) for _, found in _flags_of(path, text) for f in found]
    got = [(f.name, f.value) for _, found in _flags_of(path, after) for f in found]
    if sorted(got, key=repr) != sorted([*before_flags, *flags], key=repr):
        raise UnitEditError(f"{path}: adding {flags_shown(flags)} did not come out as meant (internal error)")
    return after


def flags_shown(flags: list[tuple[str, str]]) -> str:
    return " ".join(f"--{n}={v}" for n, v in flags)
