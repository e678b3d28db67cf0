"""The chart's ClusterRole and Role grant exactly what the operator's code and kopf use: no more, no less.

What the code uses is derived from the code itself: every `kube.request(METHOD, path)` and
`kube.watch(path)` in the package (tests/unit/chart/apiscan.py) is found in the syntax tree, its path
evaluated with placeholders for the variable parts, and mapped to (apiGroup, resource, verb) the way
the API server's authorizer does. Paths passed through a helper (e.g. `wait_until(kube, PODS, ...)`)
are resolved at the helper's call sites. A call the scan cannot resolve fails every test that uses the
scan, listed: none is skipped.

What kopf uses is listed below with the place in kopf that needs it. Permissions the design calls for
but whose code has not landed yet (DESIGN_PENDING) are allowed only while no code touches that
resource at all; once code does, only the verbs it uses are.
"""

from __future__ import annotations

import pytest

from tests.unit.chart import apiscan, helm
from tests.unit.chart.apiscan import VAR, Grant, Use

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

# Granted ahead of the code that uses them (the plan report's ConfigMap, the Secrets a spec names);
# allowed only while no code touches the resource.
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

# Granted only as the values list them (rbac.gateRules, in the pinned-and-scheduled value set): the
# health gates' reads of the objects spec.rollout.gates.conditions names (apiscan.USER_NAMED).
GATE_RULES: frozenset[Grant] = frozenset({("apps", "deployments", "get"), ("example.com", "widgets", "get")})


# Granted only in the namespaces the values list (hooks.namespaces), a Role of its own in each: the
# per-node hook Jobs of spec.rollout.hooks (`jobs list` is also the ClusterRole's, for planning).
HOOK_GRANTS: frozenset[Grant] = frozenset(
    {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
)


def code_uses() -> list[Use]:
    """Every API request the package makes; fails the test, listing them, on any it cannot resolve."""
    found = apiscan.scan()
    if found.unresolved:
        pytest.fail(
            "the RBAC scan cannot resolve these API calls (see tests/unit/chart/apiscan.py):\n"
            + "\n".join(found.unresolved)
        )
    return found.uses


def grant_for(use: Use) -> Grant:
    """(apiGroup, resource, verb) the API server's authorizer checks for a request."""
    parsed = apiscan.parse_path(use.path)
    if parsed is None:
        raise AssertionError(f"{use.where}: not a resource path: {use.path}")
    group, resource, named = parsed
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
    return {grant_for(u) for u in code_uses()}


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


def test_the_code_scan_resolves_every_request_the_package_makes() -> None:
    uses = code_uses()
    # Sanity: the scan sees the operator's core moves wherever they are coded.
    grants = {grant_for(u) for u in uses}
    assert ("", "nodes", "patch") in grants
    assert ("", "pods/eviction", "create") in grants


@pytest.mark.parametrize("value_set", ["default", "secrets-from-values", "pinned-and-scheduled"])
def test_chart_grants_nothing_the_code_or_kopf_does_not_use(value_set: str) -> None:
    grants = granted(value_set)
    extra = sorted((grants["ClusterRole"] | grants["Role"]) - allowed() - OPT_IN - GATE_RULES)
    assert extra == [], "granted but unused; drop them from charts/shimshift/templates/rbac.yaml"


def test_gate_rules_are_get_only_on_exactly_what_the_values_list() -> None:
    assert GATE_RULES.isdisjoint(granted("default")["ClusterRole"])
    assert granted("pinned-and-scheduled")["ClusterRole"] >= GATE_RULES
    rules = helm.only(helm.rendered("pinned-and-scheduled"), "ClusterRole")["rules"]
    gates = [r for r in rules if r["apiGroups"] in (["apps"], ["example.com"]) and r["verbs"] == ["get"]]
    gates = [r for r in gates if r["resources"] != ["daemonsets"]]
    assert gates == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["front"], "verbs": ["get"]},
        {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]},
    ]
    # the scan sees the gates' reads and leaves their grants to these values
    assert {w.split(":")[0] for w in apiscan.scan().user_named} == {"objects.py"}


