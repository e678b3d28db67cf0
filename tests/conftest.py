"""Shared pytest plugins (the testbed's fixtures) and how the suite is split between xdist workers.

`scripts/test` runs the suite on several pytest-xdist workers with `--dist loadfile`: a test module
runs whole on one worker, so its module-scoped stack (fake nodes, an emulator, a control plane) is
brought up once and its tests keep their order. Modules that must not run at the same time as each
other are one scope here, so they run one after the other on one worker: real kubelets all manage the
host's one cgroup hierarchy. (Another pytest run on the same machine is kept out by the
`real_kubelet_host` lock.)
"""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = ["testbed.nodes.fixtures", "testbed.kubeapi.fixtures", "testbed.controlplane.fixtures"]

#: test modules that share the host in a way two workers must not: module path -> scope
SHARED_HOST_SCOPES = {
    "tests/e2e/test_demo.py": "real-kubelets",
    "tests/e2e/test_real_kubelet.py": "real-kubelets",
    "tests/e2e/test_real_kubelet_endpoint.py": "real-kubelets",
    "tests/integration/nodes/test_real_kubelet.py": "real-kubelets",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler for the other modes
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndSharedHostScopes(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = str(super()._split_scope(nodeid))
            return SHARED_HOST_SCOPES.get(module, module)

    return ModulesAndSharedHostScopes(config, log)
