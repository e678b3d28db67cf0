"""Property tests: any spec, arbitrary or mutated from a valid one, is either accepted or rejected with
problems that name a field path; nothing crashes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shimshift.model import ValidationError, check_nodemigration, parse_nodemigration
from shimshift.model.migration import version_schema
from shimshift.model.schema import apply_defaults, validate
from shimshift.resources import load_crd
from tests.unit.conftest import minimal_manifest

CRD = load_crd()
EXAMPLE = minimal_manifest(
    mode="Migrate",
    rollout={"maxUnavailable": "50%", "maxFailures": 1, "pauseBetweenNodes": "30s"},
    drain={"timeout": "5m", "gracePeriodSeconds": 30, "podSelector": "app=web"},
    containerd={"registries": [{"host": "docker.io", "mirrors": ["https://m.example.com"]}]},
    ssh={"privateKeySecretRef": {"name": "k"}, "knownHostsSecretRef": {"name": "h"}},
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [
        "mode",
        "nodeSelector",
        "nodeNames",
        "rollout",
        "drain",
        "containerd",
        "kubelet",
        "images",
        "ssh",
        "docker",
        "rollback",
        "maxUnavailable",
        "maxUnavailablePerZone",
        "zoneLabel",
        "timeout",
        "registries",
        "mirrors",
        "host",
        "caBundle",
        "user",
        "port",
        "extraConfig",
        "configVersion",
        "gracePeriodSeconds",
        "podSelector",
        "bogus",
    ]
)


def assert_accepted_or_rejected_with_paths(body: Any) -> None:
    try:
        nm = parse_nodemigration(body, CRD)
    except ValidationError as e:
        assert e.problems, "a rejection must carry at least one problem"
        for problem in e.problems:
            assert problem.message, problem
            assert problem.path == "" or problem.path.split(".")[0].split("[")[0] in (
                "apiVersion",
                "kind",
                "metadata",
                "spec",
            ), problem
    else:
        assert nm.name
        # the typed spec can always be produced and re-validated from what the API server would store
        _, again = check_nodemigration({**body, "spec": dict(nm.raw_spec)}, CRD)
        assert again == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(spec=st.dictionaries(FIELD_NAMES, json_values, max_size=6))
def test_arbitrary_specs_are_accepted_or_rejected_by_field_path(spec: dict[str, Any]) -> None:
    assert_accepted_or_rejected_with_paths({**minimal_manifest(), "spec": spec})


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and depth < 5:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["descend", "replace", "delete", "add"]))
        out = copy.deepcopy(value)
        if action == "descend":
            out[key] = _mutate(draw, out[key], depth + 1)
        elif action == "replace":
            out[key] = draw(json_values)
        elif action == "delete":
            del out[key]
        else:
            out[draw(FIELD_NAMES)] = draw(json_values)
        return out
    if isinstance(value, list) and value and depth < 5:
        out_list = copy.deepcopy(value)
        i = draw(st.integers(0, len(value) - 1))
        out_list[i] = _mutate(draw, out_list[i], depth + 1)
        return out_list
    return draw(json_values)


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 3))):
        body["spec"] = _mutate(draw, body["spec"])
    return body


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=mutated_examples())
def test_mutated_valid_specs_are_accepted_or_rejected_by_field_path(body: dict[str, Any]) -> None:
    assert_accepted_or_rejected_with_paths(body)


@settings(max_examples=200, deadline=None)
@given(body=json_values)
def test_any_yaml_document_is_rejected_cleanly_unless_it_is_a_nodemigration(body: Any) -> None:
    assert_accepted_or_rejected_with_paths(body)


#: A spec that sets every field a semantic check reads, so mutations reach each check with wrong types.
RICH = minimal_manifest(
    mode="Migrate",
    nodeSelector={"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]},
    rollout={"maxUnavailable": "50%", "pauseBetweenNodes": "30s"},
    drain={"timeout": "5m", "gracePeriodSeconds": 30, "podSelector": "app=web"},
    containerd={
        "configVersion": "auto",
        "extraConfig": "[plugins]\n",
        "allowUnsafe": ["HostPath"],
        "registries": [
            {
                "host": "docker.io",
                "mirrors": ["https://m.example.com"],
                "caSecretRef": {"name": "ssh", "key": "ca.crt"},
                "caBundle": "x",
                "plainHTTP": True,
                "skipVerify": True,
            }
        ],
    },
    kubelet={"runtimeEndpoint": "unix:///run/containerd/containerd.sock"},
    ssh={"privateKeySecretRef": {"name": "ssh"}, "user": "bob", "connectTimeout": "1s"},
)


@st.composite
def mutated_rich_specs(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(RICH)
    for _ in range(draw(st.integers(1, 4))):
        body["spec"] = _mutate(draw, body["spec"])
    return body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=mutated_rich_specs())
def test_schema_and_semantic_problems_come_in_one_list_once_each_without_a_crash(
    body: dict[str, Any],
) -> None:
    _, problems = check_nodemigration(body, CRD)
    assert problems == sorted(set(problems)), "sorted by field path, each problem once"
    assert all(p.path.startswith("spec") for p in problems), problems
    refused = {p.path for p in validate(apply_defaults(body, version_schema(CRD)), version_schema(CRD))}
    for problem in problems:
        inside = [r for r in refused if problem.path.startswith((r + ".", r + "[")) and r != problem.path]
        assert not inside or problem.path in refused, (
            f"{problem} sits inside {inside}, which the schema refused"
        )
