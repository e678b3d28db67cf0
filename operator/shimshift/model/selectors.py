"""Label selector strings as kubectl takes them (`app=web,tier!=db,env in (a,b),!legacy`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shimshift.model.spec import LabelRequirement, LabelSelector

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")

SYNTAX_HELP = "write e.g. app=web,tier!=cache,env in (prod,stage),!legacy"


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a selector string; raises ValueError naming the bad clause and the accepted syntax."""
    if not text.strip():
        return LabelSelector()
    labels: dict[str, str] = {}
    reqs: list[LabelRequirement] = []
    for clause in _split_top_level(text):
        if m := _SET.match(clause):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            if not values or not all(_VALUE_RE.match(v) for v in values):
                raise ValueError(f"bad value list in {clause.strip()!r}; {SYNTAX_HELP}")
            reqs.append(LabelRequirement(m.group(1), "In" if m.group(3) == "in" else "NotIn", values))
        elif m := _EQ.match(clause):
            key, op, value = m.group(1), m.group(3), m.group(4)
            if op == "!=":
                reqs.append(LabelRequirement(key, "NotIn", (value,)))
            else:
                labels[key] = value
        elif m := _EXISTS.match(clause):
            reqs.append(LabelRequirement(m.group(2), "DoesNotExist" if m.group(1) else "Exists"))
        else:
            raise ValueError(f"cannot parse {clause.strip()!r}; {SYNTAX_HELP}")
    return LabelSelector(match_labels=labels, match_expressions=tuple(reqs))


def selector_matches(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    return selector.matches(labels or {})
