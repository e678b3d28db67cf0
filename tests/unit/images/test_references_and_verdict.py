"""Reference normalization (as containerd names images), the verdict by image ID, undo and report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shimshift.model.facts import DockerImage, NodeFacts
from shimshift.model.spec import Images
from shimshift.model.status import ImageCounts
from shimshift.steps.images.plan import ImageSkipReason, normalize_reference, plan_images, registry_host
from shimshift.steps.images.verdict import (
    ContainerdImage,
    ImagesOutcome,
    conflicting_refs,
    image_counts,
    images_report,
    missing_refs,
    refs_to_undo,
    verify_images,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("team/app:1", "docker.io/team/app:1"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
        ("localhost/app:1", "localhost/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("registry.corp.test:5443/a/b/c:v1", "registry.corp.test:5443/a/b/c:v1"),
        ("Upper/app:1", "Upper/app:1"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"nginx:1.25@{DIGEST}", f"docker.io/library/nginx:1.25@{DIGEST}"),
        ("k8s.gcr.io/pause:3.6", "k8s.gcr.io/pause:3.6"),
    ],
)
def test_references_are_normalized_like_containerd_names_them(ref: str, normalized: str) -> None:
    assert normalize_reference(ref) == normalized


def test_registry_host_of_a_short_name_is_docker_hub() -> None:
    assert registry_host("nginx") == "docker.io"
    assert registry_host("registry.corp.test:5443/a:1") == "registry.corp.test:5443"


component = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)?", fullmatch=True)
host = st.one_of(
    st.just(""), st.from_regex(r"[a-z]+\.[a-z]+(:[0-9]{2,5})?/", fullmatch=True), st.just("localhost/")
)
tag = st.one_of(st.just(""), st.from_regex(r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
digest = st.one_of(st.just(""), st.from_regex(r"@sha256:[0-9a-f]{64}", fullmatch=True))


@given(host, st.lists(component, min_size=1, max_size=3), tag, digest)
def test_normalization_is_idempotent_and_always_names_a_registry(
    h: str, path: list[str], t: str, d: str
) -> None:
    ref = h + "/".join(path) + t + d
    once = normalize_reference(ref)
    assert normalize_reference(once) == once
    first = once.split("/", 1)[0]
    assert "." in first or ":" in first or first == "localhost"
    assert once.endswith(d or t or ":latest")


IMG = DockerImage("sha256:" + "c" * 64, ("app:1", "app:latest"), (f"app@{DIGEST}",), size=10)
PLAN = plan_images(NodeFacts(node="n1", images=(IMG,), containerd_root_free_bytes=1 << 40), Images())


def listed(*refs: str, image_id: str = IMG.id) -> list[ContainerdImage]:
    return [ContainerdImage(r, "sha256:" + "m" * 64, image_id) for r in refs]


def test_verification_passes_only_when_every_name_resolves_to_dockers_image_id() -> None:
    names = ("docker.io/library/app:1", "docker.io/library/app:latest", f"docker.io/library/app@{DIGEST}")
    assert verify_images(PLAN, listed(*names)) == ()
    problems = verify_images(PLAN, listed(*names[:2]))
    assert problems == (f"docker.io/library/app@{DIGEST} (image {IMG.id}) is missing from containerd k8s.io",)
    wrong = verify_images(PLAN, listed(*names, image_id="sha256:" + "d" * 64))
    assert len(wrong) == 3 and all("Docker has " + IMG.id in p for p in wrong)


def test_missing_refs_lists_the_names_to_tag_per_image() -> None:
    assert missing_refs(PLAN, listed("docker.io/library/app:1")) == {
        IMG.id: ("docker.io/library/app:latest", f"docker.io/library/app@{DIGEST}")
    }


def test_undo_removes_only_names_that_were_not_there_before() -> None:
    before = ["docker.io/library/old:1", "sha256:" + "1" * 64]
    now = [*before, "docker.io/library/app:1", "sha256:" + "c" * 64]
    assert refs_to_undo(before, now) == ("docker.io/library/app:1", "sha256:" + "c" * 64)
    assert refs_to_undo(now, now) == ()


def test_the_report_says_what_moved_what_was_pulled_and_what_was_skipped_and_why() -> None:
    dangling = DockerImage("sha256:" + "9" * 64)
    plan = plan_images(
        NodeFacts(node="n1", images=(IMG, dangling), containerd_root_free_bytes=1 << 40),
        Images(),
        reachable_registries={"docker.io"},
    )
    outcome = ImagesOutcome(
        transferred=(IMG.id,), fallbacks={IMG.id: "pull failed: 503"}, bytes_streamed=1234
    )
    report = images_report(plan, outcome)
    assert report["transferred"] == [
        {
            "id": IMG.id,
            "refs": list(plan.moves[0].refs),
            "priority": "Other",
            "pullFailed": "pull failed: 503",
        }
    ]
    assert report["pulled"] == []
    assert [s["reason"] for s in report["skipped"]] == [str(ImageSkipReason.DANGLING)]
    assert report["bytesStreamed"] == 1234
    assert image_counts(plan, outcome) == ImageCounts(transferred=1, pulled=0, skipped=1, bytes=1234)


def test_images_an_earlier_run_moved_count_as_moved_by_the_migration_not_as_skipped() -> None:
    plan = plan_images(
        NodeFacts(node="n1", images=(IMG,), containerd_root_free_bytes=1 << 40),
        Images(),
        reachable_registries=set(),
    )
    resumed = ImagesOutcome(resumed_transferred=(IMG.id,), resumed_bytes=IMG.size)

    report = images_report(plan, resumed)

    assert image_counts(plan, resumed) == ImageCounts(transferred=1, pulled=0, skipped=0, bytes=IMG.size)
    assert report["transferred"] == [
        {"id": IMG.id, "refs": list(plan.moves[0].refs), "priority": "Other", "byEarlierRun": True}
    ]
    assert report["skipped"] == [] and report["bytesByEarlierRun"] == IMG.size


def test_names_containerd_holds_for_another_image_are_reported_as_replaced() -> None:
    other = "sha256:" + "d" * 64
    listed_now = [*listed("docker.io/library/app:1"), *listed("docker.io/library/app:latest", image_id=other)]
    assert conflicting_refs(PLAN, listed_now) == ("docker.io/library/app:latest",)
    report = images_report(PLAN, ImagesOutcome(refs_replaced=("docker.io/library/app:latest",)))
    assert report["replacedNames"] == ["docker.io/library/app:latest"]
