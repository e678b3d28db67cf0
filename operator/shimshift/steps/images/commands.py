"""Node commands of the image migration: list containerd's images and what they resolve to,
read Docker's layer store and the free space of containerd's root, stream a batch through the
transfer script, pull, tag.

Everything here is argv over a `Runner` (the SSH runner of `shimshift.remote` satisfies it; tests
may run the same argv inside a testbed node). No shell string is built from a value: the one
pipeline (`docker save IMG… | ctr -n k8s.io images import -`) is the fixed script
`playbooks/scripts/image-transfer.sh`, run as `/bin/sh -c <script> shimshift-image-transfer IMG…`
(`shimshift.steps.runner.script_argv`), so image references only ever travel as arguments. The step
that puts these together (record, migrate, verify, undo) is `shimshift.steps.images.run`; the
`Runner` is `shimshift.steps.runner.Runner`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shimshift.model.errors import NodeError
from shimshift.model.keys import CONTAINERD_CERTS_DIR, CONTAINERD_K8S_NAMESPACE, NODE_STATE_DIR
from shimshift.playbooks import node_script
from shimshift.steps.images.plan import CONTAINERD_ROOT, Batch, ImageMove, ImagesPlan, Layer, Strategy
from shimshift.steps.images.verdict import ContainerdImage, missing_refs
from shimshift.steps.runner import CommandOutput, Runner, script_argv

CTR = ("ctr", "-n", CONTAINERD_K8S_NAMESPACE)
ID_REF = re.compile(r"^sha256:[0-9a-f]{64}$")
_BYTES = re.compile(r"shimshift-transfer: bytes=(\d+)")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
#: What playbooks/scripts/images_list.sh prints before each blob, and before the node's architecture.
_CONTENT_SEPARATOR = "\n--- shimshift content "
_ARCH_SEPARATOR = "\n--- shimshift arch "


def stdout_text(result: CommandOutput) -> str:
    return result.stdout.decode("utf-8", errors="replace")


def stderr_text(result: CommandOutput) -> str:
    return result.stderr.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class TransferConfig:
    """Bounds and paths of the images step."""

    min_rate: float = 8 * 2**20  # bytes/s a batch may not fall below before it times out
    base_timeout: float = 120.0  # on top of size / min_rate, for every batch and pull
    command_timeout: float = 60.0  # listing, tagging, removing
    hosts_dir: str = CONTAINERD_CERTS_DIR  # the node's new registry configuration, for pulls
    containerd_root: str = CONTAINERD_ROOT
    state_dir: str = f"{NODE_STATE_DIR}/images"
    import_local: bool = False  # containerd 2.x: `ctr images import --local`
    #: the CRI plugin's snapshotter when it is not containerd's default (Docker's zfs or btrfs)
    snapshotter: str | None = None

    def timeout_for(self, size: int) -> float:
        return self.base_timeout + size / self.min_rate


def transfer_script() -> str:
    """The fixed pipeline script, as shipped in the package data."""
    return node_script("image-transfer")


def output_tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().replace("\r", "\n").splitlines()[-lines:])


def check_result(node: str, what: str, result: CommandOutput, argv: Sequence[str]) -> CommandOutput:
    if result.exit_status != 0:
        shown = " ".join(argv[:6]) + (" …" if len(argv) > 6 else "")
        detail = output_tail(stderr_text(result)) or "(no output)"
        raise NodeError(node, f"{what} failed (exit {result.exit_status}, `{shown}`): {detail}")
    return result


def run_checked(runner: Runner, node: str, what: str, argv: Sequence[str], timeout: float) -> CommandOutput:
    return check_result(node, what, runner.run(argv, timeout=timeout), argv)


# ---- reading the node ---------------------------------------------------------------------------


def read_containerd_free_bytes(runner: Runner, node: str, path: str = CONTAINERD_ROOT) -> int:
    """Free bytes on the filesystem of containerd's root (its nearest existing parent)."""
    argv = ["df", "--output=avail", "-B1", path]
    result = runner.run(argv, timeout=30)
    if result.exit_status != 0:  # the root may not exist yet on a fresh containerd
        argv = ["df", "--output=avail", "-B1", path.rsplit("/", 1)[0] or "/"]
        result = run_checked(runner, node, "measuring free space", argv, 30)
    lines = stdout_text(result).split()
    if len(lines) < 2 or not lines[-1].isdigit():
        raise NodeError(node, f"cannot read free space of {path} from `df`: {stdout_text(result)!r}")
    return int(lines[-1])


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Docker's layer chain IDs (the layerdb directory names) from an image's diff IDs."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def read_image_layers(runner: Runner, node: str, image_ids: Sequence[str]) -> dict[str, tuple[Layer, ...]]:
    """Each image's layers (diff IDs) and their sizes from Docker's layer store, in two commands.

    Sizes that cannot be read stay None; the planner then estimates from image sizes instead.
    """
    if not image_ids:
        return {}
    fmt = "{{.Id}} {{.GraphDriver.Name}} {{range .RootFS.Layers}}{{.}} {{end}}"
    argv = ["docker", "image", "inspect", "--format", fmt, *image_ids]
    result = run_checked(runner, node, "reading Docker image layers", argv, 60)
    info = runner.run(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout=30)
    root = stdout_text(info).strip() if info.exit_status == 0 else "/var/lib/docker"
    diffs: dict[str, list[str]] = {}
    size_files: dict[str, str] = {}  # size file path -> diff id
    for line in stdout_text(result).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        image_id, driver, layers = parts[0], parts[1], parts[2:]
        diffs[image_id] = layers
        for diff, chain in zip(layers, chain_ids(layers), strict=True):
            size_files[f"{root}/image/{driver}/layerdb/sha256/{chain.removeprefix('sha256:')}/size"] = diff
    sizes: dict[str, int] = {}
    if size_files:
        got = runner.run(["grep", "-H", "", *size_files], timeout=60)  # exit 2 if one is unreadable
        for line in stdout_text(got).splitlines():
            path, _, value = line.rpartition(":")
            if path in size_files and value.strip().isdigit():
                sizes[size_files[path]] = int(value)
    return {i: tuple(Layer(d, sizes.get(d)) for d in layers) for i, layers in diffs.items()}


