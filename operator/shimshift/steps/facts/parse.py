"""Turn the facts probe's output (playbooks/scripts/facts.sh) into a typed `NodeFacts`. Pure.

The probe prints one record per line, `<key>\\t<base64 stdout>\\t<exit status|missing>`, so file
contents and command output arrive byte for byte whatever they contain. Parsing is tolerant: a
missing file, a failed command or unparsable output leaves the field empty and says why in
`NodeFacts.unreadable`, keyed by what could not be read. Private keys are never carried: the probe
sends only their sha256.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from shimshift.model.errors import NodeError
from shimshift.model.facts import (
    MAX_OUTSIDE_CONTAINERS,
    Distribution,
    DockerCertFiles,
    DockerImage,
    K8sContainer,
    KubeletFacts,
    KubeletLayout,
    NodeFacts,
    OutsideContainer,
    Setting,
)
from shimshift.model.kubeletunits import kubelet_unit_flags
from shimshift.model.limits import MAX_NODE_FILE_BYTES, InputLimitError, check_size, json_loads, yaml_load
from shimshift.model.proxy import CONTAINERD_DROPIN_DIR, DOCKER_DROPIN_DIR, DOCKER_UNIT, proxy_environment
from shimshift.model.unitlimits import proc_limits
from shimshift.steps import kubeletfiles as kl
from shimshift.steps.kubeletfiles import EnvFileError, parse_env_file, split_flags, unit_flags

PROBE_FORMAT = "1"
#: Where systemd looks for units, first wins (facts.sh reads the same)
_UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
#: docker.service and containerd.service where systemd looks for them
SERVICE_UNITS = tuple(f"{d}/{unit}.service" for unit in ("docker", "containerd") for d in _UNIT_DIRS)
#: containerd.service's drop-in directories besides /etc's (whose files are `containerd_dropins`)
CONTAINERD_VENDOR_DROPIN_DIRS = tuple(f"{d}/containerd.service.d" for d in _UNIT_DIRS[1:])
#: cri-dockerd's service units the probe reads (facts.sh), the one systemd uses first.
CRI_DOCKERD_UNITS = ("/etc/systemd/system/cri-docker.service", "/lib/systemd/system/cri-docker.service")
_K8S_NAME = re.compile(r"^k8s_(?P<container>[^_]+)_(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<uid>[^_]+)_(?P<n>\d+)$")
_LAYOUTS = {
    kl.KUBEADM_FLAGS: KubeletLayout.KUBEADM_FLAGS,
    kl.KUBESPRAY_ENV: KubeletLayout.KUBESPRAY_ENV,
    kl.DEFAULT_FILE: KubeletLayout.DEFAULT_FILE,
    kl.SYSCONFIG_FILE: KubeletLayout.SYSCONFIG_FILE,
}


@dataclass(frozen=True)
class Record:
    key: str
    data: bytes
    status: str  # "0", another exit status, or "missing"

    @property
    def ok(self) -> bool:
        return self.status == "0"

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def why(self) -> str:
        if self.status == "missing":
            return "does not exist"
        if self.status == "127":
            return "command not found"
        if self.status == "124":
            return "timed out"
        return f"exit status {self.status}"


def parse_records(node: str, output: str) -> dict[str, Record]:
    """Split probe output into records; a truncated or foreign output is an error naming the node."""
    lines = output.splitlines()
    if not lines or lines[0] != f"shimshift-facts\t{PROBE_FORMAT}":
        raise NodeError(node, "the facts probe printed no header; is /bin/sh a POSIX shell with base64?")
    if lines[-1] != "shimshift-facts\tend":
        raise NodeError(node, "the facts probe output is truncated (no end marker); re-run the facts step")
    records: dict[str, Record] = {}
    for line in lines[1:-1]:
        parts = line.split("\t")
        if len(parts) != 3:
            raise NodeError(node, f"the facts probe printed a malformed record: {line[:80]!r}")
        key, payload, status = parts
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error as e:
            raise NodeError(node, f"the facts probe record {key!r} is not base64") from e
        records[key] = Record(key, data, status)
    return records


def parse_facts(node: str, output: str, *, kubelet_version: str | None = None) -> NodeFacts:
    """NodeFacts from probe output; `kubelet_version` (the Node's nodeInfo) is used when no binary answers."""
    r = parse_records(node, output)
    unreadable: dict[str, str] = {}

    def get(key: str, what: str) -> Record | None:
        rec = r.get(key)
        if rec is None:
            unreadable[what] = "not probed"
            return None
        if not rec.ok:
            unreadable[what] = rec.why()
            return None
        return rec

    def file(path: str) -> str | None:
        rec = r.get(f"file:{path}")
        if rec is None or rec.status == "missing":
            return None
        if not rec.ok:
            unreadable[path] = rec.why()
            return None
        return rec.text

    os_release = None
    if (rec := get("file:/etc/os-release", "/etc/os-release")) is not None:
        os_release = _os_release(rec.text)
    kernel = rec.text.strip() if (rec := get("kernel", "kernel")) else None
    min_link_mtu = None
    if (rec := r.get("links")) is not None:  # older probes did not read them
        if rec.ok:
            min_link_mtu = _min_link_mtu(rec.text)
        else:
            unreadable["the node's network interfaces"] = rec.why()

    docker_version = docker_cgroup = None
    docker_root = None
    if (rec := get("docker-info", "docker info")) is not None:
        try:
            info = json_loads(rec.text)
            docker_version = info.get("ServerVersion") or None
            docker_cgroup = info.get("CgroupDriver") or None
            root = info.get("DockerRootDir")
            docker_root = root if isinstance(root, str) and root.startswith("/") else None
        except (json.JSONDecodeError, InputLimitError, AttributeError):
            unreadable["docker info"] = "not JSON"

    containerd_version = None
    if (rec := get("containerd-version", "containerd --version")) is not None:
        m = re.search(r"\s(v?\d+\.\d+\.\d+\S*)", rec.text)
        containerd_version = m.group(1) if m else None
    cri_enabled: bool | None = None
    snapshotters: dict[str, str] = {}
    if (rec := get("ctr-plugins", "ctr plugins ls")) is not None:
        cri_enabled = _cri_ok(rec.text)
        snapshotters = _snapshotters(rec.text)
    crictl_version = None
    if (rec := r.get("crictl-version")) is not None and rec.ok:  # no crictl (127) is no problem
        m = re.search(r"\s(v?\d+\.\d+\.\d+\S*)", rec.text)
        crictl_version = m.group(1) if m else None
    containerd_images: tuple[str, ...] = ()
    if (rec := get("ctr-images", "containerd images")) is not None:
        containerd_images = tuple(x for x in rec.text.split() if x.startswith("sha256:"))

    services = {}
    for unit in ("docker", "containerd", "kubelet", "cri-docker"):
        rec = r.get(f"active:{unit}")
        if rec is not None:
            services[unit] = rec.text.strip() == "active"

    free = mount = None
    docker_free = docker_mount = None
    for key, rec in r.items():
        if key.startswith("df:"):
            if rec.ok:
                free, mount = _df_available(rec.text), _df_mount(rec.text)
            else:
                unreadable["free disk"] = rec.why()
        elif key.startswith("dfdocker:") and rec.ok:
            docker_free, docker_mount = _df_available(rec.text), _df_mount(rec.text)

    config = file("/etc/containerd/config.toml")
    daemon_json = None
    if (text := file("/etc/docker/daemon.json")) is not None:
        try:
            loaded = json_loads(text)
            daemon_json = loaded if isinstance(loaded, dict) else None
            if daemon_json is None:
                unreadable["/etc/docker/daemon.json"] = "not a JSON object"
        except (json.JSONDecodeError, InputLimitError) as e:
            unreadable["/etc/docker/daemon.json"] = f"not JSON: {e}"

    images = _images(r.get("docker-images"), unreadable)
    containers = _containers(r.get("docker-containers"), unreadable, images)
    outside, outside_more = outside_containers(r.get("docker-running"), unreadable)
    distribution, evidence = _distribution(r, outside)
    kubelet = _kubelet(r, file, unreadable, kubelet_version)
    cri_dockerd_unit = None
    cri_dockerd_flags: tuple[tuple[str, str], ...] = ()
    for path in CRI_DOCKERD_UNITS:  # systemd: /etc overrides /lib
        if (text := file(path)) is not None:
            cri_dockerd_unit, cri_dockerd_flags = path, tuple(unit_flags(text))
            break

    docker_units = {DOCKER_UNIT: text} if (text := file(DOCKER_UNIT)) is not None else {}
    docker_units |= {p: t for p in _dropins(r, DOCKER_DROPIN_DIR) if (t := file(p)) is not None}
    containerd_dropins = {p: t for p in _dropins(r, CONTAINERD_DROPIN_DIR) if (t := file(p)) is not None}
    service_units = {p: t for p in SERVICE_UNITS if (t := file(p)) is not None}
    service_units |= {p: t for p, t in docker_units.items() if p != DOCKER_UNIT}
    for directory in CONTAINERD_VENDOR_DROPIN_DIRS:  # containerd's KillMode may be set there too
        service_units |= {p: t for p in _dropins(r, directory) if (t := file(p)) is not None}
    containerd_limits: dict[str, str] = {}
    containerd_parent = None
    if (rec := r.get("containerd-limits")) is not None and rec.ok:
        containerd_limits = proc_limits(rec.text)
        parents = [
            line[len("parent ") :].strip() for line in rec.text.splitlines() if line.startswith("parent ")
        ]
        containerd_parent = parents[-1] if parents and parents[-1] else None
    elif rec is not None and services.get("containerd"):
        # containerd runs but its limits could not be read: whether a drop-in must keep them is unknown
        unreadable["the running containerd's limits (/proc/<pid>/limits)"] = rec.why()
    cni_conf_dirs, cni_configs, cni_bin_dirs = _cni(r, unreadable)

    return NodeFacts(
        node=node,
        os_release=os_release,
        kernel=kernel,
        docker_version=docker_version,
        docker_running=services.get("docker", docker_version is not None),
        docker_cgroup_driver=docker_cgroup,
        containerd_version=containerd_version,
        containerd_config=config,
        containerd_config_version=_config_version(config),
        containerd_running=services.get("containerd", False),
        containerd_root_free_bytes=free,
        containerd_root_mount=mount,
        docker_root=docker_root,
        docker_root_mount=docker_mount,
        docker_root_free_bytes=docker_free,
        roots_share_filesystem=_one_device(r),
        containerd_images=containerd_images,
        cri_enabled=cri_enabled,
        snapshotters=snapshotters,
        crictl_version=crictl_version,
        daemon_json=daemon_json,
        docker_certs=_certs(r),
        kubelet=kubelet,
        images=images,
        containers=containers,
        cri_dockerd=_ok(r, "file:/etc/systemd/system/cri-docker.service")
        or services.get("cri-docker", False),
        cri_dockerd_flags=cri_dockerd_flags,
        min_link_mtu=min_link_mtu,
        cri_dockerd_unit=cri_dockerd_unit,
        docker_proxy_env=proxy_environment(docker_units),
        containerd_dropins=containerd_dropins,
        service_units=service_units,
        containerd_limits=containerd_limits,
        containerd_parent=containerd_parent,
        containerd_default_spec=_default_spec(r),
        services=services,
        unreadable=unreadable,
        outside_containers=outside,
        outside_containers_more=outside_more,
        distribution=distribution,
        distribution_evidence=evidence,
        cni_conf_dirs=cni_conf_dirs,
        cni_configs=cni_configs,
        cni_bin_dirs=cni_bin_dirs,
        runtime_binaries=_runtime_binaries(r),
    )


def _runtime_binaries(r: Mapping[str, Record]) -> dict[str, str]:
    """`runtime-bin:NAME` records: where the executable containerd would run is ("" when missing)."""
    out: dict[str, str] = {}
    for key, rec in r.items():
        kind, _, name = key.partition(":")
        if kind == "runtime-bin" and name:
            out[name] = rec.text.strip() if rec.ok else ""
    return out


def _cni(
    r: Mapping[str, Record], unreadable: dict[str, str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, str], dict[str, tuple[str, ...]]]:
    """The CNI directories the probe listed (`cni-conf:DIR`, `cni-bin:DIR`: the names in them; a
    missing directory lists none) and the config files it read (`cnifile:PATH`)."""
    conf_dirs: dict[str, tuple[str, ...]] = {}
    bin_dirs: dict[str, tuple[str, ...]] = {}
    configs: dict[str, str] = {}
    for key, rec in r.items():
        kind, _, path = key.partition(":")
        if kind not in ("cni-conf", "cni-bin", "cnifile") or not path.startswith("/"):
            continue
        if kind == "cnifile":
            if rec.ok:
                configs[path] = rec.text
            continue
        if not rec.ok and rec.status != "missing":
            unreadable[f"CNI directory {path}"] = rec.why()
            continue
        names = tuple(sorted({n for n in rec.text.splitlines() if n and "/" not in n})) if rec.ok else ()
        (conf_dirs if kind == "cni-conf" else bin_dirs)[path] = names
    return conf_dirs, configs, bin_dirs


def _default_spec(r: Mapping[str, Record]) -> str | None:
    rec = r.get("ctr-oci-spec")
    return rec.text if rec is not None and rec.ok and rec.text.strip().startswith("{") else None


def _dropins(r: Mapping[str, Record], directory: str) -> list[str]:
    """The *.conf drop-ins of `directory` the probe read, in systemd's order (by file name)."""
    prefix = f"file:{directory}/"
    names = [k[len(prefix) :] for k in r if k.startswith(prefix) and k.endswith(".conf")]
    return [f"{directory}/{n}" for n in sorted(n for n in names if "/" not in n)]


def _ok(r: Mapping[str, Record], key: str) -> bool:
    rec = r.get(key)
    return rec is not None and rec.ok


def _os_release(text: str) -> str | None:
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq:
            values[name.strip()] = value.strip().strip("\"'")
    return values.get("PRETTY_NAME") or values.get("NAME")


def _snapshotters(plugins: str) -> dict[str, str]:
    return {
        cols[1]: cols[-1]
        for line in plugins.splitlines()
        if len(cols := line.split()) >= 4 and cols[0] == "io.containerd.snapshotter.v1"
    }


def _cri_ok(plugins: str) -> bool:
    for line in plugins.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[0] == "io.containerd.grpc.v1" and cols[1] == "cri":
            return cols[-1] == "ok"
    return False


def _one_device(r: Mapping[str, Record]) -> bool | None:
    """`stat -c '%d %n' ROOT DOCKER_ROOT`: both on one device, or None when not read."""
    rec = r.get("devices")
    if rec is None or not rec.ok:
        return None
    devices = [line.split(" ", 1)[0] for line in rec.text.splitlines() if line.strip()]
    return len(devices) == 2 and devices[0] == devices[1] if len(devices) == 2 else None


def _df_mount(text: str) -> str | None:
    """df -P's "Mounted on" (the last column, which may hold spaces: everything after the fifth)."""
    lines = text.strip().splitlines()
    if len(lines) < 2:
        return None
    cols = lines[-1].split(None, 5)
    return cols[5] if len(cols) == 6 and cols[5].startswith("/") else None


def _df_available(text: str) -> int | None:
    lines = text.strip().splitlines()
    if len(lines) < 2:
        return None
    cols = " ".join(lines[1:]).split()
    return int(cols[3]) if len(cols) >= 4 and cols[3].isdigit() else None


def _config_version(config: str | None) -> int | None:
    if config is None:
        return None
    m = re.search(r"(?m)^\s*version\s*=\s*(\d+)\s*(#.*)?$", config)
    return int(m.group(1)) if m else 1


def _images(rec: Record | None, unreadable: dict[str, str]) -> tuple[DockerImage, ...]:
    if rec is None or not rec.ok:
        unreadable["docker images"] = rec.why() if rec else "not probed"
        return ()
    if not rec.data.strip():
        return ()
    try:
        raw = json_loads(rec.text)
        return tuple(
            DockerImage(
                id=i["Id"],
                repo_tags=tuple(i.get("RepoTags") or ()),
                repo_digests=tuple(i.get("RepoDigests") or ()),
                size=int(i.get("Size") or 0),
            )
            for i in raw
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        unreadable["docker images"] = f"unexpected `docker image inspect` output: {e}"
        return ()


def _containers(
    rec: Record | None, unreadable: dict[str, str], images: tuple[DockerImage, ...]
) -> tuple[K8sContainer, ...]:
    if rec is None or not rec.ok:
        unreadable["docker containers"] = rec.why() if rec else "not probed"
        return ()
    out = []
    for line in rec.text.splitlines():
        try:
            c: Mapping[str, Any] = json_loads(line)
        except (json.JSONDecodeError, InputLimitError):
            unreadable["docker containers"] = "unexpected `docker ps` output"
            continue
        m = _K8S_NAME.match(str(c.get("Names", "")).lstrip("/"))
        if not m:
            continue
        out.append(
            K8sContainer(
                name=m.group(0),
                container=m.group("container"),
                pod=m.group("pod"),
                namespace=m.group("ns"),
                image=str(c.get("Image", "")),
                running=c.get("State") == "running",
            )
        )
    return tuple(out)


#: the label dockershim (and cri-dockerd) puts on every container it creates
POD_NAME_LABEL = "io.kubernetes.pod.name"
_RKE_IMAGES = ("rancher/hyperkube", "rancher/rke-tools")


def outside_containers(
    rec: Record | None, unreadable: dict[str, str], limit: int = MAX_OUTSIDE_CONTAINERS
) -> tuple[tuple[OutsideContainer, ...], int]:
    """The running containers the kubelet did not create, from lines of `docker inspect --format
    '[{{json .Name}},{{json .Config.Image}},{{json .HostConfig.RestartPolicy.Name}},{{json
    .Config.Labels}}]'`: the first `limit` by name, and how many more. A probe without this record
    (older facts) lists none."""
    if rec is None:
        return (), 0
    if not rec.ok:
        unreadable["docker containers outside the kubelet"] = rec.why()
        return (), 0
    found: list[OutsideContainer] = []
    for line in rec.text.splitlines():
        if not line.strip():
            continue
        try:
            row = json_loads(line)
            name, image, restart, labels = row
            if not isinstance(name, str) or not isinstance(image, str):
                raise TypeError("name and image are strings")
        except (json.JSONDecodeError, InputLimitError, TypeError, ValueError):
            unreadable["docker containers outside the kubelet"] = (
                "unexpected `docker inspect` output (want [name, image, restart policy, labels] a line)"
            )
            continue
        name = name.lstrip("/")
        if (isinstance(labels, Mapping) and POD_NAME_LABEL in labels) or name.startswith("k8s_"):
            continue
        found.append(OutsideContainer(name, image, restart if isinstance(restart, str) else ""))
    found.sort(key=lambda c: c.name)
    return tuple(found[:limit]), max(0, len(found) - limit)


def _distribution(
    r: Mapping[str, Record], outside: tuple[OutsideContainer, ...]
) -> tuple[Distribution | None, str]:
    """RKE1 (the kubelet is a Docker container), RKE2 or k3s (their own containerd), with the evidence."""

    def exists(path: str) -> bool:
        return _ok(r, f"exists:{path}")

    kubelet = next((c for c in outside if c.name == "kubelet"), None)
    if kubelet is not None:
        repo = kubelet.image.split("@", 1)[0].rsplit(":", 1)[0]
        if repo.endswith(_RKE_IMAGES):
            return Distribution.RKE1, f"the kubelet runs as Docker container `kubelet` ({kubelet.image})"
        if exists("/etc/kubernetes/ssl"):
            return Distribution.RKE1, (
                f"the kubelet runs as Docker container `kubelet` ({kubelet.image}) and /etc/kubernetes/ssl "
                "holds RKE's certificates"
            )
    for dist, paths in (
        (Distribution.RKE2, ("/var/lib/rancher/rke2", "/etc/rancher/rke2")),
        (Distribution.K3S, ("/usr/local/bin/k3s", "/var/lib/rancher/k3s", "/etc/rancher/k3s")),
    ):
        present = [p for p in paths if exists(p)]
        if present:
            return dist, f"{' and '.join(present)} exist{'s' if len(present) == 1 else ''}"
    return None, ""


def _certs(r: Mapping[str, Record]) -> tuple[DockerCertFiles, ...]:
    listing = r.get("certs-list")
    if listing is None or not listing.ok:
        return ()
    by_host: dict[str, dict[str, Any]] = {}
    for path in listing.text.splitlines():
        host = path.removeprefix("/etc/docker/certs.d/").split("/", 1)[0]
        entry = by_host.setdefault(host, {"ca": {}, "certs": [], "keys": {}})
        if path.endswith(".crt") and (rec := r.get(f"file:{path}")) is not None and rec.ok:
            entry["ca"][path] = rec.text
        elif path.endswith(".cert"):
            entry["certs"].append(path)
        elif path.endswith(".key") and (rec := r.get(f"sha256:{path}")) is not None and rec.ok:
            entry["keys"][path] = rec.text.split()[0] if rec.text.split() else ""
    return tuple(
        DockerCertFiles(
            host=h, ca_certs=e["ca"], client_certs=tuple(sorted(e["certs"])), client_keys=e["keys"]
        )
        for h, e in sorted(by_host.items())
    )


def _kubelet(
    r: Mapping[str, Record], file: Any, unreadable: dict[str, str], version_hint: str | None
) -> KubeletFacts:
    files: dict[str, str] = {}
    units: dict[str, str] = {}
    env_files: dict[str, str] = {}
    for key, rec in r.items():
        if key.startswith("envfile:"):
            if rec.ok:
                env_files[key[8:]] = rec.text
            elif rec.status != "missing":
                unreadable[key[8:]] = rec.why()
            continue
        if not key.startswith("file:") or not rec.ok:
            continue
        path = key[5:]
        if path.endswith((".service", ".conf")) and "kubelet" in path and "/systemd/" in path:
            units[path] = rec.text
    version = None
    vrec = r.get("kubelet-version")
    if vrec is not None and vrec.ok:
        m = re.search(r"v\d+\.\d+\.\d+\S*", vrec.text)
        version = m.group(0) if m else None
    if version is None:
        version = version_hint
        if version is None:
            unreadable["kubelet version"] = vrec.why() if vrec else "not probed"

    flags: list[tuple[str, str]] = []
    settings: dict[str, Setting] = {}
    flags_file = None
    layout = KubeletLayout.UNKNOWN
    for path, _var, _m in kl.FLAGS_FILES:
        text = file(path)
        if text is None:
            continue
        files[path] = text
        if flags_file is None:
            flags_file, layout = path, _LAYOUTS[path]
        try:
            assignments = parse_env_file(text)
        except EnvFileError as e:
            unreadable[path] = str(e)
            continue
        for a in assignments:
            if not a.value.strip().startswith("-"):
                continue
            for name, val in split_flags(a.value):
                if name:
                    flags.append((name, val or ""))
                    settings[name] = Setting(val or "", path, f"--{name}")
    for path, text in units.items():
        for m in re.finditer(
            r"--(config|container-runtime-endpoint|container-runtime)[= ]([^\"\s\\]+)", text
        ):
            settings.setdefault(m.group(1), Setting(m.group(2), path, f"--{m.group(1)}"))
    for f in kubelet_unit_flags(units, files, env_files):  # a drop-in's sandbox image is carried too
        if f.live and f.name == "pod-infra-container-image" and f.value:
            settings.setdefault(f.name, Setting(f.value, f.path, f"--{f.name}"))

    config_file = settings["config"].value if "config" in settings else None
    if (
        config_file is None
        and "file:/var/lib/kubelet/config.yaml" in r
        and r["file:/var/lib/kubelet/config.yaml"].ok
    ):
        config_file = "/var/lib/kubelet/config.yaml"
    config: dict[str, Any] = {}
    if config_file is not None:
        text = file(config_file)
        if text is None:
            unreadable.setdefault(config_file, "does not exist")
        else:
            files[config_file] = text
            try:
                check_size(text, MAX_NODE_FILE_BYTES, config_file)
                loaded = yaml_load(text)
                config = loaded if isinstance(loaded, dict) else {}
            except yaml.YAMLError as e:
                unreadable[config_file] = f"not YAML: {e}"
            except InputLimitError as e:
                unreadable[config_file] = f"refused: {e}"
    instance = file(kl.INSTANCE_CONFIG)
    if instance is not None:
        files[kl.INSTANCE_CONFIG] = instance

    def from_config(key: str) -> Setting | None:
        return Setting(str(config[key]), config_file, key) if config_file and key in config else None

    endpoint = settings.get("container-runtime-endpoint") or from_config("containerRuntimeEndpoint")
    if endpoint is not None and endpoint.key == "containerRuntimeEndpoint":
        layout = KubeletLayout.KUBELET_CONFIGURATION
    active_rec = r.get("active:kubelet")
    return KubeletFacts(
        version=version,
        layout=layout,
        flags_file=flags_file,
        flags=tuple(flags),
        config_file=config_file,
        config=config,
        runtime_endpoint=endpoint,
        container_runtime=settings.get("container-runtime"),
        cgroup_driver=settings.get("cgroup-driver") or from_config("cgroupDriver"),
        pod_infra_image=settings.get("pod-infra-container-image"),
        instance_config_file=kl.INSTANCE_CONFIG if instance is not None else None,
        files=files,
        units=units,
        active=active_rec.text.strip() == "active" if active_rec is not None else None,
        env_files=env_files,
    )


#: /sys/class/net/<if>/flags bits (linux/if.h)
_IFF_UP, _IFF_LOOPBACK, _IFF_POINTOPOINT = 0x1, 0x8, 0x10


def _min_link_mtu(text: str) -> int:
    """The smallest MTU of the interfaces that are up and neither loopback nor point-to-point, as
    kubenet's findMinMTU picks it (lines `<name> <mtu> <flags in hex>`); 0 when none is."""
    mtus = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[1].isdigit():
            continue
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        if flags & _IFF_UP and not flags & (_IFF_LOOPBACK | _IFF_POINTOPOINT):
            mtus.append(int(fields[1]))
    return min(mtus, default=0)
