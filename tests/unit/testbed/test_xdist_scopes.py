"""How tests/conftest.py splits the suite over xdist workers: real-kubelet modules share two scopes, a
split module's tests spread over its parts (every part used, each test always in the same one), and
every other module is its own scope."""

from __future__ import annotations

from tests.conftest import SHARED_HOST_SCOPES, SPLIT_MODULES, scope_of

CRASH = "tests/e2e/test_crash_resume.py"


def test_real_kubelet_modules_share_two_scopes_as_the_host_lock_has_two_slots() -> None:
    from testbed.nodes.realkubelet import HOST_LOCK_SLOTS

    scopes = [scope_of(m, f"{m}::test_x") for m in SHARED_HOST_SCOPES]
    assert set(scopes) == {"real-kubelets-a", "real-kubelets-b"} and len(set(scopes)) == HOST_LOCK_SLOTS
    # every module that runs real kubelets takes the lock (the real_kubelet_host fixture), so none is
    # left out of the two scopes
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    users = {
        str(p.relative_to(root))
        for p in (root / "tests").rglob("test_*.py")
        if "real_kubelet_host" in p.read_text() and "conftest" not in p.name and "/unit/" not in str(p)
    }
    assert users <= set(SHARED_HOST_SCOPES), users - set(SHARED_HOST_SCOPES)


def test_a_split_modules_tests_spread_over_its_parts_and_stay_there() -> None:
    ids = [f"{CRASH}::test_a_sigkill_at_this_point[point-{i}]" for i in range(60)]
    scopes = [scope_of(CRASH, i) for i in ids]
    assert set(scopes) == {f"{CRASH}#{n}" for n in range(SPLIT_MODULES[CRASH])}
    assert scopes == [scope_of(CRASH, i) for i in ids]


def test_any_other_module_is_its_own_scope() -> None:
    module = "tests/e2e/test_operator.py"
    assert scope_of(module, f"{module}::test_a") == scope_of(module, f"{module}::test_b") == module
