"""The production NodePort: node steps over SSH with the playbooks of `shimshift.remote`.

Not wired yet: the SSH runner and playbooks are landing in `shimshift.remote` (issue: node
operations). Until then `shimshift run` needs `--node-port module:factory`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shimshift.model.errors import ShimshiftError


def ssh_node_ports(kube: Any, namespace: str) -> Callable[..., Any]:
    raise ShimshiftError(
        "the SSH node port is not available in this build yet; start with --node-port module:factory"
    )
