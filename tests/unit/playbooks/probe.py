"""Build facts-probe output the way playbooks/scripts/facts.sh prints it, from files captured from
real nodes (tests/unit/playbooks/fixtures/nodes/<profile>/files/...)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "nodes"
PROFILES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def record(key: str, data: bytes | str, status: str = "0") -> str:
    raw = data.encode() if isinstance(data, str) else data
    return f"{key}\t{base64.b64encode(raw).decode()}\t{status}"


def node_files(profile: str) -> dict[str, str]:
    root = FIXTURES / profile / "files"
    return {"/" + str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def profile_info(profile: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((FIXTURES / profile / "profile.json").read_text())
    return data


PROBED_FILES = (
    "/etc/os-release",
    "/etc/containerd/config.toml",
    "/etc/docker/daemon.json",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/etc/default/kubelet",
    "/etc/sysconfig/kubelet",
    "/etc/kubernetes/kubelet.env",
    "/var/lib/kubelet/instance-config.yaml",
    "/etc/systemd/system/kubelet.service",
    "/lib/systemd/system/kubelet.service",
    "/usr/lib/systemd/system/kubelet.service",
    "/etc/systemd/system/cri-docker.service",
    "/var/lib/kubelet/config.yaml",
    "/etc/kubernetes/kubelet-config.yaml",
    "/etc/systemd/system/docker.service",
    "/lib/systemd/system/docker.service",
    "/usr/lib/systemd/system/docker.service",
    "/etc/systemd/system/containerd.service",
    "/lib/systemd/system/containerd.service",
    "/usr/lib/systemd/system/containerd.service",
)
#: Directories whose *.conf files facts.sh reads (when they exist) besides PROBED_FILES.
PROBED_DROPIN_DIRS = (
    "/etc/systemd/system/docker.service.d/",
    "/etc/systemd/system/containerd.service.d/",
    "/etc/systemd/system/kubelet.service.d/",
    "/lib/systemd/system/kubelet.service.d/",
    "/usr/lib/systemd/system/kubelet.service.d/",
)

DOCKER_INFO = {
    "ServerVersion": "20.10.24+dfsg1",
    "CgroupDriver": "systemd",
    "DockerRootDir": "/var/lib/docker",
}
IMAGES = [
    {"Id": "sha256:" + "a" * 64, "RepoTags": ["k8s.gcr.io/pause:3.6"], "RepoDigests": [], "Size": 683968},
    {
        "Id": "sha256:" + "b" * 64,
        "RepoTags": ["registry.shimshift.test/team/app:1.0"],
        "RepoDigests": ["registry.shimshift.test/team/app@sha256:" + "c" * 64],
        "Size": 52428800,
    },
]
CONTAINERS = [
    {
        "Names": "k8s_kube-proxy_kube-proxy-x7_kube-system_0a1b_0",
        "Image": "k8s.gcr.io/kube-proxy:v1.23.17",
        "State": "running",
    },
    {
        "Names": "k8s_POD_kube-proxy-x7_kube-system_0a1b_0",
        "Image": "k8s.gcr.io/pause:3.6",
        "State": "running",
    },
    {"Names": "unrelated", "Image": "busybox", "State": "exited"},
]
PLUGINS = """TYPE                            ID                       PLATFORMS      STATUS
io.containerd.content.v1        content                  -              ok
io.containerd.snapshotter.v1    overlayfs                linux/amd64    ok
"""


#: the flags files facts.sh reads anyway (an EnvironmentFile= naming one is not read again)
FLAGS_FILES = (
    "/var/lib/kubelet/kubeadm-flags.env",
    "/etc/default/kubelet",
    "/etc/sysconfig/kubelet",
    "/etc/kubernetes/kubelet.env",
)
_KUBELET_UNITS = (
    "/etc/systemd/system/kubelet.service",
    "/lib/systemd/system/kubelet.service",
    "/usr/lib/systemd/system/kubelet.service",
)
_FLAG_LINE = re.compile(r"""^[ \t]*(export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=["']?[ \t]*-""")


def env_files_named(files: Mapping[str, str | bytes]) -> list[str]:
    """The EnvironmentFile= paths of the kubelet's units and drop-ins, as facts.sh picks them: words
    after `EnvironmentFile=` with `-` dropped, absolute, no `%$*?"`, sorted, at most 16, flags files
    left out."""
    texts = [files[p] for p in _KUBELET_UNITS if p in files]
    texts += [
        t for p, t in sorted(files.items()) if p.startswith(PROBED_DROPIN_DIRS[2:]) and p.endswith(".conf")
    ]
    found: set[str] = set()
    for text in texts:
        for line in (text if isinstance(text, str) else text.decode()).splitlines():
            stripped = line.lstrip(" \t")
            if not stripped.startswith("EnvironmentFile"):
                continue
            key, eq, value = stripped.partition("=")
            if not eq or key.rstrip(" \t") != "EnvironmentFile":
                continue
            for word in value.split():
                word = word.removeprefix("-")
                if word.startswith("/") and not any(c in word for c in '%$*?"'):
                    found.add(word)
    return [p for p in sorted(found)[:16] if p not in FLAGS_FILES]


def flag_lines(text: str) -> str:
    """An EnvironmentFile as facts.sh sends it: its assignments of flags, other lines blanked."""
    return "".join(
        (line if _FLAG_LINE.match(line) else "") + ("\n" if nl else "")
        for line, nl in ((part.rstrip("\n"), part.endswith("\n")) for part in text.splitlines(keepends=True))
    )


def probe_output(
    files: Mapping[str, str | bytes],
    *,
    overrides: Mapping[str, tuple[bytes | str, str]] | None = None,
    omit: tuple[str, ...] = (),
) -> str:
    """What facts.sh prints on a node holding `files`, with typical command output."""
    commands: dict[str, tuple[bytes | str, str]] = {
        "kernel": ("6.1.0-18-amd64\n", "0"),
        "docker-info": (json.dumps(DOCKER_INFO) + "\n", "0"),
        "docker-images": (json.dumps(IMAGES), "0"),
        "docker-containers": ("\n".join(json.dumps(c) for c in CONTAINERS) + "\n", "0"),
        "containerd-version": (
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
            "0",
        ),
        "ctr-plugins": (PLUGINS, "0"),
        "ctr-images": ("", "0"),
        "kubelet-version": ("", "127"),
        "active:docker": ("active\n", "0"),
        "active:containerd": ("active\n", "0"),
        "active:kubelet": ("active\n", "0"),
        "active:cri-docker": ("inactive\n", "3"),
        "df:/var/lib/containerd": (
            "Filesystem     1-blocks       Used   Available Capacity Mounted on\n"
            "/dev/vda1  100000000000 4000000000 96000000000       4% /\n",
            "0",
        ),
    }
    commands.update(overrides or {})
    files = {
        "/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n',
        **files,
    }
    lines = ["shimshift-facts\t1"]
    for key, (data, status) in commands.items():
        if key not in omit:
            lines.append(record(key, data, status))
    for path in PROBED_FILES:
        if path in files:
            lines.append(record(f"file:{path}", files[path]))
        else:
            lines.append(f"file:{path}\t\tmissing")
    for path in sorted(files):
        if path.startswith(PROBED_DROPIN_DIRS) and path.endswith(".conf"):
            lines.append(record(f"file:{path}", files[path]))
    for path in env_files_named(files):
        if path in files:
            text = files[path]
            lines.append(
                record(f"envfile:{path}", flag_lines(text if isinstance(text, str) else text.decode()))
            )
        else:
            lines.append(f"envfile:{path}\t\tmissing")
    certs = sorted(p for p in files if p.startswith("/etc/docker/certs.d/"))
    if certs:
        lines.append(record("certs-list", "".join(p + "\n" for p in certs)))
        for p in certs:
            if p.endswith(".crt"):
                lines.append(record(f"file:{p}", files[p]))
            if p.endswith(".key"):
                lines.append(record(f"sha256:{p}", "f" * 64 + "  " + p + "\n"))
    lines.append("shimshift-facts\tend")
    return "\n".join(lines) + "\n"
