"""The RBAC tests' code scan (apiscan.py) resolves the call shapes the operator uses and fails, naming the
place, on any request it cannot resolve: none is skipped."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest

from tests.unit.chart import apiscan
from tests.unit.chart.apiscan import Source

_names = itertools.count()


def scan_of(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> apiscan.Scan:
    """The scan of one module holding `code`."""
    name = f"apiscan_fixture_{next(_names)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    return apiscan.scan([Source(path, name)])


@pytest.mark.parametrize(
    ("code", "line", "why"),
    [
        pytest.param(
            """\
            def send(kube, op):
                return kube.request(op["method"], op["path"])
            """,
            2,
            "no call of send() binds them",
            id="method-and-path-from-a-runtime-value",
        ),
        pytest.param(
            """\
            def send(kube, args):
                return kube.request(*args)
            """,
            2,
            "with *args or **kwargs",
            id="starred-arguments",
        ),
        pytest.param(
            """\
            import os

            def send(kube):
                return kube.request("GET", os.environ["SOME_PATH"])
            """,
            4,
            "cannot evaluate",
            id="a-path-the-scan-cannot-evaluate",
        ),
        pytest.param(
            """\
            def get(kube, path):
                return kube.request("GET", path)

            def caller(kube, options):
                return get(kube, **options)
            """,
            2,
            ".py:5: get(...) called with *args or **kwargs",
            id="a-helper-called-with-kwargs",
        ),
        pytest.param(
            """\
            def get(kube, path):
                return kube.request("GET", path)
            """,
            2,
            "no call of get() binds them",
            id="a-helper-nobody-calls",
        ),
        pytest.param(
            """\
            def health(kube):
                return kube.request("GET", "/healthz")
            """,
            2,
            "GET /healthz",
            id="not-a-resource-path",
        ),
        pytest.param(
            """\
            def nodes(kube):
                return kube._send("GET", "/api/v1/nodes", [], None, None, None)
            """,
            2,
            "Kube's transport",
            id="kubes-transport-called-directly",
        ),
        pytest.param(
            """\
            from kubernetes import client

            def nodes(api):
                return client.CoreV1Api(api).list_node()
            """,
            4,
            "client.CoreV1Api",
            id="a-kubernetes-client-class",
        ),
    ],
)
def test_a_call_the_scan_cannot_resolve_is_listed_with_its_place_not_skipped(
    code: str, line: int, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = scan_of(code, tmp_path, monkeypatch)

    assert found.uses == []
    assert len(found.unresolved) == 1, found.unresolved
    (problem,) = found.unresolved
    assert re.match(rf"apiscan_fixture_\d+\.py:{line}\b", problem), problem
    assert why in problem


def test_branches_loops_over_tables_keywords_and_helper_arguments_are_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = scan_of(
        """\
        TABLE = {"nodes": ("/api/v1/nodes", "Node"), "daemonsets": ("/apis/apps/v1/daemonsets", "DaemonSet")}

        def pods(kube, namespace):
            if namespace:
                path = f"/api/v1/namespaces/{namespace}/pods"
            else:
                path = "/api/v1/pods"
            return kube.request("GET", path)

        def fetch(kube, method, *, path, query=()):
            return kube.request(method, path, query=query)

        def every(kube):
            for name, (path, kind) in TABLE.items():
                fetch(kube, "GET", path=path)

        def follow(kube):
            return kube.watch(path="/api/v1/pods", resource_version="1", timeout=1)
        """,
        tmp_path,
        monkeypatch,
    )

    assert found.unresolved == []
    assert sorted((u.method, u.path) for u in found.uses) == [
        ("GET", "/api/v1/namespaces/{var}/pods"),
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/pods"),
        ("GET", "/apis/apps/v1/daemonsets"),
        ("WATCH", "/api/v1/pods"),
    ]
    # a helper's request is placed at the helper, then at the call site that bound it
    (where,) = {u.where for u in found.uses if u.path == "/api/v1/nodes"}
    assert re.fullmatch(r"apiscan_fixture_\d+\.py:11 <- apiscan_fixture_\d+\.py:15", where), where


def test_a_quoted_or_checked_name_in_a_path_stays_a_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = scan_of(
        """\
        import re
        from urllib.parse import quote

        def segment(name):
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
                raise ValueError(name)
            return quote(name, safe="")

        def secret(kube, namespace, name):
            return kube.request("GET", f"/api/v1/namespaces/{segment(namespace)}/secrets/{segment(name)}")
        """,
        tmp_path,
        monkeypatch,
    )

    assert found.unresolved == []
    assert [(u.method, u.path) for u in found.uses] == [("GET", "/api/v1/namespaces/{var}/secrets/{var}")]
