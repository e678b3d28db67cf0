"""What to keep from the node's current config.toml, and what changes.

docker-ce ships `disabled_plugins = ["cri"]` and nothing else (no version line: schema 1). Anything
beyond that is the admin's own and is kept, mapped to the target schema (schema-1 short plugin names
become full ids), unless shimshift manages the key (then the rendered value wins and the change is
reported) or containerd would ignore it (dropped and reported). The deprecated CRI `registry.mirrors`
move to hosts.toml; `registry.configs`/`auths` cannot and are reported with their replacement.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shimshift.model.errors import RenderError
from shimshift.model.limits import MAX_NODE_FILE_BYTES, InputLimitError, toml_loads
from shimshift.rendering.containerd_keys import quote_key, unknown_keys
from shimshift.rendering.docker import RegistryIntent, mirror_problem
from shimshift.rendering.redact import credential_values, marker, redact_table, redact_text
from shimshift.rendering.values import ChangeKind, ConfigChange, NotCarried

CRI_V2 = "io.containerd.grpc.v1.cri"
CRI_NAMES = frozenset({"cri", CRI_V2, "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"})

#: Schema-1 short plugin names -> full ids (containerd 1.x services/server/config migration).
V1_PLUGIN_IDS: Mapping[str, str] = {
    "cri": CRI_V2,
    "linux": "io.containerd.runtime.v1.linux",
    "opt": "io.containerd.internal.v1.opt",
    "restart": "io.containerd.internal.v1.restart",
    "scheduler": "io.containerd.gc.v1.scheduler",
    "cgroups": "io.containerd.monitor.v1.cgroups",
    "bolt": "io.containerd.metadata.v1.bolt",
    "overlayfs": "io.containerd.snapshotter.v1.overlayfs",
    "native": "io.containerd.snapshotter.v1.native",
    "devmapper": "io.containerd.snapshotter.v1.devmapper",
    "zfs": "io.containerd.snapshotter.v1.zfs",
    "btrfs": "io.containerd.snapshotter.v1.btrfs",
    "aufs": "io.containerd.snapshotter.v1.aufs",
    "walking": "io.containerd.differ.v1.walking",
    "task": "io.containerd.runtime.v2.task",
}
_DOCKER_CE_DEFAULT = {"disabled_plugins": ["cri"]}


@dataclass(frozen=True)
class Existing:
    keep: dict[str, Any]  # plain TOML table of admin settings to carry into the new file
    preserved: tuple[str, ...]
    not_carried: tuple[NotCarried, ...]
    legacy_intents: tuple[RegistryIntent, ...]
    parsed: dict[str, Any]  # the whole current file, for the change list


def parse_current(text: str | None, node: str) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        return toml_loads(text, max_bytes=MAX_NODE_FILE_BYTES)
    except tomllib.TOMLDecodeError as e:
        raise RenderError(
            f"node {node}: the current /etc/containerd/config.toml is not valid TOML ({e}); containerd "
            "cannot be using it: fix or remove it, then render again"
        ) from e
    except InputLimitError as e:  # too large or nested too deep: this node's blocker, not the fleet's
        raise RenderError(
            f"node {node}: the current /etc/containerd/config.toml cannot be read safely ({e}); "
            "fix or remove it on the node, then plan again"
        ) from e


def read_existing(text: str | None, target_version: int, node: str) -> Existing:
    parsed = parse_current(text, node)
    if not parsed or parsed == _DOCKER_CE_DEFAULT:
        return Existing({}, (), (), (), parsed)
    not_carried: list[NotCarried] = []
    old_version = parsed.get("version", 1)
    keep: dict[str, Any] = {}
    for key, value in parsed.items():
        if key in ("version", "plugins"):
            continue
        if key == "disabled_plugins" and isinstance(value, list):
            names = [_full_plugin_id(str(p), old_version) for p in value]
            dropped = [str(p) for p, full in zip(value, names, strict=True) if full in CRI_NAMES]
            if dropped:
                not_carried.append(
                    NotCarried(
                        "config.toml disabled_plugins", json.dumps(dropped), "the CRI plugin is enabled"
                    )
                )
            rest = [n for n in names if n not in CRI_NAMES]
            if rest:
                keep[key] = rest
            continue
        keep[key] = value
    plugins = parsed.get("plugins", {})
    legacy: list[RegistryIntent] = []
    if isinstance(plugins, Mapping):
        kept_plugins: dict[str, Any] = {}
        for name, table in plugins.items():
            full = _full_plugin_id(name, old_version)
            if full == CRI_V2 and isinstance(table, Mapping):
                table = dict(table)
                registry = dict(table.pop("registry", {}) or {})
                legacy += _legacy_registry(registry, not_carried)
                if target_version != 2:
                    not_carried.append(
                        NotCarried(
                            f"config.toml plugins.{quote_key(name)}",
                            ", ".join(sorted(table)) or "(empty)",
                            "schema 3 splits CRI into io.containerd.cri.v1.images/.runtime: "
                            "set these with spec.containerd.extraConfig under the new names",
                        )
                    )
                    continue
            if target_version != 2 and full != CRI_V2:
                not_carried.append(
                    NotCarried(
                        f"config.toml plugins.{quote_key(name)}",
                        json.dumps(redact_table(table), sort_keys=True, default=str),
                        "check the plugin's containerd 2.x name and set it with spec.containerd.extraConfig",
                    )
                )
                continue
            kept_plugins[full] = table
        if kept_plugins:
            keep["plugins"] = kept_plugins
    if target_version >= 4:
        keep = servers_to_plugins(keep)
    keep = _drop_ignored(keep, target_version, not_carried)
    preserved = tuple(sorted(flatten(keep)))
    return Existing(keep, preserved, tuple(not_carried), tuple(legacy), parsed)


def _full_plugin_id(name: str, old_version: Any) -> str:
    if old_version == 1 or "." not in name:
        return V1_PLUGIN_IDS.get(name, name)
    return name


def _legacy_registry(registry: dict[str, Any], not_carried: list[NotCarried]) -> list[RegistryIntent]:
    intents: list[RegistryIntent] = []
    for host, entry in sorted((registry.get("mirrors") or {}).items()):
        endpoints = [e.rstrip("/") for e in (entry or {}).get("endpoint", []) if isinstance(e, str)]
        good = tuple(e for e in endpoints if mirror_problem(e) is None)
        for bad in sorted(set(endpoints) - set(good)):
            not_carried.append(
                NotCarried(f"config.toml registry.mirrors.{host}", redact_text(bad), "nothing: not a URL")
            )
        if good:
            intents.append(RegistryIntent(host, "config.toml registry.mirrors (deprecated)", mirrors=good))
    configs = registry.get("configs") or {}
    for host in sorted(configs):
        entry = configs[host] if isinstance(configs[host], Mapping) else {}
        replacement = "spec.containerd.registries[] caSecretRef / clientCertSecretRef / skipVerify"
        if "auth" in entry:
            replacement = f"TLS: {replacement}; credentials: {CREDENTIALS_INSTEAD}"
        not_carried.append(NotCarried("config.toml registry.configs", host, replacement))
    for host in sorted(registry.get("auths") or {}):
        not_carried.append(
            NotCarried(
                "config.toml registry.auths", host, f"{CREDENTIALS_INSTEAD} (containerd 2.0 removed auths)"
            )
        )
    if registry.get("config_path"):
        not_carried.append(
            NotCarried(
                "config.toml registry.config_path", str(registry["config_path"]), "shimshift's certs.d"
            )
        )
    return intents


#: What supplies registry credentials once containerd serves the kubelet (shimshift writes none).
CREDENTIALS_INSTEAD = "imagePullSecrets or a kubelet credential provider"


def dropped_credentials(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What holds a credential in the current config.toml that the new one lacks: registry hosts
    (`registry.configs`/`auths`), `registry headers` or a key path; sorted, each once."""
    kept = {marker(v) for _, v in credential_values(new)}
    out: dict[str, None] = {}
    for path, value in credential_values(old):
        if marker(value) in kept:
            continue
        parts = split_key(path)
        where = path
        for i, part in enumerate(parts[:-1]):
            if part == "registry" and parts[i + 1] in ("configs", "auths") and i + 2 < len(parts):
                where = parts[i + 2]
                break
            if part == "registry" and parts[i + 1] == "headers":
                where = "registry headers"
                break
        out[where] = None
    return sorted(out)


