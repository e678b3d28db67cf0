"""The node-side step through a scripted Runner port: what it runs, in which order, and when it stops."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from shimshift.model.errors import NodeError
from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import Images
from shimshift.playbooks import node_script
from shimshift.steps.images.commands import (
    TransferConfig,
    chain_ids,
    list_containerd_images,
    parse_containerd_images,
    transfer_script,
)
from shimshift.steps.images.plan import MIB, plan_images
from shimshift.steps.images.run import Progress, migrate_images, undo_images


@dataclass(frozen=True)
class Out:
    exit_status: int = 0
    stdout: bytes = b""
    stderr: bytes = b""


@dataclass
class ScriptedRunner:
    """Answers by the first argv words; records every argv it was given."""

    answers: dict[tuple[str, ...], Out] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    batches: int = 0  # round trips of playbooks/scripts/batch.sh

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None) -> Out:
        assert timeout is not None and timeout > 0, "every command is bounded"
        if list(argv[3:4]) == ["shimshift-batch"]:
            return self.batch(list(argv[4:]), stdin)
        self.calls.append(list(argv))
        for n in range(len(argv), 0, -1):
            if tuple(argv[:n]) in self.answers:
                return self.answers[tuple(argv[:n])]
        return Out()

    def batch(self, args: list[str], stdin: bytes | None) -> Out:
        """What playbooks/scripts/batch.sh answers: each command run in turn (recorded as itself),
        stopping after the first failure of one that may not fail."""
        self.batches += 1
        lines: list[str] = []
        while args:
            count, seconds, reads_stdin, may_fail = int(args[0]), float(args[1]), args[2], args[3]
            argv, args = args[4 : 4 + count], args[4 + count :]
            out = self.run(argv, stdin=stdin if reads_stdin == "1" else None, timeout=seconds)
            data = (base64.b64encode(out.stdout).decode(), base64.b64encode(out.stderr).decode())
            lines.append(f"shimshift-batch\t{len(lines)}\t{out.exit_status}\t0\t{data[0]}\t{data[1]}")
            if out.exit_status != 0 and may_fail != "1":
                break
        return Out(stdout="".join(f"{line}\n" for line in [*lines, "shimshift-batch\tend"]).encode())


APP = DockerImage("sha256:" + "c" * 64, ("registry.corp.test/team/app:1.0",), size=300 * MIB)
PLAN = plan_images(NodeFacts(node="n1", images=(APP,), containerd_root_free_bytes=10 << 30), Images())


def test_a_disk_shortfall_measured_on_the_node_stops_the_step_before_any_byte_moves() -> None:
    runner = ScriptedRunner({("df",): Out(stdout=b"   Avail\n104857600\n")})
    with pytest.raises(NodeError) as err:
        migrate_images(runner, PLAN)
    # one round trip of reads only (the record, containerd's names, the free space), then nothing
    assert runner.batches == 1
    assert [c[0] for c in runner.calls] == ["cat", "/bin/sh", "df", "df"]
    assert runner.calls[1][3] == "shimshift-images_list"
    assert "node n1:" in str(err.value)
    assert f"({100 * MIB} bytes) is free" in str(err.value)
    assert f"{PLAN.disk.required_bytes} bytes" in str(err.value)


def test_the_transfer_runs_the_fixed_script_with_image_references_only_as_arguments() -> None:
    runner = ScriptedRunner(
        {
            ("cat",): Out(exit_status=1),
            ("/bin/sh", "-c", transfer_script()): Out(
                stderr=b"shimshift-transfer: bytes=4242 save=0 import=0\n"
            ),
        }
    )
    with pytest.raises(NodeError, match="missing from containerd"):  # the scripted node never lists it
        migrate_images(runner, PLAN, free_bytes=10 << 30)
    transfer = next(c for c in runner.calls if c[:3] == ["/bin/sh", "-c", transfer_script()])
    assert transfer == [
        "/bin/sh",
        "-c",
        transfer_script(),
        "shimshift-image-transfer",
        "--",
        "registry.corp.test/team/app:1.0",
    ]
    assert "ctr -n k8s.io images import" in transfer_script()
    record = next(c for c in runner.calls if c[3:4] == ["shimshift-images_record"])
    assert record[-1] == "/var/lib/shimshift/images/refs-before.txt"


def test_undo_does_nothing_when_the_step_never_recorded_the_names_before_it() -> None:
    runner = ScriptedRunner({("cat",): Out(exit_status=1, stderr=b"No such file")})
    assert undo_images(runner, "n1") == ()
    assert [c[0] for c in runner.calls] == ["cat"]


def test_undo_removes_the_names_added_since_the_record_and_then_the_record() -> None:
    listing = (
        "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        f"docker.io/library/old:1 application/json sha256:{'1' * 64} 1.0 MiB linux/amd64 -\n"
        f"registry.corp.test/team/app:1.0 application/json sha256:{'2' * 64} 1.0 MiB linux/amd64 -\n"
    )
    runner = ScriptedRunner(
        {
            ("cat",): Out(stdout=b"docker.io/library/old:1\n"),
            ("ctr", "-n", "k8s.io", "images", "ls"): Out(stdout=listing.encode()),
        }
    )
    assert undo_images(runner, "n1") == ("registry.corp.test/team/app:1.0",)
    assert ["ctr", "-n", "k8s.io", "images", "rm", "registry.corp.test/team/app:1.0"] in runner.calls
    assert runner.calls[-1] == ["rm", "-f", "/var/lib/shimshift/images/refs-before.txt"]


def test_chain_ids_follow_dockers_layer_store() -> None:
    # values read from a testbed node's /var/lib/docker/image/overlay2/layerdb
    diffs = [
        "sha256:6e846a4139f9e877381757f9d0ab038872dcbf8b4cc13b35bf76d259f8161f4d",
        "sha256:b306428a1d3de2f831285a846a4248551f47ff15ce252f09792d6b1be10b49a9",
    ]
    assert chain_ids(diffs) == [
        diffs[0],
        "sha256:af611475313f6443c1ce5f398b7847c98a34b050cba196a27520bcc313c082d0",
    ]


CTR_LS = """\
REF                                                                                       TYPE                                                 DIGEST                                                                  SIZE    PLATFORMS   LABELS
import-2026-11-28@sha256:aa50d7e3d1a98ce6303d36a0cddc65a5d60e6fe88543f1823cbe9d55e33f1d77 application/vnd.docker.distribution.manifest.v2+json sha256:aa50d7e3d1a98ce6303d36a0cddc65a5d60e6fe88543f1823cbe9d55e33f1d77 2.2 MiB linux/amd64 io.cri-containerd.image=managed
k8s.gcr.io/kube-proxy:v1.23.17                                                            application/vnd.docker.distribution.manifest.v2+json sha256:f041e047e82c69a1b3a6c9a82ecb1b27381a4a795f75c3fc24e1c9ee7b4aafbd 2.7 MiB linux/amd64 io.cri-containerd.image=managed
registry.shimshift.test/team/app:1.0                                                      application/vnd.docker.distribution.manifest.v2+json sha256:685b8c55d99b1fee4194bd89cd72e475ebba74cd89c4bcc595e4b753a790e949 2.7 MiB linux/amd64 io.cri-containerd.image=managed
sha256:76eab49aaea59e90269dd51b47a0205f684ebac483d932e9f260613136d182d0                   application/vnd.docker.distribution.manifest.v2+json sha256:f041e047e82c69a1b3a6c9a82ecb1b27381a4a795f75c3fc24e1c9ee7b4aafbd 2.7 MiB linux/amd64 io.cri-containerd.image=managed
"""


def test_names_resolve_through_cri_id_names_and_otherwise_through_their_manifests_in_one_command() -> None:
    # `ctr -n k8s.io images ls` as captured on a testbed node (containerd 1.6.20), then what
    # images_list.sh adds: the architecture and the manifests of the names without an image-ID name
    app_manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "e" * 64}})
    output = (
        CTR_LS
        + "\n--- shimshift arch x86_64\n"
        + "\n--- shimshift content sha256:685b8c55d99b1fee4194bd89cd72e475ebba74cd89c4bcc595e4b753a790e949\n"
        + app_manifest
        + "\n--- shimshift content sha256:aa50d7e3d1a98ce6303d36a0cddc65a5d60e6fe88543f1823cbe9d55e33f1d77\n"
        + "not json\n"
    )
    runner = ScriptedRunner({("/bin/sh", "-c", node_script("images_list")): Out(stdout=output.encode())})
    listed = {c.ref: c.image_id for c in list_containerd_images(runner, "n1")}
    assert listed == {
        "import-2026-11-28@sha256:aa50d7e3d1a98ce6303d36a0cddc65a5d60e6fe88543f1823cbe9d55e33f1d77": "",
        "k8s.gcr.io/kube-proxy:v1.23.17": "sha256:76eab49aaea59e90269dd51b47a0205f684ebac483d932e9f260613136d182d0",
        "registry.shimshift.test/team/app:1.0": "sha256:" + "e" * 64,
        "sha256:76eab49aaea59e90269dd51b47a0205f684ebac483d932e9f260613136d182d0": "sha256:76eab49aaea59e90269dd51b47a0205f684ebac483d932e9f260613136d182d0",
    }
    assert len(runner.calls) == 1, "one command reads it all"


def test_images_list_reads_the_manifests_only_of_names_without_an_image_id_name() -> None:
    script = node_script("images_list")
    assert "ctr -n k8s.io content get" in script and "uname -m" in script
    assert "length($1) == 71" in script  # sha256: and 64 hex digits: the CRI plugin's image-ID names


def test_an_index_resolves_to_the_manifest_of_the_nodes_architecture() -> None:
    index, arm, amd = ("sha256:" + c * 64 for c in "123")
    ls = f"REF TYPE DIGEST SIZE PLATFORMS LABELS\nregistry.corp.test/a:1 index {index} 1 MiB linux/amd64,linux/arm64 -\n"
    index_doc = {
        "manifests": [
            {"digest": arm, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": amd, "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    docs = {
        index: index_doc,
        amd: {"config": {"digest": "sha256:amdconfig"}},
        arm: {"config": {"digest": "sha256:armconfig"}},
    }
    output = (
        ls
        + "\n--- shimshift arch x86_64\n"
        + "".join(f"\n--- shimshift content {d}\n{json.dumps(doc)}\n" for d, doc in docs.items())
    )
    assert [c.image_id for c in parse_containerd_images("n1", output)] == ["sha256:amdconfig"]
    on_arm = output.replace("arch x86_64", "arch aarch64")
    assert [c.image_id for c in parse_containerd_images("n1", on_arm)] == ["sha256:armconfig"]


def test_with_dockers_zfs_carried_the_transfer_unpacks_into_the_cri_plugins_snapshotter() -> None:
    runner = ScriptedRunner(
        {
            ("cat",): Out(exit_status=1),
            ("/bin/sh", "-c", transfer_script()): Out(
                stderr=b"shimshift-transfer: bytes=1 save=0 import=0\n"
            ),
        }
    )
    with pytest.raises(NodeError, match="missing from containerd"):
        migrate_images(runner, PLAN, config=TransferConfig(snapshotter="zfs"), free_bytes=10 << 30)
    transfer = next(c for c in runner.calls if c[:3] == ["/bin/sh", "-c", transfer_script()])
    assert transfer[3:] == [
        "shimshift-image-transfer",
        "--snapshotter",
        "zfs",
        "--",
        "registry.corp.test/team/app:1.0",
    ]
    assert '${snapshotter:+--snapshotter} ${snapshotter:+"$snapshotter"}' in transfer_script()


def test_progress_reports_the_bytes_to_move_first_then_docker_sizes_moved_as_each_transfer_ends() -> None:
    other = DockerImage("sha256:" + "d" * 64, ("registry.corp.test/team/db:2.0",), size=700 * MIB)
    facts = NodeFacts(node="n1", images=(APP, other), containerd_root_free_bytes=10 << 30)
    plan = plan_images(facts, Images())
    assert len(plan.batches) == 2  # no layers known: each image is a batch of its own
    runner = ScriptedRunner(
        {
            ("cat",): Out(exit_status=1),
            ("/bin/sh", "-c", transfer_script()): Out(
                stderr=b"shimshift-transfer: bytes=1000 save=0 import=0\n"
            ),
        }
    )
    seen: list[Progress] = []
    with pytest.raises(NodeError, match="missing from containerd"):  # the scripted node lists nothing
        migrate_images(runner, plan, free_bytes=10 << 30, progress=seen.append)
    first, second = (m.size for m in plan.moves)
    assert [(p.batch, p.moved, p.to_move, p.bytes_done) for p in seen] == [
        (0, 0, 1000 * MIB, 0),  # before anything moves: what there is to move, Docker's sizes
        (1, first, 1000 * MIB, 1000),
        (2, first + second, 1000 * MIB, 2000),
    ]
    assert runner.batches == 2, "both transfers in one round trip after the read"
