"""Reading the object a condition gate names (`shimshift.kube.objects`): the resource from discovery,
one GET by name, and errors that say what is missing (a 403 names the chart rule to add)."""

from __future__ import annotations

from typing import Any

import pytest

from shimshift.kube.api import ApiStatusError, Kube, NotFound
from shimshift.kube.objects import Discovery, ObjectUnreadable, read_object

APPS = {
    "resources": [
        {"name": "deployments", "kind": "Deployment", "namespaced": True},
        {"name": "deployments/status", "kind": "Deployment", "namespaced": True},
    ]
}


class FakeKube:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        assert method == "GET"
        self.asked.append(path)
        answer = self.answers.get(path)
        if isinstance(answer, int):
            cls = NotFound if answer == 404 else ApiStatusError
            raise cls(answer, "Forbidden" if answer == 403 else "NotFound", "no", what=path, body={})
        if answer is None:
            raise NotFound(404, "NotFound", "no", what=path, body={})
        return answer


def read(kube: FakeKube, discovery: Discovery | None = None) -> dict[str, Any]:
    fake: Any = kube
    real: Kube = fake
    return read_object(real, discovery or Discovery(real), "apps/v1", "Deployment", "shop", "checkout")


def test_the_resource_comes_from_discovery_once_and_the_object_by_name() -> None:
    obj = {"kind": "Deployment", "status": {}}
    kube = FakeKube({"/apis/apps/v1": APPS, "/apis/apps/v1/namespaces/shop/deployments/checkout": obj})
    fake: Any = kube
    discovery = Discovery(fake)
    assert read(kube, discovery) == obj
    assert read(kube, discovery) == obj
    assert kube.asked.count("/apis/apps/v1") == 1


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"/apis/apps/v1": APPS, "/apis/apps/v1/namespaces/shop/deployments/checkout": 403},
            "grant get on deployments of API group 'apps' (the chart's rbac.gateRules)",
        ),
        ({"/apis/apps/v1": APPS}, "Deployment shop/checkout does not exist"),
        ({}, "the API server serves no apps/v1"),
        ({"/apis/apps/v1": {"resources": []}}, "apps/v1 has no kind Deployment"),
    ],
)
def test_what_cannot_be_read_says_why(answers: dict[str, Any], message: str) -> None:
    with pytest.raises(ObjectUnreadable, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read(FakeKube(answers))
    assert caught.value.transient is True  # read again with backoff
