"""The chart's ClusterRole and Role grant exactly what the operator's code and kopf use: no more, no less.

What the code uses is derived from the code itself: every `kube.request(METHOD, path)` and
`kube.watch(path)` in `operator/shimshift/kube/` (the only package that talks to the API) is found in
the syntax tree, its path expression evaluated with placeholders for the variable parts, and the path
mapped to (apiGroup, resource, verb) the way the API server's authorizer does. Paths passed through a
helper (e.g. `wait_until(kube, PODS, ...)`) are resolved at the helper's call sites.

What kopf uses is listed below with the place in kopf that needs it. Permissions the design calls for
but whose code has not landed yet (DESIGN_PENDING) are allowed only while no code touches that
resource at all; once code does, only the verbs it uses are.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.chart import helm

KUBE_DIR = helm.REPO / "operator" / "shimshift" / "kube"

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# What kopf itself needs to serve NodeMigrations cluster-wide (kopf 1.37+):
KOPF_NEEDS: frozenset[Grant] = frozenset(
    {
        # kopf/_core/reactor/queueing.py, _cogs/clients/watching.py: list + watch the served resource.
        ("shimshift.io", "nodemigrations", "list"),
        ("shimshift.io", "nodemigrations", "watch"),
        # kopf/_cogs/clients/patching.py: finalizers and progress annotations are merge-patches.
        ("shimshift.io", "nodemigrations", "patch"),
        # patching.py: with a status subresource, kopf patches status through /status.
        ("shimshift.io", "nodemigrations/status", "patch"),
        # kopf/_core/reactor/observation.py: resource_observer watches CRDs (namespaces are not watched
        # when the operator runs cluster-wide).
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        # kopf/_core/engines/peering.py: keep-alives in ClusterKopfPeering status (docs/peering).
        ("kopf.dev", "clusterkopfpeerings", "get"),
        ("kopf.dev", "clusterkopfpeerings", "list"),
        ("kopf.dev", "clusterkopfpeerings", "watch"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
        # kopf/_cogs/clients/events.py: Events about handlers, in the operator's namespace for
        # cluster-scoped objects.
        ("", "events", "create"),
    }
)

# DESIGN.md's safety rules name these; allowed until code for the resource exists.
DESIGN_PENDING: frozenset[Grant] = frozenset(
    {
        ("", "configmaps", "create"),  # the plan report, one ConfigMap per NodeMigration
        ("", "configmaps", "get"),
        ("", "configmaps", "patch"),
        ("", "configmaps", "update"),
        ("", "secrets", "get"),  # SSH key, known_hosts, registry CAs, by resourceNames
    }
)

# Granted only when the user opts in (rbac.deletePodsOnDrainTimeout), used only by an explicit
# escalation (spec.drain.onTimeout: DeletePods).
OPT_IN: frozenset[Grant] = frozenset({("", "pods", "delete")})


class Placeholder(str):
    """Stands for any runtime value in a path expression: `pod.namespace`, `name`, `self.x`..."""

    def __new__(cls) -> Placeholder:
        return super().__new__(cls, "{var}")

    def __getattr__(self, name: str) -> Placeholder:
        return Placeholder()

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder()

    def __getitem__(self, key: Any) -> Placeholder:  # type: ignore[override]
        return Placeholder()


VAR = "{var}"


@dataclass(frozen=True)
class Use:
    where: str  # file:line
    method: str  # GET, POST, PATCH, PUT, DELETE or WATCH
    path: str  # evaluated, with {var} for the variable parts


def evaluate(node: ast.expr, module: Any, params: set[str], local: dict[str, str] | None = None) -> str:
    """The path an expression builds: module constants and simple local strings resolved, the rest {var}."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    local = local or {}
    scope: dict[str, Any] = {n: Placeholder() for n in names if n in params or not hasattr(module, n)}
    scope.update({n: v for n, v in local.items() if n in names and n not in params})
    if "segment" in names:  # shimshift.kube.paths.segment(value, what): one quoted runtime value
        scope["segment"] = Placeholder()
    value = eval(compile(ast.Expression(node), "<path>", "eval"), dict(vars(module)), scope)  # noqa: S307
    return str(value)


