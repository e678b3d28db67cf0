"""What a PromQL expression names: metric names and the label matchers on each, for the chart's checks.

Not a PromQL parser: enough of its lexical shape (strings, `{...}` matchers, `[...]` ranges,
`by (...)` groupings, `name(` calls) to list the series selectors of the expressions this chart ships.
promtool parses them for real in tests/integration/chart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w:$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]


def selectors(expr: str) -> list[Selector]:
    """The series selectors of `expr`: each metric name with the label matchers written on it."""
    matchers: list[tuple[Matcher, ...]] = []

    def keep_matchers(match: re.Match[str]) -> str:
        matchers.append(tuple(Matcher(*m.groups()) for m in _MATCHER.finditer(match.group(0))))
        return f"{{#{len(matchers) - 1}}}"

    text = re.sub(r"\{[^}]*\}", keep_matchers, expr)
    text = _RANGE.sub("", _STRING.sub('""', text))
    text = _GROUPING.sub("", text)
    found = []
    for match in _SELECTOR.finditer(text):
        name, braces = match.group(1), match.group(2)
        if name in KEYWORDS or (text[match.end() :].lstrip().startswith("(") and not braces):
            continue  # a keyword or a function call
        found.append(Selector(name, matchers[int(braces[2:-1])] if braces else ()))
    return found


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr)}
