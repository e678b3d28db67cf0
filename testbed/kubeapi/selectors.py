"""Label and field selectors, as the API server parses and applies them on LIST and WATCH.

Label selectors support every operator of k8s.io/apimachinery/pkg/labels (``=``, ``==``, ``!=``,
``in``, ``notin``, existence, ``!`` non-existence, ``>`` and ``<``). Field selectors support
``=``, ``==`` and ``!=``; over HTTP only the field labels the real API server supports for that
resource are accepted (``FIELD_LABELS``; others are a 400, as on a cluster), so code that relies
on an unsupported selector fails here too. A missing field compares as the empty string, which is
how ``involvedObject.namespace=`` matches cluster-scoped objects' Events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from .errors import bad_request

Requirement = Callable[[Mapping[str, str]], bool]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _set_values(text: str, term: str) -> frozenset[str]:
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise bad_request(f"unable to parse requirement: found '{text}', expected: '('")
    return frozenset(v.strip() for v in text[1:-1].split(",") if v.strip())


def _label_requirement(term: str) -> Requirement:
    lowered = f" {term} "
    for op in (" notin ", " in "):
        idx = lowered.find(op)
        if idx >= 0:
            key = lowered[:idx].strip()
            values = _set_values(lowered[idx + len(op) :], term)
            if op == " in ":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
    for op in ("==", "!=", "=", ">", "<"):
        if op in term:
            key, _, value = term.partition(op)
            key, value = key.strip(), value.strip()
            if op in ("==", "="):
                return lambda labels: labels.get(key) == value
            if op == "!=":
                return lambda labels: labels.get(key) != value
            try:
                bound = int(value)
            except ValueError as e:
                raise bad_request(f"unable to parse requirement: invalid integer value {value!r}") from e

            def compare(labels: Mapping[str, str], key: str = key, op: str = op, bound: int = bound) -> bool:
                try:
                    actual = int(labels[key])
                except (KeyError, ValueError):
                    return False
                return actual > bound if op == ">" else actual < bound

            return compare
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    key = term.strip()
    return lambda labels: key in labels


def _label_equals(key: str, value: str) -> Requirement:
    return lambda labels: labels.get(key) == value


def _struct_requirement(key: str, op: str, values: frozenset[str]) -> Requirement:
    """One requirement of a metav1.LabelSelector: ``In``, ``NotIn``, ``Exists`` or ``DoesNotExist``."""
    if op == "In":
        return lambda labels: labels.get(key) in values
    if op == "NotIn":
        return lambda labels: labels.get(key) not in values
    if op == "Exists":
        return lambda labels: key in labels
    return lambda labels: key not in labels


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls(())
        return cls(tuple(_label_requirement(t) for t in _split_top_level(text)))

    @overload
    @classmethod
    def from_struct(cls, selector: Mapping[str, Any]) -> LabelSelector: ...
    @overload
    @classmethod
    def from_struct(cls, selector: Mapping[str, Any] | None) -> LabelSelector | None: ...
    @classmethod
    def from_struct(cls, selector: Mapping[str, Any] | None) -> LabelSelector | None:
        """A metav1.LabelSelector; ``None`` (no selector) selects nothing, ``{}`` selects everything."""
        if selector is None:
            return None
        reqs: list[Requirement] = []
        for key, value in (selector.get("matchLabels") or {}).items():
            reqs.append(_label_equals(key, value))
        for expr in selector.get("matchExpressions") or []:
            key, op, values = expr["key"], expr["operator"], frozenset(expr.get("values") or ())
            if op in ("In", "NotIn", "Exists", "DoesNotExist"):
                reqs.append(_struct_requirement(key, op, values))
        return cls(tuple(reqs))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(req(labels) for req in self.requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldTerm:
    path: str
    value: str
    equal: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        if self.path == "spec.unschedulable" and actual == "":
            actual = "false"
        return (actual == self.value) == self.equal


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...]

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        if not text:
            return cls(())
        terms = []
        for raw in _split_top_level(text):
            for op, equal in (("!=", False), ("==", True), ("=", True)):
                if op in raw:
                    path, _, value = raw.partition(op)
                    terms.append(FieldTerm(path.strip(), value.strip().replace("\\,", ","), equal))
                    break
            else:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        return cls(tuple(terms))

    @property
    def empty(self) -> bool:
        return not self.terms

    def equality(self, path: str) -> str | None:
        for term in self.terms:
            if term.path == path and term.equal:
                return term.value
        return None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(term.matches(obj) for term in self.terms)


_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
# Field labels beyond metadata.name / metadata.namespace, per (group, plural), from the registries'
# GetAttrs/fieldLabelConversion functions (pkg/apis/core/v1/conversion.go and friends).
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "secrets"): frozenset({"type"}),
    ("", "events"): _EVENT_FIELDS,
    ("events.k8s.io", "events"): frozenset(
        {
            "reason",
            "regarding.kind",
            "regarding.name",
            "regarding.namespace",
            "regarding.uid",
            "reportingController",
            "type",
        }
    ),
    ("", "replicationcontrollers"): frozenset({"status.replicas"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
}


def check_field_labels(
    selector: FieldSelector, gk: tuple[str, str], extra: frozenset[str] = frozenset()
) -> None:
    allowed = FIELD_LABELS.get(gk, frozenset()) | extra | {"metadata.name", "metadata.namespace"}
    for term in selector.terms:
        if term.path not in allowed:
            raise bad_request(f"field label not supported: {term.path}")
