"""Shared pytest plugins: the testbed's fixtures."""

pytest_plugins = ["testbed.nodes.fixtures", "testbed.kubeapi.fixtures", "testbed.controlplane.fixtures"]
