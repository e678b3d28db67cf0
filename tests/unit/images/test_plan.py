"""The image plan: what moves, in which order, how, in which batches, and whether it fits."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from shimshift.model.facts import DockerImage, K8sContainer, KubeletFacts, NodeFacts, Setting
from shimshift.model.spec import Images, ImageStrategy
from shimshift.steps.images.plan import (
    MIB,
    DiskPolicy,
    ImageMove,
    ImageSkipReason,
    Layer,
    Priority,
    Strategy,
    plan_images,
)

GIB = 1 << 30
PAUSE = DockerImage("sha256:" + "a" * 64, ("k8s.gcr.io/pause:3.6",), size=700_000)
PROXY = DockerImage("sha256:" + "b" * 64, ("k8s.gcr.io/kube-proxy:v1.23.17",), size=100 * MIB, in_use=True)
APP1 = DockerImage("sha256:" + "c" * 64, ("registry.corp.test/team/app:1.0",), size=60 * MIB)
APP2 = DockerImage("sha256:" + "d" * 64, ("registry.corp.test/team/app:1.1",), size=70 * MIB)
NGINX = DockerImage(
    "sha256:" + "e" * 64,
    ("nginx:1.25",),
    ("nginx@sha256:" + "1" * 64,),
    size=150 * MIB,
)
PINNED = DockerImage(
    "sha256:" + "f" * 64, (), ("registry.corp.test/team/db@sha256:" + "2" * 64,), size=80 * MIB
)
DANGLING = DockerImage("sha256:" + "9" * 64, size=10 * MIB)


def facts(*images: DockerImage, present: tuple[str, ...] = (), free: int | None = 100 * GIB) -> NodeFacts:
    return NodeFacts(node="n1", images=images, containerd_images=present, containerd_root_free_bytes=free)


def ids(plan_moves: Iterable[ImageMove]) -> list[str]:
    return [m.image_id for m in plan_moves]


def test_sandbox_image_goes_first_then_images_in_use_then_the_rest() -> None:
    plan = plan_images(facts(APP1, NGINX, PROXY, PAUSE), Images(), sandbox_image="k8s.gcr.io/pause:3.6")
    assert ids(plan.moves) == [PAUSE.id, PROXY.id, APP1.id, NGINX.id]
    assert [m.priority for m in plan.moves] == [
        Priority.SANDBOX,
        Priority.IN_USE,
        Priority.OTHER,
        Priority.OTHER,
    ]


def test_images_already_in_containerd_with_the_same_id_are_skipped() -> None:
    plan = plan_images(facts(APP1, APP2, present=(APP1.id,)), Images())
    assert ids(plan.moves) == [APP2.id]
    assert [(s.image_id, s.reason) for s in plan.skipped] == [(APP1.id, ImageSkipReason.ALREADY_PRESENT)]


def test_exclude_wins_over_include_and_patterns_match_short_or_normalized_names() -> None:
    spec = Images(include=("docker.io/library/*", "registry.corp.test/*"), exclude=("*:1.1",))
    plan = plan_images(facts(APP1, APP2, NGINX, PROXY), spec)
    assert ids(plan.moves) == [APP1.id, NGINX.id]
    reasons = {s.image_id: s.reason for s in plan.skipped}
    assert reasons == {APP2.id: ImageSkipReason.EXCLUDED, PROXY.id: ImageSkipReason.NOT_INCLUDED}


def test_sandbox_image_is_migrated_even_when_include_does_not_name_it_but_not_when_excluded() -> None:
    included = plan_images(
        facts(PAUSE, APP1), Images(include=("registry.corp.test/*",)), sandbox_image=PAUSE.repo_tags[0]
    )
    assert ids(included.moves) == [PAUSE.id, APP1.id]
    excluded = plan_images(facts(PAUSE, APP1), Images(exclude=("*pause*",)), sandbox_image=PAUSE.repo_tags[0])
    assert ids(excluded.moves) == [APP1.id]


def test_untagged_images_without_digest_are_skipped_as_dangling_but_digest_only_images_move() -> None:
    plan = plan_images(facts(DANGLING, PINNED), Images())
    assert ids(plan.moves) == [PINNED.id]
    assert plan.moves[0].digests == ("registry.corp.test/team/db@sha256:" + "2" * 64,)
    assert plan.batches[0].save_refs == (PINNED.id,)
    assert [s.reason for s in plan.skipped] == [ImageSkipReason.DANGLING]


def test_nothing_moves_when_image_migration_is_off() -> None:
    plan = plan_images(facts(APP1, PAUSE), Images(migrate=False), sandbox_image="k8s.gcr.io/pause:3.6")
    assert plan.moves == ()
    assert {s.reason for s in plan.skipped} == {ImageSkipReason.MIGRATION_OFF}
    assert not plan.blocked


def test_auto_pulls_by_digest_only_when_the_registry_answers() -> None:
    reachable = plan_images(facts(NGINX, APP1), Images(), reachable_registries={"docker.io"})
    by_id = {m.image_id: m for m in reachable.moves}
    assert by_id[NGINX.id].strategy is Strategy.PULL
    assert by_id[NGINX.id].pull_ref == "docker.io/library/nginx@sha256:" + "1" * 64
    assert by_id[NGINX.id].may_fall_back
    assert by_id[APP1.id].strategy is Strategy.TRANSFER  # no digest: nothing to pull by
    unreachable = plan_images(facts(NGINX), Images(), reachable_registries={"registry.corp.test"})
    assert unreachable.moves[0].strategy is Strategy.TRANSFER


def test_auto_prefers_the_digest_of_the_repository_the_image_is_tagged_in() -> None:
    image = DockerImage(
        "sha256:" + "7" * 64,
        ("registry.corp.test/team/app:2.0",),
        ("mirror.corp.test/copy/app@sha256:" + "3" * 64, "registry.corp.test/team/app@sha256:" + "4" * 64),
    )
    plan = plan_images(
        facts(image), Images(), reachable_registries={"mirror.corp.test", "registry.corp.test"}
    )
    assert plan.moves[0].pull_ref == "registry.corp.test/team/app@sha256:" + "4" * 64


def test_forced_strategies_override_reachability() -> None:
    transfer = plan_images(
        facts(NGINX), Images(strategy=ImageStrategy.TRANSFER), reachable_registries={"docker.io"}
    )
    assert transfer.moves[0].strategy is Strategy.TRANSFER
    pull = plan_images(facts(NGINX, APP1), Images(strategy=ImageStrategy.PULL))
    assert [(m.strategy, m.pull_ref, m.may_fall_back) for m in pull.moves] == [
        (Strategy.PULL, "docker.io/library/nginx@sha256:" + "1" * 64, False),
        (Strategy.PULL, "registry.corp.test/team/app:1.0", False),
    ]


def test_tags_and_digests_are_kept_in_normalized_form() -> None:
    move = plan_images(facts(NGINX), Images()).moves[0]
    assert move.tags == ("docker.io/library/nginx:1.25",)
    assert move.digests == ("docker.io/library/nginx@sha256:" + "1" * 64,)
    assert move.docker_tags == ("nginx:1.25",)


BASE = Layer("sha256:base", 40 * MIB)


def test_images_sharing_layers_go_in_one_batch_and_each_layer_is_counted_once() -> None:
    layers = {
        APP1.id: (BASE, Layer("sha256:app1", 5 * MIB)),
        APP2.id: (BASE, Layer("sha256:app2", 6 * MIB)),
        NGINX.id: (Layer("sha256:nginx", 150 * MIB),),
    }
    plan = plan_images(facts(APP1, NGINX, APP2), Images(), layers=layers)
    assert [ids(b.images) for b in plan.batches] == [[APP1.id, APP2.id], [NGINX.id]]
    assert [b.bytes for b in plan.batches] == [51 * MIB, 150 * MIB]
    assert plan.batches[0].save_refs == ("registry.corp.test/team/app:1.0", "registry.corp.test/team/app:1.1")
    assert plan.disk.exact and plan.disk.expected_bytes == 201 * MIB


def test_layers_shared_through_a_chain_join_one_batch() -> None:
    layers = {
        APP1.id: (Layer("sha256:x", 1), Layer("sha256:y", 1)),
        NGINX.id: (Layer("sha256:z", 1),),
        APP2.id: (Layer("sha256:y", 1), Layer("sha256:z", 1)),
    }
    plan = plan_images(facts(APP1, NGINX, APP2), Images(), layers=layers)
    assert [ids(b.images) for b in plan.batches] == [[APP1.id, NGINX.id, APP2.id]]


def test_the_sandbox_image_and_pulls_are_batches_of_their_own() -> None:
    layers = {PAUSE.id: (BASE,), APP1.id: (BASE,), NGINX.id: (BASE,)}
    plan = plan_images(
        facts(APP1, NGINX, PAUSE),
        Images(),
        sandbox_image="k8s.gcr.io/pause:3.6",
        layers=layers,
        reachable_registries={"docker.io"},
    )
    assert [(b.strategy, ids(b.images)) for b in plan.batches] == [
        (Strategy.TRANSFER, [PAUSE.id]),
        (Strategy.TRANSFER, [APP1.id]),
        (Strategy.PULL, [NGINX.id]),
    ]


def test_a_batch_is_ordered_by_its_most_urgent_image_and_split_at_the_cap() -> None:
    many = [DockerImage(f"sha256:{i:064x}", (f"registry.corp.test/x/img{i}:1",), size=1) for i in range(5)]
    in_use = DockerImage("sha256:" + "8" * 64, ("registry.corp.test/x/used:1",), size=1, in_use=True)
    layers = {i.id: (BASE,) for i in [*many, in_use]}
    plan = plan_images(facts(*many, in_use), Images(), layers=layers, max_batch_images=4)
    assert [ids(b.images) for b in plan.batches] == [
        [in_use.id, many[0].id, many[1].id, many[2].id],
        [many[3].id, many[4].id],
    ]
    assert [b.index for b in plan.batches] == [0, 1]


def test_without_layer_sizes_the_estimate_is_the_sum_of_image_sizes() -> None:
    plan = plan_images(facts(APP1, APP2), Images(), layers={APP1.id: (Layer("sha256:x"),)})
    assert not plan.disk.exact
    assert plan.disk.expected_bytes == APP1.size + APP2.size


def test_a_disk_shortfall_blocks_the_step_with_the_numbers() -> None:
    plan = plan_images(facts(APP1, APP2, free=300 * MIB), Images())
    assert not plan.disk.ok
    message = plan.blocked
    assert message.startswith("node n1: ")
    assert f"{plan.disk.required_bytes} bytes" in message  # 130 MiB x 2 + 512 MiB margin
    assert plan.disk.required_bytes == 260 * MIB + 512 * MIB
    assert f"({300 * MIB} bytes) is free" in message
    assert "/var/lib/containerd" in message and "spec.images.exclude" in message


def test_unknown_free_space_blocks_and_nothing_to_move_never_blocks() -> None:
    assert "unknown" in plan_images(facts(APP1, free=None), Images()).blocked
    assert plan_images(facts(APP1, free=None, present=(APP1.id,)), Images()).blocked == ""


def test_the_margin_and_copies_come_from_the_policy() -> None:
    policy = DiskPolicy(copies=1.0, margin_bytes=0)
    plan = plan_images(facts(APP1, free=APP1.size), Images(), policy=policy)
    assert plan.disk.ok
    assert not plan.disk.with_free(APP1.size - 1).ok


@pytest.mark.parametrize("free", [0, 1, 771 * MIB])
def test_the_block_message_shows_how_much_more_is_needed(free: int) -> None:
    plan = plan_images(facts(APP1, APP2, free=free), Images())
    shortfall = plan.disk.required_bytes - free
    assert re.search(r"free [\d.]+ [KMG]?i?B more there", plan.blocked)
    assert shortfall > 0


def test_the_kubelets_pod_infra_image_counts_as_the_sandbox_image_when_the_config_names_another() -> None:
    kubelet = KubeletFacts(
        pod_infra_image=Setting(
            "k8s.gcr.io/pause:3.6", "/var/lib/kubelet/kubeadm-flags.env", "pod-infra-container-image"
        )
    )
    node = NodeFacts(node="n1", images=(APP1, PAUSE), kubelet=kubelet, containerd_root_free_bytes=100 * GIB)
    plan = plan_images(
        node, Images(include=("registry.corp.test/*",)), sandbox_image="registry.k8s.io/pause:3.9"
    )
    assert [(m.image_id, m.priority) for m in plan.moves] == [
        (PAUSE.id, Priority.SANDBOX),
        (APP1.id, Priority.OTHER),
    ]


@pytest.mark.parametrize(
    "image", [APP2.id, APP2.id.removeprefix("sha256:")[:12], "registry.corp.test/team/app:1.1"]
)
def test_an_image_a_pods_container_was_created_from_counts_as_in_use_by_id_short_id_or_reference(
    image: str,
) -> None:
    container = K8sContainer("k8s_app_web-1_default_uid_0", "app", "web-1", "default", image, running=True)
    node = NodeFacts(
        node="n1", images=(APP1, APP2), containers=(container,), containerd_root_free_bytes=100 * GIB
    )
    plan = plan_images(node, Images())
    assert [(m.image_id, m.priority) for m in plan.moves] == [
        (APP2.id, Priority.IN_USE),
        (APP1.id, Priority.OTHER),
    ]