def local_strings(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, module: Any, params: set[str]
) -> dict[str, str]:
    """Values of `name = <str expression>` assignments in a function, in order (e.g. `path = f"..."`)."""
    local: dict[str, str] = {}
    for stmt in ast.walk(fn):
        target, value = None, None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            target, value = stmt.target.id, stmt.value
        if target is None or value is None or not isinstance(value, ast.JoinedStr | ast.Constant | ast.BinOp):
            continue
        try:
            local[target] = evaluate(value, module, params, local)
        except Exception:  # noqa: S112 - not a string expression we can follow
            continue
    return local


def kube_modules() -> Iterator[tuple[Path, Any, ast.Module]]:
    for path in sorted(KUBE_DIR.glob("*.py")):
        module = importlib.import_module(f"shimshift.kube.{path.stem}")
        yield path, module, ast.parse(path.read_text(), str(path))


def functions_with_parents(
    tree: ast.Module,
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.Call]]:
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    yield fn, node


def request_of(call: ast.Call) -> tuple[str, ast.expr] | None:
    """(method, path expression) of a `x.request("METHOD", path)` or `x.watch(path)` call."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr == "request" and len(call.args) >= 2 and isinstance(call.args[0], ast.Constant):
        return str(call.args[0].value), call.args[1]
    if func.attr == "watch" and call.args:
        return "WATCH", call.args[0]
    return None


def api_paths_in(tree: ast.Module) -> list[str]:
    """String constants in a module that are API paths ("/api/v1/...", "/apis/...")."""
    return sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(("/api/v1/", "/apis/"))
        }
    )


def code_uses() -> tuple[list[Use], list[str]]:
    """Every API request the kube package makes, and the ones whose path could not be resolved."""
    uses: list[Use] = []
    unresolved: list[str] = []
    # Helpers that take the path as a parameter: name -> (index of the path parameter, methods).
    helpers: dict[str, tuple[int, set[str]]] = {}
    parsed = list(kube_modules())
    for path, module, tree in parsed:
        for fn, call in functions_with_parents(tree):
            found = request_of(call)
            if found is None or fn.name in ("request", "watch"):
                continue
            method, expr = found
            params = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            where = f"{path.name}:{call.lineno}"
            if isinstance(expr, ast.Name) and expr.id in params:
                index = [a.arg for a in fn.args.args].index(expr.id)
                helpers.setdefault(fn.name, (index, set()))[1].add(method)
                continue
            local = local_strings(fn, module, set(params))
            uses.append(Use(where, method, evaluate(expr, module, set(params), local)))
    for path, module, tree in parsed:
        for fn, call in functions_with_parents(tree):
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            if name in helpers and fn.name != name:
                index, methods = helpers[name]
                params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
                where = f"{path.name}:{call.lineno}"
                if len(call.args) <= index:
                    unresolved.append(f"{where}: {name}(...) without a positional path")
                    continue
                resolved = evaluate(call.args[index], module, params)
                # A path only known at run time (e.g. a loop over a table of paths): every API path
                # written in that module counts as used, which over-approximates only within code.
                candidates = [resolved] if resolved != VAR else api_paths_in(tree)
                if not candidates:
                    unresolved.append(f"{where}: {name}(...) with a path only known at run time")
                for path_value in candidates:
                    for method in methods:
                        uses.append(Use(where, method, path_value))
    return uses, unresolved


def grant_for(use: Use) -> Grant:
    """(apiGroup, resource, verb) the API server's authorizer checks for a request."""
    parts = [p for p in use.path.split("?", 1)[0].split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        raise AssertionError(f"{use.where}: not a resource path: {use.path}")
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) >= 2
    verb = {
        ("GET", True): "get",
        ("GET", False): "list",
        ("WATCH", True): "watch",
        ("WATCH", False): "watch",
        ("POST", False): "create",
        ("POST", True): "create",  # subresources such as pods/eviction
        ("PATCH", True): "patch",
        ("PUT", True): "update",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }[(use.method, named)]
    return group, resource, verb


def used_grants() -> set[Grant]:
    uses, _ = code_uses()
    return {grant_for(u) for u in uses}


def granted(value_set: str) -> dict[str, set[Grant]]:
    """Grants of the rendered ClusterRole and Role, by kind."""
    docs = helm.rendered(value_set)
    result: dict[str, set[Grant]] = {}
    for kind in ("ClusterRole", "Role"):
        grants: set[Grant] = set()
        for rule in helm.only(docs, kind)["rules"]:
            assert "nonResourceURLs" not in rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb), f"wildcard in {kind}: {rule}"
                        grants.add((group, resource, verb))
        result[kind] = grants
    return result


