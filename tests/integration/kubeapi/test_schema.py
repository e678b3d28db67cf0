"""CRD structural schemas: defaults, pruning, and 422 Invalid with field-path causes."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest
from kubernetes.client.exceptions import ApiException
from testbed.kubeapi import KubeApi

from .conftest import http

pytestmark = pytest.mark.integration


def widget(name: str = "w", /, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def create(custom: kubernetes.client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    created = custom.create_namespaced_custom_object("example.io", "v1", "default", "widgets", body)
    assert isinstance(created, dict)  # declared `object`: a custom object comes back as parsed JSON
    return created


def causes_of(
    custom: kubernetes.client.CustomObjectsApi, body: dict[str, Any]
) -> tuple[str, list[dict[str, str]]]:
    with pytest.raises(ApiException) as err:
        create(custom, body)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == "example.io"
    return status["message"], status["details"]["causes"]


def test_defaults_are_applied_and_unknown_fields_pruned(
    widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    created = create(custom, widget(mode="Plan", unknown="dropped", extra={"kept": {"deep": 1}}))
    assert created["spec"] == {"mode": "Plan", "size": 3, "extra": {"kept": {"deep": 1}}}


def test_an_enum_violation_reads_like_the_real_api_server(
    widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    message, causes = causes_of(custom, widget("x", mode="Foo"))
    assert (
        message
        == 'Widget.example.io "x" is invalid: spec.mode: Unsupported value: "Foo": supported values: "Plan", "Migrate"'
    )
    assert causes == [
        {
            "reason": "FieldValueNotSupported",
            "field": "spec.mode",
            "message": 'Unsupported value: "Foo": supported values: "Plan", "Migrate"',
        }
    ]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({}, "spec.mode", "Required value"),
        (
            {"mode": "Plan", "size": "big"},
            "spec.size",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"mode": "Plan", "size": 11},
            "spec.size",
            "Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            {"mode": "Plan", "size": 0},
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            {"mode": "Plan", "name": "ABC"},
            "spec.name",
            "Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'",
        ),
        ({"mode": "Plan", "name": "abcdefghij"}, "spec.name", "Too long: may not be longer than 8"),
        ({"mode": "Plan", "tags": ["a", "b", "c"]}, "spec.tags", "Too many: 3: must have at most 2 items"),
        (
            {"mode": "Plan", "budget": 1.5},
            "spec.budget",
            'Invalid value: "number": spec.budget in body must be of type integer,string: "number"',
        ),
        (
            {"mode": "Plan", "tags": [1]},
            "spec.tags[0]",
            'Invalid value: "integer": spec.tags[0] in body must be of type string: "integer"',
        ),
    ],
)
def test_each_schema_rule_reports_a_field_path_cause(
    widgets: dict[str, Any],
    custom: kubernetes.client.CustomObjectsApi,
    spec: dict[str, Any],
    field: str,
    message: str,
) -> None:
    _, causes = causes_of(custom, widget(**spec))
    assert [(c["field"], c["message"]) for c in causes] == [(field, message)]


def test_int_or_string_and_nullable_values_are_accepted(
    widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    a = create(custom, widget("a", mode="Plan", budget=2, note=None))
    b = create(custom, widget("b", mode="Migrate", budget="50%"))

    assert a["spec"]["budget"] == 2 and "note" in a["spec"] and a["spec"]["note"] is None
    assert b["spec"]["budget"] == "50%"
    stored: dict[str, Any] = custom.get_namespaced_custom_object(
        "example.io", "v1", "default", "widgets", "a"
    )  # type: ignore[assignment]
    assert stored["spec"]["budget"] == 2 and stored["spec"]["note"] is None, "kept as given, not pruned"


def test_a_missing_spec_is_required_at_the_root(
    widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    _, causes = causes_of(
        custom, {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "x"}}
    )
    assert causes == [{"reason": "FieldValueRequired", "field": "spec", "message": "Required value"}]


def test_updates_are_validated_too(
    widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    create(custom, widget(mode="Plan"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            "example.io", "v1", "default", "widgets", "w", {"spec": {"size": 99}}
        )
    assert err.value.status == 422


def test_strict_field_validation_rejects_unknown_fields_with_400(
    kubeapi: KubeApi, widgets: dict[str, Any]
) -> None:
    code, body = http(
        kubeapi,
        "POST",
        "/apis/example.io/v1/namespaces/default/widgets?fieldValidation=Strict",
        widget(mode="Plan", typo=1),
    )
    assert code == 400
    assert body["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: '
        'strict decoding error: unknown field "spec.typo"'
    )


def test_strategic_merge_patch_on_a_custom_resource_is_415(
    kubeapi: KubeApi, widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    create(custom, widget(mode="Plan"))
    code, body = http(
        kubeapi,
        "PATCH",
        "/apis/example.io/v1/namespaces/default/widgets/w",
        {"spec": {"size": 2}},
        "application/strategic-merge-patch+json",
    )
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")


def test_replacing_a_custom_resource_requires_a_resource_version(
    kubeapi: KubeApi, widgets: dict[str, Any], custom: kubernetes.client.CustomObjectsApi
) -> None:
    create(custom, widget(mode="Plan"))
    code, body = http(
        kubeapi, "PUT", "/apis/example.io/v1/namespaces/default/widgets/w", widget(mode="Migrate")
    )
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_an_invalid_crd_is_rejected(kubeapi: KubeApi, api_client: kubernetes.client.ApiClient) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    with pytest.raises(ApiException) as err:
        ext.create_custom_resource_definition(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "wrong.example.io"},
                "spec": {
                    "group": "example.io",
                    "scope": "Namespaced",
                    "names": {"kind": "Thing", "plural": "things"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {"openAPIV3Schema": {"type": "object"}},
                        }
                    ],
                },
            }
        )
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "metadata.name"


async def test_the_asyncio_client_gets_the_same_422(
    widgets: dict[str, Any], async_client: kubernetes_asyncio.client.ApiClient
) -> None:
    custom = kubernetes_asyncio.client.CustomObjectsApi(async_client)
    with pytest.raises(kubernetes_asyncio.client.exceptions.ApiException) as err:
        await custom.create_namespaced_custom_object(
            "example.io", "v1", "default", "widgets", widget(mode="Nope")
        )
    assert err.value.status == 422
    created = await custom.create_namespaced_custom_object(
        "example.io", "v1", "default", "widgets", widget(mode="Plan")
    )
    assert created["spec"]["size"] == 3
    # its .pyi omits `_content_type`, which the method takes (it is in the method's all_params)
    patched = await custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
        "example.io",
        "v1",
        "default",
        "widgets",
        "w",
        {"status": {"phase": "Done"}},
        _content_type="application/merge-patch+json",  # kubernetes_asyncio defaults to json-patch for dicts
    )
    assert patched["status"] == {"phase": "Done"}


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        (
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "uniqueItems",
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ),
        (
            {"type": "object", "additionalProperties": False, "properties": {"a": {"type": "string"}}},
            "additionalProperties",
            "additionalProperties and properties are mutual exclusive",
        ),
    ],
    ids=["uniqueItems", "additionalProperties-beside-properties"],
)
def test_a_crd_schema_a_real_api_server_forbids_is_refused_in_its_words(
    kubeapi: KubeApi, api_client: kubernetes.client.ApiClient, rule: dict[str, Any], field: str, words: str
) -> None:
    # the emulator once took a NodeMigration CRD that kube-apiserver 1.24 refused for both of these
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"deep": rule}}}}
    with pytest.raises(ApiException) as err:
        ext.create_custom_resource_definition(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "things.example.io"},
                "spec": {
                    "group": "example.io",
                    "scope": "Namespaced",
                    "names": {"kind": "Thing", "plural": "things"},
                    "versions": [
                        {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
                    ],
                },
            }
        )
    assert err.value.status == 422
    causes = json.loads(err.value.body)["details"]["causes"]
    assert [c["field"] for c in causes] == [
        f"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[deep].{field}"
    ]
    assert words in causes[0]["message"]