def list_containerd_refs(runner: Runner, node: str, timeout: float = 60) -> dict[str, str]:
    """Every image name in containerd's k8s.io namespace -> its target (manifest or index) digest."""
    result = run_checked(runner, node, "listing containerd images", [*CTR, "images", "ls"], timeout)
    out = {}
    for line in stdout_text(result).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("sha256:"):
            out[parts[0]] = parts[2]
    return out


def _config_digest(doc: Mapping[str, object]) -> str:
    config = doc.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    return digest if isinstance(digest, str) else ""


def list_images_argv() -> tuple[str, ...]:
    """The one command that reads what k8s.io holds (`playbooks/scripts/images_list.sh`)."""
    return script_argv("images_list")


def parse_containerd_images(node: str, text: str) -> tuple[ContainerdImage, ...]:
    """What images_list.sh printed, as every name in k8s.io with the image ID (config digest) it
    resolves to.

    The CRI plugin names each image it knows `sha256:<image ID>` too; those names resolve the targets
    they share. Any other target is resolved by its manifest (or, for an index, the manifest of the
    node's architecture) from the content store, which the script printed too."""
    head, *chunks = text.split(_CONTENT_SEPARATOR)
    table, _, arch_line = head.partition(_ARCH_SEPARATOR)
    refs: dict[str, str] = {}
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("sha256:"):
            refs[parts[0]] = parts[2]
    machine = arch_line.strip()
    arch = _ARCH.get(machine, machine)
    docs: dict[str, dict[str, object]] = {}
    for chunk in chunks:
        digest, _, body = chunk.partition("\n")
        try:
            value = json.loads(body)
        except ValueError:
            continue
        if isinstance(value, dict):
            docs[digest.strip()] = value
    config_of = {target: ref for ref, target in refs.items() if ID_REF.match(ref)}
    for target in set(refs.values()) - set(config_of):
        doc = docs.get(target, {})
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            if _config_digest(doc):
                config_of[target] = _config_digest(doc)
            continue
        entries = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]
        mine = [m for m in entries if (m.get("platform") or {}).get("architecture") == arch]
        if entries and _config_digest(docs.get(str((mine or entries)[0]["digest"]), {})):
            config_of[target] = _config_digest(docs[str((mine or entries)[0]["digest"])])
    return tuple(
        ContainerdImage(ref, target, config_of.get(target, "")) for ref, target in sorted(refs.items())
    )


def list_containerd_images(runner: Runner, node: str) -> tuple[ContainerdImage, ...]:
    """Every name in k8s.io with the image ID (config digest) it resolves to, in one command."""
    argv = list_images_argv()
    result = check_result(node, "listing containerd images", runner.run(argv, timeout=120), argv)
    return parse_containerd_images(node, stdout_text(result))


#: Docker's layer sizes: every layer's size file under its data root (`root <dir>` first).
LAYER_SIZES_ARGV = (
    "sh",
    "-c",
    'r=$(docker info --format "{{.DockerRootDir}}" 2>/dev/null); case $r in /*) ;; *) r=/var/lib/docker ;; '
    'esac; echo "root $r"; grep -H "" "$r"/image/*/layerdb/sha256/*/size 2>/dev/null; exit 0',
)
#: Docker's whole image inventory, as the facts probe reads it (`docker image inspect` of every image).
DOCKER_IMAGES_ARGV = (
    "sh",
    "-c",
    "ids=$(docker image ls -q --no-trunc) || exit; "
    '[ -z "$ids" ] || docker image inspect $(printf "%s\\n" $ids | sort -u)',
)