# Granted only for the Secrets named in values (resourceNames); with none named, none is readable.
SECRETS_BY_NAME: Grant = ("", "secrets", "get")


@pytest.mark.parametrize("value_set", ["default", "secrets-from-values", "pinned-and-scheduled"])
def test_chart_grants_everything_the_code_and_kopf_use(value_set: str) -> None:
    grants = granted(value_set)
    needed = used_grants() | KOPF_NEEDS
    needed -= HOOK_GRANTS - {("batch", "jobs", "list")}  # in hooks.namespaces only
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
        "shimshift-notify-urls",
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
    uses = code_uses()
    namespaces = {u.path.split("/")[4] for u in uses if u.method == "POST" and u.path.endswith("/events")}
    assert namespaces <= {VAR}


#: What the verify step's canary needs in its namespace: its pod made and removed, its log, its Events.
CANARY_GRANTS: frozenset[Grant] = frozenset(
    {("", "pods", "create"), ("", "pods", "delete"), ("", "pods/log", "get"), ("", "events", "list")}
)


def _grants_of(rules: list[dict[str, object]]) -> set[Grant]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]  # type: ignore[attr-defined]
        for r in rule["resources"]  # type: ignore[attr-defined]
        for v in rule["verbs"]  # type: ignore[attr-defined]
    }


def test_the_canary_is_granted_in_the_release_namespace_only_never_cluster_wide() -> None:
    assert {grant_for(u) for u in code_uses()} >= CANARY_GRANTS, "the canary's code makes these requests"
    docs = helm.rendered("default")
    assert not CANARY_GRANTS & _grants_of(helm.only(docs, "ClusterRole")["rules"])
    role = helm.only(docs, "Role")
    assert role["metadata"]["namespace"] == helm.NAMESPACE
    assert _grants_of(role["rules"]) >= CANARY_GRANTS


def test_a_canary_namespace_of_its_own_gets_the_canary_role_and_the_release_role_loses_it() -> None:
    result = helm.template("--set", "canary.namespace=shimshift-canaries")
    assert result.returncode == 0, result.stderr
    docs = helm.documents(result.stdout)
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    assert _grants_of(roles["shimshift-canaries"]["rules"]) == CANARY_GRANTS
    assert not CANARY_GRANTS & _grants_of(roles[helm.NAMESPACE]["rules"])
    binding = next(
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == "shimshift-canaries"
    )
    assert binding["subjects"][0]["namespace"] == helm.NAMESPACE
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert (
        "--canary-namespace=shimshift-canaries"
        in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_hook_jobs_are_granted_exactly_in_the_namespaces_hooks_namespaces_lists_never_cluster_wide() -> None:
    assert used_grants() >= HOOK_GRANTS, "the hook steps' code makes these requests"
    default = helm.rendered("default")
    assert not [d for d in default if d["kind"] == "Role" and d["metadata"]["name"].endswith("-hooks")]
    assert not (HOOK_GRANTS - {("batch", "jobs", "list")}) & _grants_of(
        helm.only(default, "ClusterRole")["rules"]
    )
    result = helm.template("--set", "hooks.namespaces={ops-hooks,maintenance}")
    assert result.returncode == 0, result.stderr
    docs = helm.documents(result.stdout)
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    assert set(roles) == {helm.NAMESPACE, "ops-hooks", "maintenance"}
    for namespace in ("ops-hooks", "maintenance"):
        assert _grants_of(roles[namespace]["rules"]) == HOOK_GRANTS
        binding = next(
            d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == namespace
        )
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert binding["subjects"][0]["namespace"] == helm.NAMESPACE
    assert not HOOK_GRANTS & _grants_of(roles[helm.NAMESPACE]["rules"])


def test_a_hook_namespace_that_is_not_a_name_is_refused_by_the_values_schema() -> None:
    result = helm.template("--set", "hooks.namespaces={../kube-system}")
    assert result.returncode != 0 and "hooks" in result.stderr
