"""Credentials in config.toml as people see them: every credential-bearing value as a short hash.

A node's current config.toml may hold registry credentials (schema 2 `registry.configs.<host>.auth`
with `username`/`password`/`auth`/`identitytoken`, `registry.auths`, an `Authorization` header; the
same under `io.containerd.cri.v1.images` in schema 3). Plans, reports and `shimshift render` show
that file's diff and its settings, so everything shown goes through here first.
A value is credential-bearing when its key, or a table above it, is named like a credential
(`CREDENTIAL_WORDS`). It is shown as `<redacted sha256:1a2b3c4d>`: the first 8 hex digits of the
sha256 of the value (`printf %s VALUE | sha256sum`), so an admin can tell equal values apart from
different ones. 32 bits do not hide a guessable password from someone who tries candidates; they
are for comparing, not for protecting a weak password.

Only what is shown is redacted: the files written to a node are never passed through here. Pure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items

#: A key containing one of these (any case) holds a credential, and so does everything under it.
CREDENTIAL_WORDS = ("password", "passwd", "token", "secret", "auth")

# `# password = "x"` and `# auth: x` in a comment: the value after the separator, to the line's end.
_COMMENTED = re.compile(
    r"(?i)(#.*?\b[\w.\"-]*(?:" + "|".join(CREDENTIAL_WORDS) + r")[\w\"-]*\s*[=:]\s*)(\S.*?)\s*$"
)
# https://user:password@host: the password part of a URL's userinfo.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:\"']*:)([^/@\s\"']+)(@)")


def is_credential_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def marker(value: Any) -> str:
    """`<redacted sha256:xxxxxxxx>` for a value (a string hashes as itself, others as sorted JSON)."""
    raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return f"<redacted sha256:{hashlib.sha256(raw.encode()).hexdigest()[:8]}>"


def redact_text(text: str) -> str:
    """Free text (a URL, a message): the password of any URL userinfo redacted."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: m.group(1) + marker(m.group(2)) + m.group(3), text)


def redact_table(value: Any, under_credential: bool = False) -> Any:
    """A copy of a plain TOML value (tomllib's dicts and lists) with every credential leaf a marker."""
    if isinstance(value, Mapping):
        return {k: redact_table(v, under_credential or is_credential_key(str(k))) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        return [redact_table(v, under_credential) for v in value]
    if under_credential:
        return marker(value)
    return redact_text(value) if isinstance(value, str) else value


def credential_values(value: Any, path: str = "", under: bool = False) -> Iterator[tuple[str, Any]]:
    """(dotted key path, value) of every credential leaf of a plain TOML table."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            part = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key + '"'
            yield from credential_values(
                v, f"{path}.{part}" if path else part, under or is_credential_key(key)
            )
    elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        for i, v in enumerate(value):
            yield from credential_values(v, f"{path}[{i}]", under)
    elif under:
        yield path, value


def _redact_doc(container: Any, under_credential: bool) -> None:
    """Replace credential leaves of a tomlkit container in place (its layout and comments stay)."""
    for key in list(container.keys()):
        item = container[key]
        secret = under_credential or is_credential_key(str(key))
        if isinstance(item, Mapping):
            _redact_doc(item, secret)
        elif isinstance(item, list) and any(isinstance(v, Mapping) for v in item):
            for entry in item:
                if isinstance(entry, Mapping):
                    _redact_doc(entry, secret)
        elif secret:
            plain = item.unwrap() if isinstance(item, tomlkit.items.Item) else item
            container[key] = tomlkit.string(marker(plain))


def _commented(match: re.Match[str]) -> str:
    value = match.group(2)
    if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return match.group(1) + marker(value)


def redact_toml(text: str) -> str:
    """config.toml (or hosts.toml) text as shown to people: layout kept, credentials as markers.

    Text that cannot be parsed is not shown at all (nothing could say which parts are credentials).
    """
    lowered = text.lower()
    if not any(w in lowered for w in CREDENTIAL_WORDS) and "@" not in text:
        return text
    try:
        doc = tomlkit.parse(text)
        _redact_doc(doc, False)
        shown = tomlkit.dumps(doc)
    except (tomlkit.exceptions.TOMLKitError, ValueError, RecursionError):
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"# (not shown: not parseable as TOML, so its credentials cannot be told; sha256 {digest})\n"
    lines = [_COMMENTED.sub(_commented, line) for line in shown.split("\n")]
    return redact_text("\n".join(lines))