def parse_docker_images(node: str, text: str) -> list[dict[str, object]]:
    """`docker image inspect`'s JSON (an empty inventory prints nothing)."""
    if not text.strip():
        return []
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise NodeError(node, f"unexpected `docker image inspect` output: {e}") from e
    if not isinstance(raw, list):
        raise NodeError(node, "unexpected `docker image inspect` output: not a list")
    return [i for i in raw if isinstance(i, dict)]


def layers_of(
    inspected: Iterable[Mapping[str, object]], sizes_text: str, image_ids: Sequence[str]
) -> dict[str, tuple[Layer, ...]]:
    """Each of `image_ids`' layers (diff IDs) with their sizes from Docker's layer store, from the
    inspected images and the output of LAYER_SIZES_ARGV. Sizes that cannot be read stay None; the
    planner then estimates from image sizes instead."""
    lines = sizes_text.splitlines()
    root = lines[0].removeprefix("root ").strip() if lines and lines[0].startswith("root ") else ""
    found: dict[str, int] = {}
    for line in lines[1:]:
        path, _, value = line.rpartition(":")
        if value.strip().isdigit():
            found[path] = int(value)
    wanted = set(image_ids)
    out: dict[str, tuple[Layer, ...]] = {}
    for image in inspected:
        image_id = image.get("Id")
        if not isinstance(image_id, str) or image_id not in wanted:
            continue
        rootfs, driver = image.get("RootFS"), image.get("GraphDriver")
        layers = rootfs.get("Layers") if isinstance(rootfs, dict) else None
        name = driver.get("Name") if isinstance(driver, dict) else None
        diffs = [d for d in layers if isinstance(d, str)] if isinstance(layers, list) else []
        layer_list = []
        for diff, chain in zip(diffs, chain_ids(diffs), strict=True):
            path = f"{root}/image/{name}/layerdb/sha256/{chain.removeprefix('sha256:')}/size"
            layer_list.append(Layer(diff, found.get(path) if root and name else None))
        out[image_id] = tuple(layer_list)
    return out


def free_bytes_of(text: str) -> int | None:
    """The free bytes `df --output=avail -B1` printed (None when it printed no number)."""
    lines = text.split()
    return int(lines[-1]) if len(lines) >= 2 and lines[-1].isdigit() else None


# ---- changing the node --------------------------------------------------------------------------


def transfer_argv(moves: Sequence[ImageMove], config: TransferConfig) -> tuple[str, ...]:
    """The transfer script's argv for one batch of images."""
    batch = Batch(0, Strategy.TRANSFER, tuple(moves), 0)
    flags = ["--local"] if config.import_local else []
    if config.snapshotter:
        flags += ["--snapshotter", config.snapshotter]
    return script_argv("image-transfer", *flags, "--", *batch.save_refs)


def transfer_bytes(node: str, moves: Sequence[ImageMove], result: CommandOutput) -> int:
    """The bytes one transfer moved, from its report (NodeError when it failed)."""
    shown = ["image-transfer.sh", *Batch(0, Strategy.TRANSFER, tuple(moves), 0).save_refs]
    check_result(node, f"transferring {', '.join(m.label for m in moves)}", result, shown)
    found = _BYTES.findall(stderr_text(result))
    return int(found[-1]) if found else 0


def transfer_batch(
    runner: Runner, node: str, moves: Sequence[ImageMove], size: int, config: TransferConfig
) -> int:
    result = runner.run(transfer_argv(moves, config), timeout=config.timeout_for(size))
    return transfer_bytes(node, moves, result)


def pull_image(runner: Runner, move: ImageMove, config: TransferConfig) -> CommandOutput:
    snapshotter = ["--snapshotter", config.snapshotter] if config.snapshotter else []
    argv = [*CTR, "images", "pull", "--hosts-dir", config.hosts_dir, *snapshotter, move.pull_ref]
    return runner.run(argv, timeout=config.timeout_for(move.size))


def tag_commands(
    plan: ImagesPlan, listed: Iterable[ContainerdImage], config: TransferConfig
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """For each planned image that lacks names (tags of pulled images, digest references of
    transferred ones): (image ID, the names it gets, the `ctr images tag` argv giving them from a name
    that already resolves to its image ID)."""
    listed = tuple(listed)
    out: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for image_id, refs in missing_refs(plan, listed).items():
        sources = sorted((c.ref for c in listed if c.image_id == image_id), key=lambda r: r != image_id)
        if not sources:
            continue  # not in containerd at all: verification names it
        out.append((image_id, tuple(refs), (*CTR, "images", "tag", sources[0], *refs)))
    return out