def servers_to_plugins(keep: dict[str, Any]) -> dict[str, Any]:
    """The listener settings of an older file (`grpc`, `ttrpc`, `debug.address`, `metrics`) as the
    server plugins of schema 4, as containerd 2.3 converts them (serviceMigrate), ttrpc's address
    derived from grpc's when unset; keys it does not know are left for the unknown-key check."""
    out = copy.deepcopy(keep)
    plugins: dict[str, Any] = dict(out.get("plugins") or {})

    def take(table: str, *keys: str) -> dict[str, Any]:
        section = out.get(table)
        if not isinstance(section, dict):
            return {}
        found = {k: section.pop(k) for k in keys if k in section}
        if not section:
            out.pop(table)
        return found

    debug = take("debug", "address", "uid", "gid")
    if debug.get("address"):
        plugins.setdefault("io.containerd.server.v1.debug", debug)
    grpc = take("grpc", "address", "uid", "gid", "max_recv_message_size", "max_send_message_size")
    tcp = take("grpc", "tcp_address", "tcp_tls_ca", "tcp_tls_cert", "tcp_tls_key")
    sizes = {k: grpc[k] for k in ("max_recv_message_size", "max_send_message_size") if grpc.get(k)}
    if any(grpc.values()):
        if grpc.get("address"):  # socket ownership as it was: an address takes its uid and gid along
            listener = {"address": grpc["address"], "uid": grpc.get("uid", 0), "gid": grpc.get("gid", 0)}
        else:
            listener = {k: grpc[k] for k in ("uid", "gid") if grpc.get(k)}
        plugins.setdefault("io.containerd.server.v1.grpc", listener | sizes)
    if tcp.get("tcp_address"):
        tcp_listener = {k.removeprefix("tcp_"): v for k, v in tcp.items() if v}
        plugins.setdefault("io.containerd.server.v1.grpc-tcp", tcp_listener | sizes)
    ttrpc = take("ttrpc", "address", "uid", "gid")
    if "io.containerd.server.v1.ttrpc" not in plugins:
        address = ttrpc.get("address") or ""
        uid, gid = ttrpc.get("uid", 0), ttrpc.get("gid", 0)
        if not address and grpc.get("address"):
            address = f"{grpc['address']}.ttrpc"
            uid, gid = uid or grpc.get("uid", 0), gid or grpc.get("gid", 0)
        if address or uid or gid:
            plugins["io.containerd.server.v1.ttrpc"] = {"address": address, "uid": uid, "gid": gid}
    metrics = take("metrics", "address", "grpc_histogram")
    if metrics.get("grpc_histogram"):
        plugins.setdefault("io.containerd.metrics.v1.grpc-prometheus", {"grpc_histogram": True})
    if metrics.get("address"):
        plugins.setdefault("io.containerd.server.v1.metrics", {"address": metrics["address"]})
    if plugins:
        out["plugins"] = plugins
    return out


