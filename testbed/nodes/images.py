"""Container images made without any registry: generated rootfs layers in ``docker save`` format.

Images are described as data (``ImageSpec`` made of ``LayerSpec``) and written as one
``docker load``-able archive, byte-for-byte deterministic, so the same image has the same ID on
every node, and images that list the same layer share it (Docker stores it once). Layer sizes are
parameters: the default set is a few MB for fast tests; ``benchmark_images()`` builds the large
set (a ~40 MB shared base plus ten ~5 MB images) wanted by the image-migration benchmark.

Every layer gets a static busybox (from Debian's busybox-static) so the images run.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "cat", "ls", "echo", "true", "env", "ps")
CREATED = "2023-01-01T00:00:00Z"


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a name (also the seed of its content) and the size of its filler data."""

    name: str
    size_bytes: int = 0
    busybox: bool = False


@dataclass(frozen=True)
class ImageSpec:
    """One image: its tags (none makes a dangling, untagged image), layers and command."""

    tags: tuple[str, ...]
    layers: tuple[LayerSpec, ...]
    cmd: tuple[str, ...] = ("/bin/sleep", "2147483647")
    labels: dict[str, str] = field(default_factory=dict)


def _tar_bytes(layer: LayerSpec) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(path: str) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)

        def add_file(path: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))

        if layer.busybox:
            add_dir("bin")
            add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
            for applet in APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
                tar.addfile(info)
        add_dir("layers")
        add_file(f"layers/{layer.name}", f"layer {layer.name}\n".encode())
        if layer.size_bytes:
            add_dir("data")
            rng = random.Random(layer.name)
            add_file(f"data/{layer.name}.bin", rng.randbytes(layer.size_bytes))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_archive(images: Sequence[ImageSpec], dest: Path) -> dict[str, str]:
    """Write ``images`` as one ``docker save`` archive at ``dest``; return tag -> image ID.

    Untagged images get the key ``"<untagged N>"``.
    """
    layers: dict[str, bytes] = {}
    layer_ids: dict[LayerSpec, str] = {}
    manifest, ids = [], {}
    files: dict[str, bytes] = {}
    for n, image in enumerate(images):
        diff_ids = []
        for layer in image.layers:
            if layer not in layer_ids:
                data = _tar_bytes(layer)
                layer_ids[layer] = _digest(data)
                layers[layer_ids[layer]] = data
            diff_ids.append("sha256:" + layer_ids[layer])
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": {
                "Cmd": list(image.cmd),
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Labels": image.labels or None,
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": CREATED, "created_by": f"testbed layer {layer.name}"} for layer in image.layers
            ],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_id = _digest(config_bytes)
        files[f"{config_id}.json"] = config_bytes
        manifest.append(
            {
                "Config": f"{config_id}.json",
                "RepoTags": list(image.tags) or None,
                "Layers": [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids],
            }
        )
        for tag in image.tags or (f"<untagged {n}>",):
            ids[tag] = "sha256:" + config_id
    for layer_id, data in layers.items():
        files[f"{layer_id}/layer.tar"] = data
    files["manifest.json"] = json.dumps(manifest).encode()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(files[name]), 0
            tar.addfile(info, io.BytesIO(files[name]))
    tmp.replace(dest)
    return ids


BASE = LayerSpec("base", size_bytes=256 * 1024, busybox=True)


def pause_image(ref: str) -> ImageSpec:
    return ImageSpec((ref,), (LayerSpec("pause", busybox=True),), cmd=("/bin/sleep", "2147483647"))


def kube_proxy_image(kubelet_version: str) -> str:
    # k8s.gcr.io was frozen in 2023; releases from 1.25 on are published on registry.k8s.io
    minor = int(kubelet_version.split(".")[1])
    return f"{'registry.k8s.io' if minor >= 25 else 'k8s.gcr.io'}/kube-proxy:v{kubelet_version}"


def node_images(sandbox_image: str, kubelet_version: str, scale: int = 1) -> list[ImageSpec]:
    """The images of a pre-migration node: a pause image, kube-proxy and two app images that
    share a base layer, and one untagged image. ``scale`` multiplies the filler sizes."""
    app = LayerSpec("app", size_bytes=512 * 1024 * scale)
    return [
        pause_image(sandbox_image),
        ImageSpec((kube_proxy_image(kubelet_version),), (BASE, LayerSpec("kube-proxy", 512 * 1024 * scale))),
        ImageSpec(("registry.shimshift.test/team/app:1.0",), (BASE, app)),
        ImageSpec(("registry.shimshift.test/team/app:1.1",), (BASE, app, LayerSpec("app-1.1", 128 * 1024))),
        ImageSpec((), (BASE, LayerSpec("dangling", 64 * 1024))),
    ]


def benchmark_images(base_mb: int = 40, count: int = 10, each_mb: int = 5) -> list[ImageSpec]:
    """A large set for the image-migration benchmark: ``count`` images of ``each_mb`` MB sharing
    one ``base_mb`` MB base layer."""
    base = LayerSpec(f"bench-base-{base_mb}", size_bytes=base_mb << 20, busybox=True)
    return [
        ImageSpec(
            (f"registry.shimshift.test/bench/img{i}:1.0",),
            (base, LayerSpec(f"bench-{i}-{each_mb}", each_mb << 20)),
        )
        for i in range(count)
    ]
