"""Shared pytest plugins: the testbed's fixtures.

`scripts/test` runs the suite on several pytest-xdist workers with `--dist loadfile`: a test module
runs whole on one worker, so its module-scoped stack (fake nodes, an emulator, a control plane) is
brought up once and its tests keep their order. What must not run at the same time as another module
takes a host-wide lock instead (`real_kubelet_host`: real kubelets all manage the host's one cgroup
hierarchy).
"""

pytest_plugins = ["testbed.nodes.fixtures", "testbed.kubeapi.fixtures", "testbed.controlplane.fixtures"]
