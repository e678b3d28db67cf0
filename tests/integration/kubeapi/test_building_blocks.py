"""The emulator's pure parts, tested directly: strategic merge, selectors, schemas, printing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testbed.kubeapi.errors import ApiError
from testbed.kubeapi.patching import merge_patch, strategic_merge_patch
from testbed.kubeapi.schema import apply_defaults, prune, validate
from testbed.kubeapi.selectors import FieldSelector, LabelSelector
from testbed.kubeapi.tables import human_duration, jsonpath

keys = st.sampled_from(["a", "b", "c", "app", "tier"])
values = st.sampled_from(["x", "y", "z", "1", "3"])
labels = st.dictionaries(keys, values, max_size=4)


def test_strategic_merge_merges_containers_by_name_and_honours_directives() -> None:
    pod = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "containers": [
                {"name": "app", "image": "v1", "env": [{"name": "X", "value": "1"}]},
                {"name": "side", "image": "s"},
            ]
        },
    }
    patch = {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "app", "image": "v2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "side", "$patch": "delete"},
            ]
        },
    }
    merged = strategic_merge_patch(pod, patch, "Pod")
    assert merged["metadata"]["finalizers"] == ["b"]
    assert merged["spec"]["containers"] == [
        {"name": "app", "image": "v2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
    ]


def test_strategic_merge_replace_and_retain_keys_directives() -> None:
    obj = {
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "x": {"a": 1, "b": 2},
        }
    }
    patch = {
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "x": {"$patch": "replace", "c": 3},
        }
    }
    merged = strategic_merge_patch(obj, patch, "Deployment")
    assert merged["spec"] == {"strategy": {"type": "Recreate"}, "x": {"c": 3}}


def test_node_taints_are_replaced_as_the_go_struct_has_no_patch_strategy() -> None:
    node = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}
    merged = strategic_merge_patch(node, {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}}, "Node")
    assert merged["spec"]["taints"] == [{"key": "b", "effect": "NoSchedule"}]


@given(st.dictionaries(keys, values), st.dictionaries(keys, st.one_of(values, st.none())))
def test_merge_patch_sets_and_deletes_keys(target: dict[str, Any], patch: dict[str, Any]) -> None:
    merged = merge_patch(target, patch)
    for key, value in patch.items():
        assert merged.get(key) == value
    for key in set(target) - set(patch):
        assert merged[key] == target[key]


@given(labels, keys, values)
def test_label_equality_and_existence_selectors_agree_with_the_labels(
    found: dict[str, str], key: str, value: str
) -> None:
    assert LabelSelector.parse(f"{key}={value}").matches(found) == (found.get(key) == value)
    assert LabelSelector.parse(f"{key}!={value}").matches(found) == (found.get(key) != value)
    assert LabelSelector.parse(key).matches(found) == (key in found)
    assert LabelSelector.parse(f"!{key}").matches(found) == (key not in found)
    assert LabelSelector.parse(f"{key} in ({value}, other)").matches(found) == (
        found.get(key) in (value, "other")
    )


@given(labels, st.dictionaries(keys, values, max_size=2))
def test_a_match_labels_struct_selects_like_the_equivalent_string(
    found: dict[str, str], wanted: dict[str, str]
) -> None:
    text = ",".join(f"{k}={v}" for k, v in wanted.items())
    struct = LabelSelector.from_struct({"matchLabels": wanted})
    assert struct is not None
    assert struct.matches(found) == LabelSelector.parse(text).matches(found)


def test_a_malformed_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as err:
        FieldSelector.parse("spec.nodeName")
    assert err.value.code == 400
    with pytest.raises(ApiError):
        LabelSelector.parse("rank>x")


def test_defaults_reach_into_arrays_and_maps_and_pruning_keeps_preserved_subtrees() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "port": {"type": "integer", "default": 80},
                                "name": {"type": "string"},
                            },
                        },
                    },
                    "byName": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"on": {"type": "boolean", "default": True}},
                        },
                    },
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
    }
    obj: dict[str, Any] = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n"},
        "spec": {
            "items": [{"name": "a", "junk": 1}],
            "byName": {"k": {}},
            "free": {"anything": [1]},
            "gone": True,
        },
    }
    assert sorted(prune(obj, schema)) == ["spec.gone", "spec.items[0].junk"]
    apply_defaults(obj, schema)
    assert obj["spec"] == {
        "items": [{"name": "a", "port": 80}],
        "byName": {"k": {"on": True}},
        "free": {"anything": [1]},
    }


def test_map_values_are_validated_with_bracketed_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "limits": {"type": "object", "additionalProperties": {"type": "integer", "maximum": 5}}
                },
            }
        },
    }
    errors = validate({"spec": {"limits": {"cpu": 9}}}, schema)
    assert [str(e) for e in errors] == [
        "spec.limits[cpu]: Invalid value: 9: spec.limits[cpu] in body should be less than or equal to 5"
    ]


def test_printer_column_jsonpath_supports_filters_and_indexes() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}],
            "nodes": [{"name": "n1"}],
        }
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert jsonpath(obj, ".status.nodes[0].name") == "n1"
    assert jsonpath(obj, ".status.missing.deep") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 120, "3h2m"),
        (9 * 3600, "9h"),
        (3 * 86400, "3d"),
    ],
)
def test_ages_are_printed_like_kubectl_does(seconds: int, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text
