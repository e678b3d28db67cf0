"""An emulated Kubernetes API server for tests, benchmarks and the demo (docs/architecture.md, testbed).

Real, unmodified clients (kopf, the ``kubernetes`` client sync and asyncio, kubectl) talk to it over
HTTP on loopback. It lives outside the shipped package and must never be imported by it.

- in pytest: the ``kubeapi`` fixture (``testbed.kubeapi.fixtures``) yields a ``KubeApi`` handle;
- standalone: ``python -m testbed.kubeapi --port P --kubeconfig FILE [--seed FILE.yaml]``.
"""

from .runner import Emulator, EmulatorConfig, EmulatorThread, KubeApi, write_kubeconfig

__all__ = ["Emulator", "EmulatorConfig", "EmulatorThread", "KubeApi", "write_kubeconfig"]
