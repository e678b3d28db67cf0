"""Shared pytest plugins (the testbed's fixtures) and how the suite is split between xdist workers.

`scripts/test` runs the suite on several pytest-xdist workers with `--dist loadfile`: a test module runs
whole on one worker, so its module-scoped stack (fake nodes, an emulator, a control plane) is brought up
once and its tests keep their order. The real-kubelet modules are two scopes here, so at most two of
these heavy stacks run at a time, each scope's modules one after the other on one worker; another pytest
run or a demo on the same machine shares the `real_kubelet_host` lock's two slots. A long module whose
tests are independent of each other (each crash point brings up its own operator against a cleaned
cluster) is split into a few scopes instead, so its tests spread over the workers; each worker brings
the module's session stack up once.
"""

from __future__ import annotations

import zlib
from typing import Any

import hypothesis
import pytest

pytest_plugins = ["testbed.nodes.fixtures", "testbed.kubeapi.fixtures", "testbed.controlplane.fixtures"]

# Property tests judge behaviour, not speed: no per-example deadline (hypothesis's 200 ms fails an
# example on a loaded shared machine, as a CI run did). Timing belongs in bench/.
hypothesis.settings.register_profile("shimshift", deadline=None)
hypothesis.settings.load_profile("shimshift")

#: test modules that share the host in a way two workers must not: module path -> scope
SHARED_HOST_SCOPES = {
    "tests/e2e/test_demo.py": "real-kubelets-a",
    "tests/e2e/test_real_kubelet.py": "real-kubelets-a",
    "tests/e2e/test_real_kubelet_rollback.py": "real-kubelets-a",
    "tests/e2e/test_real_kubelet_endpoint.py": "real-kubelets-b",
    "tests/e2e/test_hooks_real.py": "real-kubelets-b",
    "tests/e2e/test_real_kubelet_crash.py": "real-kubelets-b",
    "tests/integration/nodes/test_real_kubelet.py": "real-kubelets-b",
    "tests/e2e/test_real_kubelet_operator_pod.py": "real-kubelets-a",
}

#: long modules of independent tests: module path -> how many scopes its tests are spread over
SPLIT_MODULES = {"tests/e2e/test_crash_resume.py": 3}


def scope_of(module: str, nodeid: str) -> str:
    """The xdist scope of test `nodeid` of `module`: a shared-host scope, a split module's part (by a
    stable hash of the test's id, so a rerun puts each test in the same part), else the module."""
    if module in SHARED_HOST_SCOPES:
        return SHARED_HOST_SCOPES[module]
    parts = SPLIT_MODULES.get(module)
    if parts:
        return f"{module}#{zlib.crc32(nodeid.encode()) % parts}"
    return module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler for the other modes
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndSharedHostScopes(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(str(super()._split_scope(nodeid)), nodeid)

    return ModulesAndSharedHostScopes(config, log)
