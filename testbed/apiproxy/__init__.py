"""A fault-injecting TLS reverse proxy in front of any Kubernetes API server, for tests.

It logs every request as the emulator does and applies the same ``Faults`` (``testbed.apirequests``):
error answers, seeded random faults, latency, triggers at an exact write, dropped watches. So the
campaigns that need faults between the operator and the API server run against a real API server
too. Test infrastructure only: the shipped package never imports it.

    with running_proxy(upstream_kubeconfig, workdir) as proxy:
        proxy.faults.add_random(0.10, seed=4)
        subprocess.run(["kubectl", f"--kubeconfig={proxy.kubeconfig}", "get", "nodes"])
"""

from .kubeconfig import Credentials, KubeconfigError, read_credentials, write_proxy_kubeconfig
from .proxy import ApiProxy, Upstream
from .runner import FaultProxy, ProxiedApi, ProxyConfig, ProxyThread, running_proxy

__all__ = [
    "ApiProxy",
    "Credentials",
    "FaultProxy",
    "KubeconfigError",
    "ProxiedApi",
    "ProxyConfig",
    "ProxyThread",
    "Upstream",
    "read_credentials",
    "running_proxy",
    "write_proxy_kubeconfig",
]
