"""containerd settings in a user's TOML fragment that hand out more than containerd for kubelet.

Creating a NodeMigration is already root on every node it selects (its steps run there as root), so
these are not a sandbox. They are the settings whose effect reaches beyond the node's CRI: containerd's
unauthenticated API on the network, another runtime or shim binary run as root, configuration and
plugins from files no check of shimshift sees. `spec.containerd.extraConfig` may set one only when
`spec.containerd.allowUnsafe` names its kind; `shimshift validate`, the operator's checks and the
renderer all refuse it otherwise, and a let-through setting is a warning in the plan.

Pure: walks a parsed TOML document (any config schema version; the keys are the same in 2 and 3).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shimshift.model.errors import Problem

EXTRA = "spec.containerd.extraConfig"
ALLOW = "spec.containerd.allowUnsafe"


class Unsafe(StrEnum):
    """The kinds of unsafe setting `spec.containerd.allowUnsafe` can name (the CRD's enum)."""

    TCP_LISTENER = "TCPListener"  # a gRPC, ttrpc, debug, metrics or CRI streaming listener off loopback
    RUNTIME_BINARY = "RuntimeBinary"  # runtime, shim, CNI or stream-processor binaries chosen by path
    IMPORTS = "Imports"  # more config files merged in, unseen by shimshift's checks
    PLUGIN_DIR = "PluginDir"  # plugins loaded from a directory or served by another process


@dataclass(frozen=True, order=True)
class UnsafeSetting:
    key: str  # the TOML key path, e.g. grpc.tcp_address
    kind: Unsafe
    effect: str  # what the setting does, for the refusal and the plan's warning

    def refusal(self) -> Problem:
        return Problem(
            EXTRA,
            f"{self.key}: {self.effect}; refused as unsafe ({self.kind}): "
            f"add {self.kind} to {ALLOW} if this is intended",
        )

    def warning(self) -> str:
        return f"{EXTRA} sets {self.key}: {self.effect} (allowed by {ALLOW}: {self.kind})"


_LISTENERS = ("grpc", "ttrpc", "debug", "metrics")  # top-level tables whose `address` is a listener
_RUNTIME_PATHS = {
    "runtime_path": "containerd runs this shim binary for the runtime",
    "runtime_engine": "containerd runs this binary as the runtime",
    "runtime_root": "the runtime keeps its state here instead of containerd's own root",
}
_RUNC_OPTIONS = {
    "BinaryName": "the runc shim runs this binary instead of runc",
    "CriuPath": "the runc shim runs this binary for checkpoints",
    "Root": "runc keeps its state here instead of containerd's own root",
}
_RUNTIME_V1 = {
    "shim": "containerd runs this shim binary",
    "runtime": "containerd runs this binary as the runtime",
    "runtime_root": "the runtime keeps its state here",
}
_NRI = ("plugin_path", "plugin_config_path")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def unsafe_settings(doc: Mapping[str, Any]) -> list[UnsafeSetting]:
    """Every unsafe setting in a parsed containerd TOML fragment, sorted by key path."""
    return sorted(set(_walk(doc, ())))


def unsafe_problems(doc: Mapping[str, Any], allowed: Collection[str]) -> list[Problem]:
    """A refusal for each unsafe setting whose kind `allowed` (spec.containerd.allowUnsafe) does not name."""
    return [s.refusal() for s in unsafe_settings(doc) if str(s.kind) not in allowed]


def _key_path(parts: tuple[str, ...]) -> str:
    return ".".join(p if _BARE_KEY.match(p) else '"' + p.replace('"', '\\"') + '"' for p in parts)


def _walk(table: Mapping[str, Any], parts: tuple[str, ...]) -> Iterator[UnsafeSetting]:
    for raw_key, value in table.items():
        key = str(raw_key)
        here = (*parts, key)
        found = _classify(parts, key, value)
        if found is not None:
            kind, effect = found
            yield UnsafeSetting(_key_path(here), kind, effect)
        elif isinstance(value, Mapping):
            yield from _walk(value, here)


def _classify(parts: tuple[str, ...], key: str, value: Any) -> tuple[Unsafe, str] | None:
    top = not parts
    present = value not in (None, "", [], {})
    if top and key == "imports" and present:
        return Unsafe.IMPORTS, "containerd merges in config files that shimshift never checks"
    if top and key == "plugin_dir" and present:
        return Unsafe.PLUGIN_DIR, "containerd loads plugins (code run as root) from this directory"
    if top and key == "proxy_plugins" and present:
        return Unsafe.PLUGIN_DIR, "containerd hands snapshots or content to another process's socket"
    if parts == ("plugins", "io.containerd.nri.v1.nri") and key in _NRI and present:
        return Unsafe.PLUGIN_DIR, "containerd starts NRI plugins (run as root) from this directory"
    if top and key == "stream_processors" and present:
        return Unsafe.RUNTIME_BINARY, "containerd runs these binaries on every image layer it unpacks"
    if _cni_bin(parts, key) and present:
        return Unsafe.RUNTIME_BINARY, "containerd runs the CNI plugin binaries (as root) from this directory"
    if isinstance(value, str) and _off_loopback(parts, key, value):
        return Unsafe.TCP_LISTENER, (
            f"containerd listens on {value!r}, off loopback: its API has no authentication, so anyone "
            "who reaches it is root on the node"
        )
    if not isinstance(value, str) or not present:
        return None
    if key in _RUNTIME_PATHS:
        return Unsafe.RUNTIME_BINARY, _RUNTIME_PATHS[key]
    if key == "runtime_type" and "/" in value:
        return Unsafe.RUNTIME_BINARY, "containerd runs the shim binary at this path"
    if parts[-1:] == ("options",) and key in _RUNC_OPTIONS:
        return Unsafe.RUNTIME_BINARY, _RUNC_OPTIONS[key]
    if parts == ("plugins", "io.containerd.runtime.v1.linux") and key in _RUNTIME_V1:
        return Unsafe.RUNTIME_BINARY, _RUNTIME_V1[key]
    if parts == ("plugins", "io.containerd.internal.v1.opt") and key == "path":
        return Unsafe.RUNTIME_BINARY, "containerd finds shim binaries under this directory's bin/"
    return None


def _cni_bin(parts: tuple[str, ...], key: str) -> bool:
    """A CNI bin directory in extraConfig. The renderer's own bin_dir, carried from the node's kubelet
    --cni-bin-dir (`dockerera.node_cni_dirs`), is not checked here: that kubelet already ran CNI
    plugins from it as root, so carrying it trusts nothing new."""
    return parts[-1:] == ("cni",) and key in ("bin_dir", "bin_dirs")


def _off_loopback(parts: tuple[str, ...], key: str, value: str) -> bool:
    """Whether `value` of `key` makes containerd listen on TCP beyond loopback."""
    if "tcp_address" in key:
        return value != "" and not _loopback(_host(value))
    if key == "stream_server_address":  # a host only, its port is stream_server_port; "" is every address
        return not _loopback(_host(value))
    if len(parts) == 1 and parts[0] in _LISTENERS and key == "address":
        if parts[0] != "metrics" and (value == "" or _is_socket_path(value)):
            return False
        return not (parts[0] == "metrics" and value == "") and not _loopback(_host(value))
    return False


def _is_socket_path(value: str) -> bool:
    return value.startswith(("/", "unix://", "@"))


def _host(address: str) -> str:
    """The host of `host:port`, `[v6]:port`, `tcp://host:port`, or of a bare host or IP address."""
    rest = address.strip().removeprefix("tcp://")
    if rest.startswith("["):
        return rest[1 : rest.find("]")] if "]" in rest else rest[1:]
    try:
        ipaddress.ip_address(rest)
        return rest
    except ValueError:
        return rest.rsplit(":", 1)[0] if ":" in rest else rest


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name resolves to whatever DNS says; an empty host is every address
