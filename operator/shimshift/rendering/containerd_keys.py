"""The config.toml keys containerd actually reads, per schema version, to catch what it silently ignores.

containerd accepts unknown keys without a word (a misspelt `sandbox_imagee` is dropped and the
default used), so a rendered or merged file is walked against these tables and any key containerd
would ignore is rejected. Schema 2 lists containerd 1.6/1.7's plugin ids and the CRI plugin's keys
(containerd's pkg/cri/config/config.go); schema 3 follows containerd 2.x's documented config
(containerd's docs/cri/config.md, `io.containerd.cri.v1.images` / `.runtime` and `io.containerd.grpc.v1.cri`);
schema 4 (containerd 2.3) is schema 3 with the listeners moved from the top level (`grpc`, `ttrpc`,
`debug.address`, `metrics`) into server plugins (containerd's cmd/containerd/server/config, serviceMigrate).
The other plugins' tables follow their 1.6 Config structs (1.7-only plugins are not checked).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class Free:
    """Any value: a plugin-specific or free-form map."""


@dataclass(frozen=True)
class MapOf:
    """A table whose keys are names (runtimes, timeouts) and whose values follow `item`."""

    item: Any


FREE = Free()
Schema = Mapping[str, Any]

_GRPC: Schema = {
    "address": str,
    "tcp_address": str,
    "tcp_tls_ca": str,
    "tcp_tls_cert": str,
    "tcp_tls_key": str,
    "tcp_tls_common_name": str,
    "uid": int,
    "gid": int,
    "max_recv_message_size": int,
    "max_send_message_size": int,
}
_TOP_COMMON: Schema = {
    "version": int,
    "root": str,
    "state": str,
    "temp": str,
    "plugin_dir": str,
    "disabled_plugins": list,
    "required_plugins": list,
    "oom_score": int,
    "imports": list,
    "grpc": _GRPC,
    "ttrpc": {"address": str, "uid": int, "gid": int},
    "debug": {"address": str, "uid": int, "gid": int, "level": str, "format": str},
    "metrics": {"address": str, "grpc_histogram": bool},
    "cgroup": {"path": str},
    "timeouts": MapOf(str),
    "proxy_plugins": MapOf({"type": str, "address": str, "platform": str, "exports": FREE}),
    "stream_processors": MapOf({"accepts": list, "returns": str, "path": str, "args": list, "env": list}),
}

#: Schema 4 (containerd 2.3) moved the listeners out of the top level into server plugins: in a
#: version 4 file the old top-level keys are not read at all (only an older file is converted).
MOVED_IN_V4: Mapping[str, str] = {
    "grpc.address": 'plugins."io.containerd.server.v1.grpc".address',
    "grpc.uid": 'plugins."io.containerd.server.v1.grpc".uid',
    "grpc.gid": 'plugins."io.containerd.server.v1.grpc".gid',
    "grpc.max_recv_message_size": 'plugins."io.containerd.server.v1.grpc".max_recv_message_size',
    "grpc.max_send_message_size": 'plugins."io.containerd.server.v1.grpc".max_send_message_size',
    "grpc.tcp_address": 'plugins."io.containerd.server.v1.grpc-tcp".address',
    "grpc.tcp_tls_ca": 'plugins."io.containerd.server.v1.grpc-tcp".tls_ca',
    "grpc.tcp_tls_cert": 'plugins."io.containerd.server.v1.grpc-tcp".tls_cert',
    "grpc.tcp_tls_key": 'plugins."io.containerd.server.v1.grpc-tcp".tls_key',
    "ttrpc.address": 'plugins."io.containerd.server.v1.ttrpc".address',
    "ttrpc.uid": 'plugins."io.containerd.server.v1.ttrpc".uid',
    "ttrpc.gid": 'plugins."io.containerd.server.v1.ttrpc".gid',
    "debug.address": 'plugins."io.containerd.server.v1.debug".address',
    "debug.uid": 'plugins."io.containerd.server.v1.debug".uid',
    "debug.gid": 'plugins."io.containerd.server.v1.debug".gid',
    "metrics.address": 'plugins."io.containerd.server.v1.metrics".address',
    "metrics.grpc_histogram": 'plugins."io.containerd.metrics.v1.grpc-prometheus".grpc_histogram',
}
_TOP_V4: Schema = {
    **{k: v for k, v in _TOP_COMMON.items() if k not in ("grpc", "ttrpc", "metrics")},
    "debug": {"level": str, "format": str, "log_trace_id": bool},
}
_SERVER_PLUGINS_V4: Mapping[str, Schema] = {
    "io.containerd.server.v1.grpc": {
        "address": str,
        "uid": int,
        "gid": int,
        "max_recv_message_size": int,
        "max_send_message_size": int,
    },
    "io.containerd.server.v1.grpc-tcp": {
        "address": str,
        "tls_ca": str,
        "tls_cert": str,
        "tls_key": str,
        "tls_common_name": str,
        "max_recv_message_size": int,
        "max_send_message_size": int,
    },
    "io.containerd.server.v1.ttrpc": {"address": str, "uid": int, "gid": int},
    "io.containerd.server.v1.debug": {"address": str, "uid": int, "gid": int},
    "io.containerd.server.v1.metrics": {"address": str},
    "io.containerd.metrics.v1.grpc-prometheus": {"grpc_histogram": bool},
}

RUNC_OPTIONS = frozenset(
    {
        "NoPivotRoot",
        "NoNewKeyring",
        "ShimCgroup",
        "IoUid",
        "IoGid",
        "BinaryName",
        "Root",
        "CriuPath",
        "SystemdCgroup",
        "CriuImagePath",
        "CriuWorkPath",
    }
)

_RUNTIME: Schema = {
    "runtime_type": str,
    "runtime_engine": str,
    "runtime_root": str,
    "runtime_path": str,
    "pod_annotations": list,
    "container_annotations": list,
    "options": FREE,  # checked against RUNC_OPTIONS when runtime_type is runc.v2 (checks.py)
    "privileged_without_host_devices": bool,
    "privileged_without_host_devices_all_devices_allowed": bool,
    "base_runtime_spec": str,
    "cni_conf_dir": str,
    "cni_max_conf_num": int,
    "snapshotter": str,
    "sandbox_mode": str,
    "sandboxer": str,
    "io_type": str,
    "treat_ro_mounts_as_rro": bool,
    "cgroup_writable": bool,
}
_CNI: Schema = {
    "bin_dir": str,
    "bin_dirs": list,
    "conf_dir": str,
    "max_conf_num": int,
    "conf_template": str,
    "ip_pref": str,
    "setup_serially": bool,
    "use_internal_loopback": bool,
}
_REGISTRY_V2: Schema = {
    "config_path": str,
    "mirrors": MapOf({"endpoint": list}),
    "configs": MapOf(
        {
            "auth": {"username": str, "password": str, "auth": str, "identitytoken": str},
            "tls": {"insecure_skip_verify": bool, "ca_file": str, "cert_file": str, "key_file": str},
        }
    ),
    "auths": MapOf(FREE),
    "headers": MapOf(list),
}
_STREAMING: Schema = {
    "disable_tcp_service": bool,
    "stream_server_address": str,
    "stream_server_port": str,
    "stream_idle_timeout": str,
    "enable_tls_streaming": bool,
    "x509_key_pair_streaming": {"tls_cert_file": str, "tls_key_file": str},
}
_CRI_RUNTIME_COMMON: Schema = {
    "enable_selinux": bool,
    "selinux_category_range": int,
    "max_container_log_line_size": int,
    "disable_cgroup": bool,
    "disable_apparmor": bool,
    "restrict_oom_score_adj": bool,
    "disable_proc_mount": bool,
    "unset_seccomp_profile": str,
    "tolerate_missing_hugetlb_controller": bool,
    "disable_hugetlb_controller": bool,
    "device_ownership_from_security_context": bool,
    "ignore_image_defined_volumes": bool,
    "netns_mounts_under_state_dir": bool,
    "enable_unprivileged_ports": bool,
    "enable_unprivileged_icmp": bool,
    "enable_cdi": bool,
    "cdi_spec_dirs": list,
    "drain_exec_sync_io_timeout": str,
    "cni": _CNI,
}
CRI_V2: Schema = {
    **_STREAMING,
    **_CRI_RUNTIME_COMMON,
    "sandbox_image": str,
    "stats_collect_period": int,
    "systemd_cgroup": bool,
    "max_concurrent_downloads": int,
    "image_pull_progress_timeout": str,
    "disable_snapshot_annotations": bool,
    "ignore_deprecation_warnings": list,
    "registry": _REGISTRY_V2,
    "image_decryption": {"key_model": str},
    "containerd": {
        "snapshotter": str,
        "default_runtime_name": str,
        "default_runtime": _RUNTIME,
        "untrusted_workload_runtime": _RUNTIME,
        "runtimes": MapOf(_RUNTIME),
        "no_pivot": bool,
        "disable_snapshot_annotations": bool,
        "discard_unpacked_layers": bool,
        "ignore_blockio_not_enabled_errors": bool,
        "ignore_rdt_not_enabled_errors": bool,
    },
}

#: Plugin ids of containerd 1.6.20 (`ctr plugins ls`) plus those 1.7 adds.
PLUGINS_V2 = frozenset(
    "io.containerd." + p
    for p in [
        "content.v1.content",
        "differ.v1.walking",
        "event.v1.exchange",
        "gc.v1.scheduler",
        "grpc.v1.containers",
        "grpc.v1.content",
        "grpc.v1.cri",
        "grpc.v1.diff",
        "grpc.v1.events",
        "grpc.v1.healthcheck",
        "grpc.v1.images",
        "grpc.v1.introspection",
        "grpc.v1.leases",
        "grpc.v1.namespaces",
        "grpc.v1.snapshots",
        "grpc.v1.tasks",
        "grpc.v1.version",
        "grpc.v1.sandbox-controllers",
        "grpc.v1.sandboxes",
        "grpc.v1.streaming",
        "grpc.v1.transfer",
        "internal.v1.opt",
        "internal.v1.restart",
        "internal.v1.tracing",
        "metadata.v1.bolt",
        "monitor.v1.cgroups",
        "nri.v1.nri",
        "runtime.v1.linux",
        "runtime.v2.task",
        "sandbox.controller.v1.local",
        "sandbox.store.v1.local",
        "service.v1.containers-service",
        "service.v1.content-service",
        "service.v1.diff-service",
        "service.v1.images-service",
        "service.v1.introspection-service",
        "service.v1.leases-service",
        "service.v1.namespaces-service",
        "service.v1.snapshots-service",
        "service.v1.tasks-service",
        "snapshotter.v1.aufs",
        "snapshotter.v1.blockfile",
        "snapshotter.v1.btrfs",
        "snapshotter.v1.devmapper",
        "snapshotter.v1.native",
        "snapshotter.v1.overlayfs",
        "snapshotter.v1.zfs",
        "streaming.v1.manager",
        "tracing.processor.v1.otlp",
        "transfer.v1.local",
        "warning.v1.deprecations",
        "lease.v1.manager",
    ]
)

#: The config tables of containerd 1.6's other plugins (each plugin's Config struct). Plugins listed in
#: PLUGINS_V2 without an entry here read no configuration in 1.6 (any key is ignored), except the
#: 1.7-only plugins in PLUGINS_V2_FREE, whose tables are not checked.
_ROOT_PATH: Schema = {"root_path": str}
PLUGIN_TABLES_V2: Mapping[str, Schema] = {
    "io.containerd.grpc.v1.cri": CRI_V2,
    "io.containerd.internal.v1.opt": {"path": str},
    "io.containerd.internal.v1.restart": {"interval": str},
    "io.containerd.gc.v1.scheduler": {
        "pause_threshold": float,
        "deletion_threshold": int,
        "mutation_threshold": int,
        "schedule_delay": str,
        "startup_delay": str,
    },
    "io.containerd.metadata.v1.bolt": {"content_sharing_policy": str},
    "io.containerd.monitor.v1.cgroups": {"no_prometheus": bool},
    "io.containerd.runtime.v2.task": {"platforms": list, "sched_core": bool},
    "io.containerd.runtime.v1.linux": {
        "shim": str,
        "runtime": str,
        "runtime_root": str,
        "no_shim": bool,
        "shim_debug": bool,
    },
    "io.containerd.service.v1.diff-service": {"default": list},
    "io.containerd.service.v1.tasks-service": {"rdt_config_file": str, "blockio_config_file": str},
    "io.containerd.snapshotter.v1.overlayfs": {
        "root_path": str,
        "upperdir_label": bool,
        "sync_remove": bool,
        "slow_chown": bool,
        "mount_options": list,
    },
    "io.containerd.snapshotter.v1.native": _ROOT_PATH,
    "io.containerd.snapshotter.v1.btrfs": _ROOT_PATH,
    "io.containerd.snapshotter.v1.zfs": _ROOT_PATH,
    "io.containerd.snapshotter.v1.aufs": _ROOT_PATH,
    "io.containerd.snapshotter.v1.devmapper": {
        "root_path": str,
        "pool_name": str,
        "base_image_size": str,
        "async_remove": bool,
        "discard_blocks": bool,
        "fs_type": str,
        "fs_options": str,
    },
}
PLUGINS_V2_FREE = frozenset(
    {
        "io.containerd.nri.v1.nri",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
        "io.containerd.transfer.v1.local",
        "io.containerd.snapshotter.v1.blockfile",
        "io.containerd.grpc.v1.transfer",
        "io.containerd.warning.v1.deprecations",
    }
)

CRI_IMAGES_V3: Schema = {
    "snapshotter": str,
    "disable_snapshot_annotations": bool,
    "discard_unpacked_layers": bool,
    "max_concurrent_downloads": int,
    "concurrent_layer_fetch_buffer": int,
    "image_pull_progress_timeout": str,
    "image_pull_with_sync_fs": bool,
    "stats_collect_period": int,
    "use_local_image_pull": bool,
    "pinned_images": MapOf(str),
    "runtime_platforms": MapOf({"platform": str, "snapshotter": str}),
    "registry": {"config_path": str, "headers": MapOf(list)},
    "image_decryption": {"key_model": str},
}
CRI_RUNTIME_V3: Schema = {
    **_CRI_RUNTIME_COMMON,
    "ignore_deprecation_warnings": list,
    "enable_criu": bool,
    "enable_experimental_restore_via_create": bool,
    "containerd": {
        "default_runtime_name": str,
        "ignore_blockio_not_enabled_errors": bool,
        "ignore_rdt_not_enabled_errors": bool,
        "runtimes": MapOf(_RUNTIME),
    },
}
#: containerd 2.3 added pod and container stats settings (durations) to the CRI runtime plugin.
CRI_RUNTIME_V4: Schema = {**CRI_RUNTIME_V3, "stats_collect_period": str, "stats_retention_period": str}
_PLUGIN_ID = re.compile(r"^io\.containerd\.[a-z0-9.-]+\.v[0-9]+\.[A-Za-z0-9_-]+$")


def plugin_schema(version: int, plugin_id: str) -> Any:
    """The schema of one plugin's table, FREE for non-CRI plugins, None if containerd has no such plugin."""
    if version == 2:
        if plugin_id in PLUGIN_TABLES_V2:
            return PLUGIN_TABLES_V2[plugin_id]
        if plugin_id in PLUGINS_V2_FREE:
            return FREE
        return {} if plugin_id in PLUGINS_V2 else None
    if plugin_id == "io.containerd.cri.v1.images":
        return CRI_IMAGES_V3
    if plugin_id == "io.containerd.cri.v1.runtime":
        return CRI_RUNTIME_V4 if version >= 4 else CRI_RUNTIME_V3
    if plugin_id == "io.containerd.grpc.v1.cri":
        return _STREAMING
    if version >= 4 and plugin_id in _SERVER_PLUGINS_V4:
        return _SERVER_PLUGINS_V4[plugin_id]
    return FREE if _PLUGIN_ID.match(plugin_id) else None


