"""The images step on real testbed nodes (real dockerd, containerd 1.6 with CRI on, TLS registry):
what kubelet will see through CRI afterwards, digests, air-gapped nodes, the disk check and undo."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
from testbed.nodes import Cluster, Node
from testbed.nodes.layout import REGISTRY_HOST

from shimshift.model.errors import NodeError
from shimshift.model.spec import Images, ImageStrategy, NodeMigrationSpec
from shimshift.remote.connection import NodeConnection, SshOptions, SshTarget
from shimshift.steps.images.commands import list_containerd_refs, read_image_layers
from shimshift.steps.images.plan import DiskPolicy, Strategy, normalize_reference, plan_images
from shimshift.steps.images.run import Progress, migrate_images, run_images_step, undo_images
from shimshift.steps.images.verdict import image_counts
from shimshift.steps.runner import Command, CommandResult, StreamingRunner, run_batch
from tests.integration.images.conftest import NodeRunner, cri_image_status, cri_images, docker_facts

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(120)]

APP = f"{REGISTRY_HOST}/team/app"


def docker(node: Node, *argv: str) -> str:
    result = node.exec(["docker", *argv], timeout=60)
    assert result.exit_status == 0, result.stderr
    return result.stdout


def registry_digest(cluster: Cluster, path: str) -> str:
    registry = cluster.registry
    assert registry is not None
    out = subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(registry.cert_dir), f"docker://{registry.address}/{path}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return str(json.loads(out)["Digest"])


@pytest.fixture(scope="module")
def registry_node(images_cluster: Cluster) -> Node:
    """The node with the registry: an extra tag on app:1.0 and a digest-only image (pulled by digest)."""
    node = images_cluster.nodes[0]
    docker(node, "tag", f"{APP}:1.0", f"{APP}:stable")
    digest = registry_digest(images_cluster, "team/app:2.0")
    docker(node, "pull", f"{APP}@{digest}")
    return node


def test_after_the_step_cri_lists_every_included_image_with_dockers_id_and_all_its_names(
    registry_node: Node,
) -> None:
    node = registry_node
    runner = NodeRunner(node)
    before = list_containerd_refs(runner, node.name)
    facts = docker_facts(node)
    layers = read_image_layers(runner, node.name, [i.id for i in facts.images])
    plan = plan_images(
        facts,
        Images(strategy=ImageStrategy.TRANSFER, exclude=("*:1.1",)),
        sandbox_image=node.profile.sandbox_image,
        layers=layers,
    )
    assert plan.disk.exact, "layer sizes come from Docker's layer store"
    digest_only = [m for m in plan.moves if not m.tags]
    assert len(digest_only) == 1, "the image pulled by digest has no tag"
    # the images sharing the base layer (kube-proxy, app:1.0, app:2.0) cross in one stream
    assert max(len(b.images) for b in plan.batches) >= 2

    outcome = migrate_images(runner, plan)

    listed = cri_images(node)
    for move in plan.moves:
        assert move.image_id in listed, f"{move.label} missing from CRI ListImages"
        image = listed[move.image_id]
        assert set(move.tags) <= set(image.repo_tags), move.label
        assert set(move.digests) <= set(image.repo_digests), move.label
    app10 = next(m for m in plan.moves if f"{APP}:1.0" in m.tags)
    assert set(listed[app10.image_id].repo_tags) >= {f"{APP}:1.0", f"{APP}:stable"}
    skipped_ids = {s.image_id for s in plan.skipped}
    assert not skipped_ids & set(listed), "excluded and dangling images stay out of containerd"
    assert plan.moves[0].tags == (normalize_reference(node.profile.sandbox_image),)
    assert sorted(outcome.transferred) == sorted(m.image_id for m in plan.moves)
    assert outcome.bytes_streamed > 0
    pinned = cri_image_status(node, digest_only[0].digests[0])
    assert pinned is not None and pinned.id == digest_only[0].image_id
    assert not any(r.startswith("import-") for r in list_containerd_refs(runner, node.name))

    assert undo_images(runner, node.name)
    assert list_containerd_refs(runner, node.name) == before


def test_an_image_pulled_by_digest_through_hosts_toml_keeps_its_registry_digest(
    registry_node: Node, images_cluster: Cluster
) -> None:
    node = registry_node
    runner = NodeRunner(node)
    facts = docker_facts(node)
    plan = plan_images(facts, Images(include=(f"{APP}:1.0",)), reachable_registries={REGISTRY_HOST})
    assert [(m.strategy, m.tags) for m in plan.moves] == [(Strategy.PULL, (f"{APP}:1.0", f"{APP}:stable"))]
    digest = registry_digest(images_cluster, "team/app:1.0")
    assert plan.moves[0].pull_ref == f"{APP}@{digest}"

    outcome = migrate_images(runner, plan)

    assert outcome.pulled == (plan.moves[0].image_id,) and outcome.transferred == ()
    refs = list_containerd_refs(runner, node.name)
    assert refs[f"{APP}@{digest}"] == digest, "the manifest digest is the registry's, not a new one"
    assert refs[f"{APP}:1.0"] == digest and refs[f"{APP}:stable"] == digest
    status = cri_image_status(node, f"{APP}@{digest}")
    assert status is not None and status.id == plan.moves[0].image_id
    assert f"{APP}@{digest}" in status.repo_digests
    undo_images(runner, node.name)


def test_an_image_only_in_docker_is_found_by_cri_on_an_air_gapped_node_and_a_rerun_moves_nothing(
    images_cluster: Cluster,
) -> None:
    node = images_cluster.nodes[1]
    runner = NodeRunner(node)
    offline = node.exec(["ctr", "-n", "k8s.io", "images", "pull", f"{APP}:2.0"], timeout=60)
    assert offline.exit_status != 0, "no registry is reachable from this node"
    facts = docker_facts(node)
    in_use = [i for i in facts.images if i.in_use]
    assert in_use, "the seeded kube-proxy pod uses an image"
    spec = NodeMigrationSpec.from_raw({"nodeNames": [node.name]})
    reachable = {REGISTRY_HOST, "docker.io", "k8s.gcr.io"}

    plan, first = run_images_step(
        runner, facts, spec, sandbox_image=node.profile.sandbox_image, reachable_registries=reachable
    )
    _, again = run_images_step(
        runner, facts, spec, sandbox_image=node.profile.sandbox_image, reachable_registries=reachable
    )

    assert {m.strategy for m in plan.moves} == {Strategy.TRANSFER}, "nothing has a digest to pull by"
    assert plan.moves[0].tags == (normalize_reference(node.profile.sandbox_image),)

    for image in in_use:
        for tag in image.repo_tags:
            status = cri_image_status(node, tag)  # what kubelet asks before starting the container
            assert status is not None and status.id == image.id, tag
    assert len(first.transferred) == len(plan.moves)
    # the re-run (as after an operator restart that lost the step's end) moves nothing, and still
    # counts what the first run moved as moved by this migration, not as found there
    assert again.transferred == () and again.already_done == ()
    assert sorted(again.resumed_transferred) == sorted(first.transferred)
    counts, counted_again = image_counts(plan, first), image_counts(plan, again)
    assert (counted_again.transferred, counted_again.skipped) == (counts.transferred, counts.skipped)
    assert counted_again.bytes == sum(b.bytes for b in plan.batches)  # Docker's sizes, shared layers once
    undo_images(runner, node.name)


def test_a_disk_shortfall_blocks_the_step_before_any_byte_moves(images_cluster: Cluster) -> None:
    node = images_cluster.nodes[1]
    runner = NodeRunner(node)
    before = list_containerd_refs(runner, node.name)
    runner.calls.clear()
    plan = plan_images(docker_facts(node), Images(), policy=DiskPolicy(margin_bytes=1 << 50))

    with pytest.raises(NodeError) as err:
        migrate_images(runner, plan)  # reads the node (its free space too) in one batch of reads

    message = str(err.value)
    assert message.startswith(f"node {node.name}: the images to migrate need ")
    assert f"({plan.disk.required_bytes} bytes)" in message and "bytes) is free" in message
    assert [c[3] for c in runner.calls] == ["shimshift-batch"], "one read of the node ran, nothing else"
    read = runner.calls[0][4:]
    assert "df" in read and "shimshift-images_list" in read
    assert not {"shimshift-images_record", "shimshift-image-transfer"} & set(read), "nothing moved"
    assert list_containerd_refs(runner, node.name) == before


def test_a_failed_pull_falls_back_to_a_transfer_and_progress_is_reported_in_bytes(
    registry_node: Node,
) -> None:
    node = registry_node
    runner = NodeRunner(node)
    facts = docker_facts(node)
    app = next(i for i in facts.images if f"{APP}:1.1" in i.repo_tags)
    missing = f"{APP}@sha256:{'0' * 64}"  # the registry answers, but has no such manifest
    facts = replace(facts, images=(replace(app, repo_digests=(missing,)),))
    plan = plan_images(facts, Images(), reachable_registries={REGISTRY_HOST})
    assert plan.moves[0].strategy is Strategy.PULL and plan.moves[0].may_fall_back
    seen: list[Progress] = []

    outcome = migrate_images(runner, plan, progress=seen.append)

    assert outcome.pulled == () and outcome.transferred == (app.id,)
    assert "failed" in outcome.fallbacks[app.id]
    assert [(p.batch, p.batches) for p in seen] == [(0, 1), (1, 1)]  # before anything moves, then the batch
    assert seen[-1].bytes_done == outcome.bytes_streamed > 0
    assert seen[-1].moved == seen[-1].to_move == app.size  # the failed pull moved nothing; its transfer did
    status = cri_image_status(node, missing)  # the digest reference is recorded on the transferred image
    assert status is not None and status.id == app.id
    undo_images(runner, node.name)


def test_the_step_runs_over_the_operators_ssh_connection_and_undoes_cleanly(images_cluster: Cluster) -> None:
    node = images_cluster.nodes[1]
    options = SshOptions(
        known_hosts=images_cluster.known_hosts.read_text(),
        private_key=images_cluster.private_key.read_text(),
        command_timeout=120.0,
    )
    facts = docker_facts(node)
    spec = NodeMigrationSpec.from_raw({"nodeNames": [node.name]})
    seen: list[Progress] = []
    with NodeConnection(SshTarget(node.name, node.ssh_host, node.ssh_port), options) as conn:
        assert isinstance(conn, StreamingRunner), "a transfer's batch is reported as it ends"
        before = list_containerd_refs(conn, node.name)
        plan, outcome = run_images_step(
            conn, facts, spec, sandbox_image=node.profile.sandbox_image, progress=seen.append
        )
        listed = cri_images(node)
        assert all(
            m.image_id in listed and set(m.tags) <= set(listed[m.image_id].repo_tags) for m in plan.moves
        )
        assert outcome.bytes_streamed > 0
        # the bytes to move are Docker's sizes of the images moved (as its API lists them), known
        # before anything moves; reported as each batch ends, and all of them moved at the step's end
        sizes = {i.id: i.size for i in facts.images}
        to_move = sum(sizes[m.image_id] for m in plan.moves)
        assert to_move > 0 and [(p.batch, p.moved) for p in seen[:1]] == [(0, 0)]
        assert [p.batch for p in seen] == list(range(len(plan.batches) + 1))
        assert all(p.to_move == to_move for p in seen)
        assert [p.moved for p in seen] == sorted(p.moved for p in seen) and seen[-1].moved == to_move
        counts = image_counts(plan, outcome)  # what the node's record keeps
        assert counts.bytes_moved == counts.bytes_to_move == to_move
        round_trips = conn.round_trips
        assert undo_images(conn, node.name)
        assert list_containerd_refs(conn, node.name) == before
    print(
        f"images step: {round_trips} SSH round trips for {len(plan.batches)} batches; bytes moved as"
        f" reported: {[p.moved for p in seen]} of {to_move} (Docker's sizes)"
    )
    # one read of the node; the record, every batch's transfer and the listing after them; the names
    # the transfers lack (digest references) and the listing that verifies them: whatever the batches
    assert len(plan.batches) > 1 and round_trips == 3, f"{round_trips} SSH round trips"


def test_over_the_operators_ssh_connection_a_batchs_results_come_as_each_command_ends(
    images_cluster: Cluster,
) -> None:
    # what lets the images step write its bytes moved while its transfers run in one round trip: the
    # second command waits for a file that only the report of the first one creates (through the
    # testbed, not the SSH connection the batch holds); told at the batch's end, it would time out
    node = images_cluster.nodes[1]
    options = SshOptions(
        known_hosts=images_cluster.known_hosts.read_text(),
        private_key=images_cluster.private_key.read_text(),
        command_timeout=60.0,
    )
    flag = "/tmp/shimshift-first-told"
    node.exec(["rm", "-f", flag])
    told: list[tuple[int, int]] = []

    def ended(index: int, result: CommandResult) -> None:
        told.append((index, result.exit_status))
        if index == 0:
            assert node.exec(["touch", flag]).exit_status == 0

    wait = f"i=0; while [ ! -e {flag} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ -e {flag} ]"
    commands = [Command(["true"]), Command(["sh", "-c", wait], timeout=30), Command(["true"])]
    with NodeConnection(SshTarget(node.name, node.ssh_host, node.ssh_port), options) as conn:
        results = run_batch(conn, node.name, commands, on_result=ended)
    node.exec(["rm", "-f", flag])
    assert [r.exit_status for r in results] == [0, 0, 0]
    assert told == [(0, 0), (1, 0), (2, 0)]
