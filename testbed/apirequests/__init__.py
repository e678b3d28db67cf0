"""Kubernetes API requests as the testbed sees them, shared by the API emulator (``testbed.kubeapi``)
and the fault-injecting proxy (``testbed.apiproxy``): path parsing, the request log and fault rules."""

from .faults import Faults, RequestLog, RequestRecord
from .paths import Target, parse_path, request_verb

__all__ = ["Faults", "RequestLog", "RequestRecord", "Target", "parse_path", "request_verb"]