def _drop_ignored(keep: dict[str, Any], version: int, not_carried: list[NotCarried]) -> dict[str, Any]:
    """Remove keys containerd would ignore (or reject by type); report each."""
    problems = list(unknown_keys(keep, version))
    if not problems:
        return keep
    for path, message in problems:
        not_carried.append(NotCarried(f"config.toml {path}", message, "dropped"))
        _delete_path(keep, path)
    return keep


def _delete_path(table: dict[str, Any], dotted: str) -> None:
    parts = split_key(dotted)
    node: Any = table
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def split_key(dotted: str) -> list[str]:
    """Split a dotted TOML key path whose parts may be "quoted"."""
    parts: list[str] = []
    buf, quoted = "", False
    for ch in dotted:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return parts


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        path = f"{prefix}.{quote_key(key)}" if prefix else quote_key(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = json.dumps(value, sort_keys=True, default=str)
    return out


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[ConfigChange, ...]:
    """What differs, key by key; credential values are shown redacted (rendering/redact.py)."""
    before, after = flatten(redact_table(old)), flatten(redact_table(new))
    result: list[ConfigChange] = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            result.append(ConfigChange(key, ChangeKind.ADDED, None, after[key]))
        elif key not in after:
            result.append(ConfigChange(key, ChangeKind.REMOVED, before[key], None))
        elif before[key] != after[key]:
            result.append(ConfigChange(key, ChangeKind.CHANGED, before[key], after[key]))
    return tuple(result)
