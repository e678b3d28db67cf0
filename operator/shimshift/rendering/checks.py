"""Semantic checks on a rendered config, parsed back with tomllib: what makes kubelet fail on containerd.

Each check is a known failure of containerd 1.6-2.x as kubelet's runtime: CRI disabled under
any name (short names even stop a schema-2 containerd from starting), an empty runtime_type, a cgroup
driver that disagrees with the kubelet, no sandbox image, `mirrors`/`configs`/`auths` next to
`config_path` (CRI then reports `error`), a hosts.toml pointing at files that are not there, and any key
containerd would silently ignore.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.rendering.containerd_keys import RUNC_OPTIONS, unknown_keys

RUNC_V2 = "io.containerd.runc.v2"
_HOSTS_TOP = frozenset(
    {"server", "ca", "client", "skip_verify", "capabilities", "header", "override_path", "host"}
)
_HOSTS_HOST = frozenset({"capabilities", "ca", "client", "skip_verify", "header", "override_path"})
_CAPABILITIES = frozenset({"pull", "resolve", "push"})


@dataclass(frozen=True)
class Expected:
    version: int
    sandbox_image: str
    systemd_cgroup: bool
    certs_dir: str


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def cri_sections(doc: Mapping[str, Any], version: int) -> tuple[Any, Any, Any]:
    """(runtime containerd table, sandbox image, registry table) for the schema version."""
    plugins = doc.get("plugins", {})
    if version == 2:
        cri = _get(plugins, "io.containerd.grpc.v1.cri") or {}
        return _get(cri, "containerd"), _get(cri, "sandbox_image"), _get(cri, "registry")
    images = _get(plugins, "io.containerd.cri.v1.images") or {}
    runtime = _get(plugins, "io.containerd.cri.v1.runtime") or {}
    return _get(runtime, "containerd"), _get(images, "pinned_images", "sandbox"), _get(images, "registry")


def check_config(doc: Mapping[str, Any], expected: Expected) -> Iterator[str]:
    """Problems with a parsed config.toml (empty when containerd will serve kubelet as intended)."""
    version = doc.get("version")
    if version != expected.version:
        yield (
            f"version: must be {expected.version} (without it containerd reads schema 1 "
            "and ignores the CRI tables)"
        )
    for path, message in unknown_keys(doc, expected.version):
        yield f"{path}: {message}"
    disabled = doc.get("disabled_plugins", [])
    if isinstance(disabled, list):
        for name in disabled:
            text = str(name)
            if text == "cri" or text.endswith(".cri") or ".cri." in text:
                yield f"disabled_plugins: {text!r} disables the CRI plugin; kubelet could not use containerd"
            elif expected.version >= 2 and not text.startswith("io.containerd."):
                yield (
                    f"disabled_plugins: {text!r} is a short name; config version {expected.version} "
                    "needs the full id (io.containerd.<type>.v<n>.<name>) or containerd will not start"
                )
    containerd, sandbox, registry = cri_sections(doc, expected.version)
    runtimes = _get(containerd, "runtimes") or {}
    default = _get(containerd, "default_runtime_name") or "runc"
    if default not in runtimes:
        yield f"default_runtime_name: runtime {default!r} is not configured under containerd.runtimes"
    for name, runtime in runtimes.items() if isinstance(runtimes, Mapping) else ():
        rtype = _get(runtime, "runtime_type")
        if not rtype:
            yield f"containerd.runtimes.{name}.runtime_type: must be set (empty means no runtime at all)"
        if rtype == RUNC_V2:
            options = _get(runtime, "options") or {}
            for key in sorted(set(options) - RUNC_OPTIONS):
                yield f"containerd.runtimes.{name}.options.{key}: runc has no such option (ignored)"
    runc_cgroup = _get(runtimes, default, "options", "SystemdCgroup")
    if bool(runc_cgroup) != expected.systemd_cgroup:
        driver = "systemd" if expected.systemd_cgroup else "cgroupfs"
        yield (
            f"containerd.runtimes.{default}.options.SystemdCgroup: must be "
            f"{str(expected.systemd_cgroup).lower()} to match the kubelet's cgroup driver ({driver})"
        )
    if not sandbox:
        yield "sandbox image: must be set"
    elif sandbox != expected.sandbox_image:
        yield f"sandbox image: is {sandbox!r}, expected {expected.sandbox_image!r}"
    if _get(registry, "config_path") != expected.certs_dir:
        yield f"registry.config_path: must be {expected.certs_dir!r} (where the hosts.toml files are)"
    for legacy in ("mirrors", "configs", "auths"):
        if _get(registry, legacy):
            yield (
                f"registry.{legacy}: cannot be set next to config_path (the CRI plugin then fails with "
                "'invalid plugin config'); use spec.containerd.registries"
            )


def check_hosts(text: str, path: str, available: Collection[str]) -> Iterator[str]:
    """Problems with one rendered hosts.toml: structure, and every referenced file present."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        yield f"{path}: not valid TOML ({e})"
        return
    for key in sorted(set(doc) - _HOSTS_TOP):
        yield f"{path}: {key}: containerd's hosts.toml has no such key"
    if not doc.get("host") and not path.rstrip("/").endswith("/_default/hosts.toml"):
        yield (
            f"{path}: has no [host] table; containerd 1.6 cannot decode it and silently falls back to "
            "Docker-style certificate files"
        )
    tables = [("", doc)] + [(f"host.{url}", t) for url, t in (doc.get("host") or {}).items()]
    for where, table in tables:
        if where:
            for key in sorted(set(table) - _HOSTS_HOST):
                yield f"{path}: {where}.{key}: containerd's hosts.toml has no such key"
            caps = table.get("capabilities", [])
            if not set(caps) <= _CAPABILITIES:
                yield f"{path}: {where}.capabilities: only pull, resolve and push exist"
        cas = table.get("ca", [])
        refs = [cas] if isinstance(cas, str) else list(cas)
        for pair in table.get("client", []):
            refs += list(pair) if isinstance(pair, list) else [pair]
        for ref in refs:
            if ref not in available:
                yield f"{path}: {where or 'server'} references {ref}, neither rendered nor on the node"
