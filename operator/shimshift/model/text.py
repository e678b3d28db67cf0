"""Text from nodes and the cluster, made safe to show on a terminal.

Node facts, names and error messages end up in reports that admins read in a terminal (`kubectl get
cm <name>-plan -o jsonpath=...`, `shimshift plan`, `shimshift render`). A raw ESC starts a control
sequence there (OSC 8 makes a disguised hyperlink, CSI clears the screen or hides text), and bidi
overrides reorder what is shown. `visible()` turns each such character into a
visible escape (`\\x1b`, `\\u202e`), so the text stays readable and inert. Pure.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: C0 controls, DEL, C1 controls, Unicode line/paragraph separators and the bidi controls.
UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"


@lru_cache(maxsize=8)
def _pattern(keep: str) -> re.Pattern[str]:
    unsafe = re.compile(f"[{UNSAFE}]")
    if not keep:
        return unsafe
    return re.compile(f"(?![{re.escape(keep)}])[{UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep: str = "") -> str:
    """`text` with every control and bidi character but those in `keep` (e.g. "\\n") as a visible
    escape: ESC becomes the four characters `\\x1b`, U+202E the six characters `\\u202e`."""
    if text.isprintable():  # the common case, and much cheaper than the substitution
        return text
    return _pattern(keep).sub(_escape, text)
