"""The plan report's stored form: as text in one ConfigMap when it fits, else gzipped pieces over as
many ConfigMaps as needed, each within the limits a real API server enforces (the emulator's checks);
read back whole, identical, and the pieces of an earlier, larger plan removed."""

from __future__ import annotations

import base64
import json
import random
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest
from testbed.kubeapi.limits import MAX_STORED_BYTES, check_stored, field_errors

from shimshift.kube.api import NotFound
from shimshift.kube.reportstore import ReportUnreadable, pack, read_report, store_report
from shimshift.model import keys

NS = "shimshift-system"


def _not_found(name: str) -> NotFound:
    return NotFound(404, "NotFound", f'configmaps "{name}" not found', what=f"configmaps {name}", body={})


class ConfigMaps:
    """Just enough of the API for ConfigMaps in one namespace, refusing what a real server refuses."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    def request(
        self, method: str, path: str, *, body: Any = None, query: Sequence[tuple[str, str]] = (), **_: Any
    ) -> Any:
        self.calls.append((method, path))
        base = f"/api/v1/namespaces/{NS}/configmaps"
        name = path[len(base) + 1 :] if path.startswith(base + "/") else ""
        if method in ("PUT", "POST"):
            assert field_errors(("", "configmaps"), body) == [], body["metadata"]["name"]
            check_stored(body)
            if method == "PUT" and name not in self.objects:
                raise _not_found(name)
            self.objects[body["metadata"]["name"]] = json.loads(json.dumps(body))
            return body
        if method == "GET" and name:
            if name not in self.objects:
                raise _not_found(name)
            return self.objects[name]
        if method == "GET":
            (selector,) = [v for k, v in query if k == "labelSelector"]
            key, value = selector.split("=")
            return {"items": [o for o in self.objects.values() if o["metadata"]["labels"].get(key) == value]}
        if method == "DELETE":
            del self.objects[name]
            return {}
        raise AssertionError(method)


def _words(rng: random.Random, n: int) -> str:
    # text that compresses about as well as a report does (repeated structure, varying names)
    return "".join(
        f"| node-{rng.randrange(10**5):05d} | pod-{rng.getrandbits(40):010x} | evict |\n" for _ in range(n)
    )


def test_a_small_report_is_plain_text_in_one_configmap() -> None:
    api = ConfigMaps()
    files = {"report.md": "# plan\n", "report.json": "{}\n", "report.html": "<!DOCTYPE html>\n"}
    assert store_report(api, NS, "m", "uid-1", files) == f"{NS}/m-plan"  # type: ignore[arg-type]
    (cm,) = api.objects.values()
    assert cm["data"]["report.md"] == "# plan\n" and "binaryData" not in cm
    assert cm["metadata"]["labels"] == {keys.REPORT_LABEL: "m"}
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    for file, text in files.items():
        assert read_report(api, NS, "m", file) == text  # type: ignore[arg-type]


def test_a_large_report_is_split_over_configmaps_within_the_limits_and_read_back_identical() -> None:
    rng = random.Random(5)
    files = {
        "report.md": _words(rng, 40_000),
        "report.json": _words(rng, 250_000),
        "report.html": "<p>x</p>\n",
    }
    api = ConfigMaps()
    store_report(api, NS, "big", "uid-2", files)  # type: ignore[arg-type]
    assert len(api.objects) >= 3 and "big-plan" in api.objects and "big-plan-1" in api.objects
    for cm in api.objects.values():
        assert len(json.dumps(cm)) <= MAX_STORED_BYTES
        assert cm["metadata"]["labels"] == {keys.REPORT_LABEL: "big"}
    for file, text in files.items():
        assert read_report(api, NS, "big", file) == text  # type: ignore[arg-type]

    # the kubectl pipeline of docs/plan-reports.md: the file's pieces sorted by key, joined, decoded
    items = {"items": list(api.objects.values())}
    pieces = sorted(
        (k, v)
        for cm in items["items"]
        for k, v in (cm.get("binaryData") or {}).items()
        if k.startswith("report.json.gz.")
    )
    joined = "".join(v for _, v in pieces)
    out = subprocess.run(["gunzip"], input=base64.b64decode(joined), capture_output=True, check=True).stdout
    assert out.decode() == files["report.json"]

    # a smaller plan later: one ConfigMap again, the earlier pieces gone
    store_report(api, NS, "big", "uid-2", {"report.md": "# small\n"})  # type: ignore[arg-type]
    assert list(api.objects) == ["big-plan"]
    assert read_report(api, NS, "big", "report.md") == "# small\n"  # type: ignore[arg-type]
    with pytest.raises(ReportUnreadable):
        read_report(api, NS, "big", "report.json")  # type: ignore[arg-type]


def test_a_report_read_while_a_new_plan_replaces_it_is_refused_not_mixed() -> None:
    rng = random.Random(9)
    api = ConfigMaps()
    store_report(api, NS, "m", "", {"report.json": _words(rng, 120_000)})  # type: ignore[arg-type]
    index = json.loads(api.objects["m-plan"]["data"]["index.json"])
    assert len(index["configMaps"]) >= 2
    # a later piece replaced under the index of the earlier plan
    boxes = pack("m", {"report.json": _words(random.Random(10), 120_000)})
    api.objects["m-plan-1"]["binaryData"] = {k: base64.b64encode(v).decode() for k, v in boxes[1][1].items()}
    with pytest.raises(ReportUnreadable, match="read it again"):
        read_report(api, NS, "m", "report.json")  # type: ignore[arg-type]
