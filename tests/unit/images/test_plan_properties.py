"""Properties of the image plan over arbitrary Docker inventories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import Images, ImageStrategy
from shimshift.steps.images.plan import Layer, Priority, Strategy, plan_images

TAGS = [f"registry.corp.test/app{i}:v{j}" for i in range(4) for j in range(2)] + ["k8s.gcr.io/pause:3.6"]
LAYERS = [Layer(f"sha256:{i:064x}", (i + 1) * 1000) for i in range(8)]


@st.composite
def inventories(draw: st.DrawFn) -> tuple[NodeFacts, dict[str, tuple[Layer, ...]]]:
    count = draw(st.integers(0, 12))
    images, layers = [], {}
    tags_left = list(TAGS)
    for n in range(count):
        tags = draw(st.lists(st.sampled_from(tags_left), max_size=2, unique=True)) if tags_left else []
        tags_left = [t for t in tags_left if t not in tags]
        digests = draw(st.lists(st.sampled_from([f"registry.corp.test/app{n}@sha256:{n:064x}"]), max_size=1))
        image_id = f"sha256:{n + 100:064x}"
        images.append(
            DockerImage(
                image_id, tuple(tags), tuple(digests), draw(st.integers(0, 10**9)), draw(st.booleans())
            )
        )
        layers[image_id] = tuple(draw(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=3, unique=True)))
    present = draw(st.lists(st.sampled_from([i.id for i in images]), unique=True)) if images else []
    free = draw(st.one_of(st.none(), st.integers(0, 10**10)))
    facts = NodeFacts(
        node="n", images=tuple(images), containerd_images=tuple(present), containerd_root_free_bytes=free
    )
    return facts, layers


@settings(max_examples=80, deadline=None)
@given(
    inventories(),
    st.sampled_from(list(ImageStrategy)),
    st.sets(st.sampled_from(["registry.corp.test", "k8s.gcr.io"])),
)
def test_every_image_is_planned_or_skipped_once_in_order_with_shared_layers_together(
    inventory: tuple[NodeFacts, dict[str, tuple[Layer, ...]]], strategy: ImageStrategy, reachable: set[str]
) -> None:
    facts, layers = inventory
    plan = plan_images(
        facts,
        Images(strategy=strategy),
        sandbox_image="k8s.gcr.io/pause:3.6",
        reachable_registries=reachable,
        layers=layers,
        max_batch_images=100,
    )
    moved = [m.image_id for m in plan.moves]
    skipped = [s.image_id for s in plan.skipped]
    assert sorted(moved + skipped) == sorted(i.id for i in facts.images)
    assert not set(moved) & set(facts.containerd_images)
    urgency = [min(m.priority.rank for m in b.images) for b in plan.batches]
    assert urgency == sorted(urgency)
    assert all(len(b.images) == 1 for b in plan.batches if b.strategy is Strategy.PULL)
    batch_of = {m.image_id: b.index for b in plan.batches for m in b.images}
    grouped = [
        m
        for b in plan.batches
        if b.strategy is Strategy.TRANSFER
        for m in b.images
        if m.priority is not Priority.SANDBOX
    ]
    for a in grouped:
        for b in grouped:
            if {x.diff_id for x in layers[a.image_id]} & {x.diff_id for x in layers[b.image_id]}:
                assert batch_of[a.image_id] == batch_of[b.image_id]
    assert plan.disk.ok == (
        plan.disk.expected_bytes == 0
        or (
            facts.containerd_root_free_bytes is not None
            and facts.containerd_root_free_bytes >= plan.disk.required_bytes
        )
    )
    assert (plan.blocked == "") == plan.disk.ok