def allowed() -> set[Grant]:
    used = used_grants()
    touched = {(g, r) for g, r, _ in used}
    pending = {grant for grant in DESIGN_PENDING if grant[:2] not in touched}
    return used | KOPF_NEEDS | pending


def test_the_code_scan_finds_the_requests_the_kube_package_makes() -> None:
    uses, unresolved = code_uses()
    assert unresolved == []
    if not uses:
        pytest.skip("operator/shimshift/kube makes no API requests yet")
    # Sanity: the scan sees the operator's core moves wherever they are coded.
    grants = {grant_for(u) for u in uses}
    assert ("", "nodes", "patch") in grants
    assert ("", "pods/eviction", "create") in grants


@pytest.mark.parametrize("value_set", ["default", "secrets-from-values", "pinned-and-scheduled"])
def test_chart_grants_nothing_the_code_or_kopf_does_not_use(value_set: str) -> None:
    grants = granted(value_set)
    extra = sorted((grants["ClusterRole"] | grants["Role"]) - allowed() - OPT_IN)
    assert extra == [], "granted but unused; drop them from charts/shimshift/templates/rbac.yaml"


# Granted only for the Secrets named in values (resourceNames); with none named, none is readable.
SECRETS_BY_NAME: Grant = ("", "secrets", "get")


@pytest.mark.parametrize("value_set", ["default", "secrets-from-values", "pinned-and-scheduled"])
def test_chart_grants_everything_the_code_and_kopf_use(value_set: str) -> None:
    grants = granted(value_set)
    needed = used_grants() | KOPF_NEEDS
    if value_set != "pinned-and-scheduled":
        needed -= OPT_IN
    if value_set != "secrets-from-values":
        needed.discard(SECRETS_BY_NAME)
    missing = sorted(needed - grants["ClusterRole"] - grants["Role"])
    assert missing == [], "used but not granted; add them to charts/shimshift/templates/rbac.yaml"


def test_pod_deletion_is_granted_only_when_the_user_opts_in() -> None:
    assert OPT_IN.isdisjoint(granted("default")["ClusterRole"])
    assert granted("pinned-and-scheduled")["ClusterRole"] >= OPT_IN


def test_secrets_are_readable_only_by_name_and_only_in_the_release_namespace() -> None:
    docs = helm.rendered("secrets-from-values")
    cluster_rules = helm.only(docs, "ClusterRole")["rules"]
    assert not [r for r in cluster_rules if "secrets" in r["resources"]]
    role = helm.only(docs, "Role")
    assert role["metadata"]["namespace"] == helm.NAMESPACE
    (secret_rule,) = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secret_rule["verbs"] == ["get"]
    assert secret_rule["resourceNames"] == [
        "shimshift-ssh",
        "shimshift-known-hosts",
        "registry-ca",
        "registry-client-cert",
    ]


def test_no_secret_rule_is_rendered_when_no_secret_is_named() -> None:
    # An empty resourceNames list would grant every Secret in the namespace.
    role = helm.only(helm.rendered("default"), "Role")
    assert not [r for r in role["rules"] if "secrets" in r["resources"]]


def test_the_grant_mapping_follows_the_api_servers_authorizer() -> None:
    cases = {
        ("GET", "/api/v1/nodes"): ("", "nodes", "list"),
        ("GET", "/api/v1/nodes/n1"): ("", "nodes", "get"),
        ("WATCH", "/api/v1/pods"): ("", "pods", "watch"),
        ("POST", "/api/v1/namespaces/a/pods/p/eviction"): ("", "pods/eviction", "create"),
        ("PATCH", "/apis/shimshift.io/v1alpha1/nodemigrations/m/status"): (
            "shimshift.io",
            "nodemigrations/status",
            "patch",
        ),
        ("GET", "/apis/policy/v1/namespaces/a/poddisruptionbudgets"): (
            "policy",
            "poddisruptionbudgets",
            "list",
        ),
        ("DELETE", "/api/v1/namespaces/a/pods/p"): ("", "pods", "delete"),
    }
    for (method, path), expected in cases.items():
        assert grant_for(Use("t", method, path)) == expected


def test_events_are_posted_in_the_operators_namespace_which_the_role_covers() -> None:
    uses, _ = code_uses()
    namespaces = {u.path.split("/")[4] for u in uses if u.method == "POST" and u.path.endswith("/events")}
    assert namespaces <= {VAR}
