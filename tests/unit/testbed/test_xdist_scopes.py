"""How tests/conftest.py splits the suite over xdist workers: real-kubelet modules share one scope, a
split module's tests spread over its parts (every part used, each test always in the same one), and
every other module is its own scope."""

from __future__ import annotations

from tests.conftest import SHARED_HOST_SCOPES, SPLIT_MODULES, scope_of

CRASH = "tests/e2e/test_crash_resume.py"


def test_real_kubelet_modules_share_one_scope() -> None:
    scopes = {scope_of(m, f"{m}::test_x") for m in SHARED_HOST_SCOPES}
    assert scopes == {"real-kubelets"}


def test_a_split_modules_tests_spread_over_its_parts_and_stay_there() -> None:
    ids = [f"{CRASH}::test_a_sigkill_at_this_point[point-{i}]" for i in range(60)]
    scopes = [scope_of(CRASH, i) for i in ids]
    assert set(scopes) == {f"{CRASH}#{n}" for n in range(SPLIT_MODULES[CRASH])}
    assert scopes == [scope_of(CRASH, i) for i in ids]


def test_any_other_module_is_its_own_scope() -> None:
    module = "tests/e2e/test_operator.py"
    assert scope_of(module, f"{module}::test_a") == scope_of(module, f"{module}::test_b") == module
