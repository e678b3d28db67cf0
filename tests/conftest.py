"""Shared pytest plugins (the testbed's fixtures) and how the suite is split between xdist workers.

`scripts/test` runs the suite on several workers (`-n`, `--dist loadgroup`). A test module is one
group: its module-scoped stack (fake nodes, an emulator, a control plane) is brought up once, on one
worker. Modules that must never run at the same time as each other share a group: real kubelets all
manage the host's one cgroup hierarchy, so two of them at once could clean up each other's pods.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["testbed.nodes.fixtures", "testbed.kubeapi.fixtures", "testbed.controlplane.fixtures"]

#: test modules that share the host in a way two workers must not: module path -> group
SHARED_HOST_GROUPS = {
    "tests/e2e/test_real_kubelet.py": "real-kubelets",
    "tests/e2e/test_real_kubelet_endpoint.py": "real-kubelets",
    "tests/integration/nodes/test_real_kubelet.py": "real-kubelets",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(SHARED_HOST_GROUPS.get(module, module)))
