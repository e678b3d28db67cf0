"""The kubelet switch as a pure edit: which files change, and their exact new bytes.

Version-aware: the runtime endpoint goes where the node already sets it
(a flags file, or `containerRuntimeEndpoint` in the KubeletConfiguration, which exists from 1.27);
`--container-runtime` becomes `remote` before 1.27 and is dropped from 1.27 (kubelet refuses it);
dockershim-only flags (`--network-plugin`, `--cni-*`, `--docker-*`, ...) are dropped, since kubelet
1.24+ refuses them and with a remote runtime they do nothing. Files are parsed, changed and serialised
(never `sed`): an edit replaces only the bytes of the setting it changes, and the result is parsed
back and compared with what was meant before it is returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from shimshift.model.dockerera import LogRotation
from shimshift.model.errors import NodeError
from shimshift.model.facts import KubeletFacts
from shimshift.model.kubeletunits import (
    UnitEditError,
    add_exec_flags,
    edit_unit,
    editable,
    kubelet_unit_flags,
    live_exec_unit,
    switch_edits,
)
from shimshift.model.limits import MAX_NODE_FILE_BYTES, InputLimitError, check_size, yaml_load
from shimshift.model.spec import KubeletConfigMethod
from shimshift.steps.kubeletfiles import (
    CONFIG_ENDPOINT_SINCE,
    DOCKERSHIM_FLAGS,
    FLAGS_FILES,
    INSTANCE_CONFIG,
    LOG_ROTATION_KEYS,
    EnvFileError,
    env_value,
    explicit_log_rotation,
    is_dockershim_flag,
    join_flags,
    kubelet_minor,
    parse_env_file,
    set_env_value,
    split_flags,
    switched_flag,
)

__all__ = ["CONFIG_ENDPOINT_SINCE", "DOCKERSHIM_FLAGS", "is_dockershim_flag"]


@dataclass(frozen=True)
class FileEdit:
    path: str
    before: str
    after: str


@dataclass(frozen=True)
class KubeletSwitch:
    """The planned switch: exact file contents, and what a report says about it."""

    edits: tuple[FileEdit, ...]
    endpoint: str
    endpoint_file: str
    endpoint_key: str  # a flag (`--container-runtime-endpoint`) or a config key
    removed_flags: tuple[str, ...]
    notes: tuple[str, ...] = ()
    #: Docker's log rotation carried into the kubelet: (setting, value, file) each.
    log_rotation: tuple[tuple[str, str, str], ...] = ()
    #: the flags changed in the admin's kubelet units: (unit file, flag as it was, "removed" or its new
    #: value) each, and (unit file, flag, "added") for one added to a hand-rolled unit that has no flags
    #: file beside it; the switch then runs `systemctl daemon-reload`
    unit_changes: tuple[tuple[str, str, str], ...] = ()

    @property
    def daemon_reload(self) -> bool:
        return bool(self.unit_changes)

    @property
    def changed(self) -> bool:
        return any(e.before != e.after for e in self.edits)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(e.path for e in self.edits)


def plan_kubelet_switch(
    node: str,
    kubelet: KubeletFacts,
    *,
    endpoint: str,
    method: KubeletConfigMethod = KubeletConfigMethod.AUTO,
    kubelet_version: str | None = None,
    log_rotation: LogRotation | None = None,
) -> KubeletSwitch:
    """Edit the node's kubelet files so the kubelet uses `endpoint`; a switched node gives no edits.
    `log_rotation`: Docker's json-file rotation, carried into the settings the kubelet does not set
    itself (containerLogMaxSize / containerLogMaxFiles in its config file, else the flags)."""
    minor = _minor(kubelet_version or kubelet.version)
    if minor is None:
        raise NodeError(
            node,
            "the kubelet version is unknown (facts could not read `kubelet --version`); pass the Node's "
            "status.nodeInfo.kubeletVersion so the switch knows which flags this kubelet accepts",
        )
    if not endpoint or any(c.isspace() for c in endpoint) or "\x00" in endpoint:
        # systemd splits $VAR on whitespace: such an endpoint would become several kubelet arguments.
        raise NodeError(node, f"spec.kubelet.runtimeEndpoint {endpoint!r} must be one word (no whitespace)")
    files = dict(kubelet.files)
    new = dict(files)
    removed: list[str] = []
    notes: list[str] = []
    endpoint_in_flags: list[tuple[str, str]] = []  # (file, variable)

    # 1. Every flags file: drop dockershim-only flags and --container-runtime, note where the endpoint is.
    for path, _var, _m in FLAGS_FILES:
        text = files.get(path)
        if text is None:
            continue
        try:
            assignments = parse_env_file(text)
        except EnvFileError as e:
            raise NodeError(
                node, f"{path}: {e}; fix the file by hand or set spec.kubelet.configMethod"
            ) from e
        out = text
        for a in {a.name: a for a in assignments}.values():
            flags = split_flags(a.value)
            if not a.value.strip().startswith("-"):
                continue
            kept: list[tuple[str, str | None]] = []
            for name, val in flags:
                keep, val = switched_flag(name, val, minor, endpoint)
                if not keep:
                    removed.append(f"--{name}")
                    continue
                if name == "container-runtime-endpoint":
                    endpoint_in_flags.append((path, a.name))
                kept.append((name, val))
            if kept != list(flags):
                out = set_env_value(out, a.name, join_flags(kept))
        new[path] = out

    # 1b. The admin's kubelet units (/etc/systemd/system): the same flags, the same way, out of their
    # Environment= and ExecStart= lines; a packaged unit (/lib, /usr/lib) is never edited.
    units: dict[str, str] = {}
    unit_changes: list[tuple[str, str, str]] = []
    for path in sorted(p for p in kubelet.units if editable(p)):
        try:
            edit = edit_unit(path, kubelet.units[path], lambda n, v: switched_flag(n, v, minor, endpoint))
        except UnitEditError as e:
            raise NodeError(node, f"{e}; edit the kubelet's flags in {path} by hand") from e
        if edit.after != kubelet.units[path]:
            units[path] = edit.after
            for flag, what in edit.changed:
                unit_changes.append((path, flag.shown, what))
                if what == "removed":
                    removed.append(f"--{flag.name}")

    config_file = kubelet.config_file
    config_has_endpoint = "containerRuntimeEndpoint" in kubelet.config
    live = [
        f
        for f in kubelet_unit_flags(kubelet.units, files, kubelet.env_files)
        if f.live and switch_edits(f) and not f.unsafe
    ]
    unit_endpoint = next((f.path for f in reversed(live) if f.name == "container-runtime-endpoint"), None)
    exec_unit = live_exec_unit(kubelet.units)
    unit = unit_endpoint or (exec_unit if exec_unit and editable(exec_unit) else None)
    target = _target(method, minor, files, config_file, config_has_endpoint, endpoint_in_flags, node, unit)

    # 2. Put the endpoint where it belongs.
    if target[0] == "unit":
        # no flags file: a hand-rolled kubelet.service under /etc/systemd/system gets the flags itself
        endpoint_file = target[1]
        wanted_flags: list[tuple[str, str]] = []
        has_runtime = any(f.name == "container-runtime" for f in live) or any(
            n == "container-runtime" for n, _ in kubelet.flags
        )
        if minor < CONFIG_ENDPOINT_SINCE and not has_runtime:
            wanted_flags.append(("container-runtime", "remote"))
        if unit_endpoint is None:
            wanted_flags.append(("container-runtime-endpoint", endpoint))
        if wanted_flags:
            text = units.get(endpoint_file, kubelet.units[endpoint_file])
            try:
                units[endpoint_file] = add_exec_flags(endpoint_file, text, wanted_flags)
            except UnitEditError as e:
                raise NodeError(
                    node, f"{e}; set the kubelet's runtime endpoint in {endpoint_file} by hand"
                ) from e
            unit_changes += [(endpoint_file, f"--{n}={v}", "added") for n, v in wanted_flags]
        endpoint_key = "--container-runtime-endpoint"
    elif target[0] == "config":
        assert config_file is not None
        new[config_file] = set_yaml_top_level(new[config_file], "containerRuntimeEndpoint", endpoint)
        endpoint_file, endpoint_key = config_file, "containerRuntimeEndpoint"
    else:
        endpoint_file, variable = target[1], target[2]
        if not endpoint_in_flags:
            added = list(split_flags(env_value(new[endpoint_file], variable) or ""))
            if minor < CONFIG_ENDPOINT_SINCE:
                added = [f for f in added if f[0] != "container-runtime"]
                added.append(("container-runtime", "remote"))
            added.append(("container-runtime-endpoint", endpoint))
            new[endpoint_file] = set_env_value(new[endpoint_file], variable, join_flags(added))
        endpoint_key = "--container-runtime-endpoint"
    # A config file that still names another endpoint while the flag wins would mislead the next reader.
    if target[0] != "config" and config_has_endpoint and config_file:
        new[config_file] = set_yaml_top_level(new[config_file], "containerRuntimeEndpoint", endpoint)
        notes.append(f"{config_file}: containerRuntimeEndpoint updated to match the flag")
    instance = files.get(INSTANCE_CONFIG)
    if instance is not None and "containerRuntimeEndpoint" in _yaml_mapping(instance, INSTANCE_CONFIG, node):
        new[INSTANCE_CONFIG] = set_yaml_top_level(instance, "containerRuntimeEndpoint", endpoint)

    # 3. Docker's log rotation, where the kubelet sets none of its own.
    carried: list[tuple[str, str, str]] = []
    if log_rotation is not None and log_rotation.max_size is not None:
        explicit = explicit_log_rotation(kubelet)
        wanted: dict[str, str | int] = {"containerLogMaxSize": log_rotation.max_size}
        if log_rotation.max_files is not None:
            wanted["containerLogMaxFiles"] = log_rotation.max_files
        wanted = {k: v for k, v in wanted.items() if k not in explicit}
        if wanted and config_file and config_file in new:
            _yaml_mapping(new[config_file], config_file, node)  # unreadable: that node's NodeError
            for key, value in wanted.items():
                try:
                    new[config_file] = set_yaml_top_level(new[config_file], key, value)
                except (ValueError, yaml.YAMLError) as e:
                    raise NodeError(
                        node,
                        f"{config_file}: Docker's log rotation ({key} {value}) cannot be written into it "
                        f"({e}); set containerLogMaxSize / containerLogMaxFiles in it by hand",
                    ) from e
                carried.append((key, str(value), config_file))
        elif wanted and target[0] == "unit":
            path = target[1]
            log_flags = [(LOG_ROTATION_KEYS[k], str(v)) for k, v in wanted.items()]
            try:
                units[path] = add_exec_flags(path, units.get(path, kubelet.units[path]), log_flags)
            except UnitEditError as e:
                raise NodeError(node, f"{e}; set the kubelet's log rotation in {path} by hand") from e
            unit_changes += [(path, f"--{n}={v}", "added") for n, v in log_flags]
            carried += [(f"--{n}", v, path) for n, v in log_flags]
        elif wanted:
            path, variable = target[1], target[2]
            if target[0] == "config":  # unreachable: a config target has a config file
                raise NodeError(node, "the kubelet config file vanished from the plan (internal error)")
            args: list[tuple[str, str | None]] = list(split_flags(env_value(new[path], variable) or ""))
            args += [(LOG_ROTATION_KEYS[k], str(v)) for k, v in wanted.items()]
            new[path] = set_env_value(new[path], variable, join_flags(args))
            carried += [(f"--{LOG_ROTATION_KEYS[k]}", str(v), path) for k, v in wanted.items()]

    edits = tuple(FileEdit(p, files[p], new[p]) for p in files if new.get(p, files[p]) != files[p])
    edits += tuple(FileEdit(p, kubelet.units[p], after) for p, after in units.items())
    _verify(node, edits, endpoint, minor, endpoint_file)
    return KubeletSwitch(
        edits=edits,
        endpoint=endpoint,
        endpoint_file=endpoint_file,
        endpoint_key=endpoint_key,
        removed_flags=tuple(dict.fromkeys(removed)),
        notes=tuple(notes),
        log_rotation=tuple(carried),
        unit_changes=tuple(unit_changes),
    )


def _target(
    method: KubeletConfigMethod,
    minor: int,
    files: Mapping[str, str],
    config_file: str | None,
    config_has_endpoint: bool,
    endpoint_in_flags: list[tuple[str, str]],
    node: str,
    unit: str | None = None,
) -> tuple[str, str, str]:
    """("config", file, key), ("flags", file, variable), or ("unit", file, "") where no flags file
    exists and `unit` (an admin's kubelet unit with the live ExecStart=) takes the flags itself."""
    by_method = {m: (p, v) for p, v, m in FLAGS_FILES}
    if method is KubeletConfigMethod.KUBELET_CONFIGURATION or (
        method is KubeletConfigMethod.AUTO
        and not endpoint_in_flags
        and config_file
        and (config_has_endpoint or minor >= CONFIG_ENDPOINT_SINCE)
    ):
        if not config_file or config_file not in files:
            raise NodeError(
                node,
                "spec.kubelet.configMethod is KubeletConfiguration but no kubelet config "
                "file was found (no --config flag); choose a flags-file method",
            )
        if minor < CONFIG_ENDPOINT_SINCE:
            raise NodeError(
                node,
                f"spec.kubelet.configMethod KubeletConfiguration needs kubelet 1.{CONFIG_ENDPOINT_SINCE}+"
                f" (containerRuntimeEndpoint); this kubelet is 1.{minor}: use Auto or a flags file",
            )
        return ("config", config_file, "containerRuntimeEndpoint")
    if method in by_method:
        path, variable = by_method[method]
        if path not in files:
            raise NodeError(
                node,
                f"spec.kubelet.configMethod is {method.value} but {path} does not exist "
                "on the node; use Auto",
            )
        return ("flags", path, variable)
    if method is KubeletConfigMethod.INSTANCE_CONFIG:
        raise NodeError(
            node,
            "spec.kubelet.configMethod InstanceConfig: instance-config.yaml is updated "
            "automatically when present; use Auto",
        )
    if endpoint_in_flags:
        path, variable = endpoint_in_flags[-1]
        return ("flags", path, variable)
    for path, variable, _m in FLAGS_FILES:
        if path in files:
            return ("flags", path, variable)
    if unit is not None:
        return ("unit", unit, "")
    raise NodeError(
        node,
        "no kubelet flags file (kubeadm-flags.env, kubelet.env, /etc/default/kubelet, "
        "/etc/sysconfig/kubelet), no kubelet config file and no kubelet unit under /etc/systemd/system "
        "with an ExecStart= was found; set spec.kubelet.configMethod or create one of them",
    )


_minor = kubelet_minor


def _yaml_mapping(text: str, path: str, node: str) -> Mapping[str, Any]:
    try:
        check_size(text, MAX_NODE_FILE_BYTES, path)
        data = yaml_load(text)
    except yaml.YAMLError as e:
        raise NodeError(node, f"{path} is not valid YAML ({e}); fix it before migrating") from e
    except InputLimitError as e:
        raise NodeError(node, f"{path} cannot be read safely ({e}); fix it before migrating") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NodeError(node, f"{path} is not a YAML mapping; fix it before migrating")
    return data


_PLAIN = re.compile(r"^[A-Za-z0-9_./+@-][A-Za-z0-9_./:+@-]*$")


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when it reads back as itself, else double-quoted."""
    if _PLAIN.match(value):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:  # e.g. "@" or "`": reserved indicators cannot start a plain scalar
            pass
    quoted: str = yaml.safe_dump(value, default_style='"', width=2**31)
    return quoted.strip()


def set_yaml_top_level(text: str, key: str, value: str | int) -> str:
    """Set a top-level string (or integer) key of a block-style YAML mapping, touching only that
    value's bytes."""
    check_size(text, MAX_NODE_FILE_BYTES, "the file")
    yaml_load(text)  # depth and aliases bounded (InputLimitError) before the unguarded compose below
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        before = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {e}") from e
    shown = str(value) if isinstance(value, int) else _scalar(value)
    if root is None:
        before = {}
        sep = "" if not text or text.endswith("\n") else "\n"
        out = text + sep + f"{key}: {shown}\n"
    else:
        if not isinstance(root, yaml.MappingNode) or root.flow_style or root.start_mark.column != 0:
            raise ValueError("expected a block-style mapping at the top level")
        out = ""
        for k, v in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                if not isinstance(v, yaml.ScalarNode):
                    raise ValueError(f"{key} is not a scalar")
                out = text[: v.start_mark.index] + shown + text[v.end_mark.index :]
        if not out:
            sep = "" if text.endswith("\n") else "\n"
            out = text + sep + f"{key}: {shown}\n"
    after = yaml.safe_load(out)
    if after != {**before, key: value}:
        raise ValueError(f"setting {key} would change other keys; edit the file by hand")
    return out


def _verify(
    node: str, edits: tuple[FileEdit, ...], endpoint: str, minor: int, endpoint_file: str = ""
) -> None:
    """Parse every edited file back: valid, no dockershim flag left, the endpoint present."""
    for e in edits:
        if editable(e.path) and e.path.endswith((".service", ".conf")):
            for f in kubelet_unit_flags({e.path: e.after}):
                if not f.unsafe and switched_flag(f.name, f.value, minor, endpoint) != (True, f.value):
                    raise NodeError(node, f"{e.path}: {f.shown} survived the edit (internal error)")
            if e.path == endpoint_file and not any(
                f.name == "container-runtime-endpoint" for f in kubelet_unit_flags({e.path: e.after})
            ):
                raise NodeError(node, f"{e.path}: endpoint edit did not take (internal error)")
            continue
        if e.path.endswith((".yaml", ".yml")):
            _yaml_mapping(e.after, e.path, node)
            continue
        for a in parse_env_file(e.after):
            for name, val in split_flags(a.value) if a.value.strip().startswith("-") else ():
                if is_dockershim_flag(name, minor) or (name == "container-runtime" and minor >= 27):
                    raise NodeError(node, f"{e.path}: --{name} survived the edit (internal error)")
                if name == "container-runtime-endpoint" and val != endpoint:
                    raise NodeError(node, f"{e.path}: endpoint edit did not take (internal error)")