def quote_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key + '"'


def unknown_keys(doc: Mapping[str, Any], version: int) -> Iterator[tuple[str, str]]:
    """(key path, message) for every key containerd would ignore, or whose value has the wrong type."""
    for key, value in doc.items():
        if key == "plugins":
            if not isinstance(value, Mapping):
                yield "plugins", "must be a table"
                continue
            for plugin_id, table in value.items():
                schema = plugin_schema(version, plugin_id)
                path = f"plugins.{quote_key(plugin_id)}"
                if schema is None:
                    yield path, f"containerd (config version {version}) has no plugin {plugin_id!r}"
                else:
                    yield from _walk(table, schema, path)
            continue
        if version >= 4:
            yield from _top_v4(key, value)
        else:
            yield from _walk({key: value}, _TOP_COMMON, "")


def _top_v4(key: str, value: Any) -> Iterator[tuple[str, str]]:
    """A top-level key of a version 4 file: a listener key moved to its server plugin is named so."""
    if isinstance(value, Mapping) and key in ("grpc", "ttrpc", "debug", "metrics"):
        rest = {}
        for sub, item in value.items():
            moved = MOVED_IN_V4.get(f"{key}.{sub}")
            if moved is not None:
                yield f"{key}.{quote_key(sub)}", f"is not read in config version 4; set {moved}"
            else:
                rest[sub] = item
        if key not in _TOP_V4:
            for sub in rest:
                yield (
                    f"{key}.{quote_key(sub)}",
                    "containerd does not read this key (misspelt?); it would be ignored",
                )
            return
        value = rest
    yield from _walk({key: value}, _TOP_V4, "")


def _walk(value: Any, schema: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(schema, Free):
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, Mapping):
            yield path, "must be a table"
            return
        for name, item in value.items():
            yield from _walk(item, schema.item, f"{path}.{quote_key(name)}")
        return
    if isinstance(schema, Mapping):
        if not isinstance(value, Mapping):
            yield path, "must be a table"
            return
        for key, item in value.items():
            sub = f"{path}.{quote_key(key)}" if path else quote_key(key)
            if key not in schema:
                yield sub, "containerd does not read this key (misspelt?); it would be ignored"
                continue
            yield from _walk(item, schema[key], sub)
        return
    # a leaf type; TOML has no separate int/bool confusion to forgive: bool is not an int here
    accepted = (int, float) if schema is float else schema
    ok = isinstance(value, accepted) and not (schema in (int, float) and isinstance(value, bool))
    if not ok:
        yield path, f"must be {_type_name(schema)}, not {type(value).__name__}"


def _type_name(t: Any) -> str:
    names = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "an array"}
    return names.get(t, str(t))
