"""Fake Kubernetes nodes with real sshd, containerd and dockerd, for tests, benchmarks and demos.

Public API: ``Cluster.up(name, profiles)`` / ``Cluster.down()``, ``Node``, ``PROFILES``,
``cleanup_stale()``. Pytest fixtures live in ``testbed.nodes.fixtures``.
"""

from testbed.nodes.cluster import Cluster, TestbedError, cleanup_stale
from testbed.nodes.node import CommandResult, Node
from testbed.nodes.profiles import PROFILES, Profile, ProfileName

__all__ = [
    "PROFILES",
    "Cluster",
    "CommandResult",
    "Node",
    "Profile",
    "ProfileName",
    "TestbedError",
    "cleanup_stale",
]
