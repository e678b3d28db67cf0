"""The operator's Valid=False condition lists every problem of a refused spec at once, as
`shimshift validate` does: schema and semantic problems, each with its field path."""

from __future__ import annotations

from collections.abc import Callable

from shimshift.engine import CONDITION_MESSAGE_MAX
from shimshift.entry import handlers
from shimshift.model.status import Phase
from tests.unit.engine.conftest import make_engine
from tests.unit.engine.fakes import Clock, FakeCluster, FakeNodes, manifest, workers

reconcile: Callable[..., object] = handlers.reconcile


def test_a_refused_spec_gets_one_condition_naming_its_schema_and_its_semantic_problems(clock: Clock) -> None:
    cluster = FakeCluster(workers(1), clock)
    runtime = handlers.Runtime(make_engine(cluster, FakeNodes(cluster), clock))
    cluster.create(manifest())
    bad = manifest(mode="Migrat", rollout={"maxUnavailable": "150%"}, drain={"gracePeriodSeconds": "30"})

    reconcile(body=bad, memo={"runtime": runtime})

    status = cluster.status()
    assert status.phase == Phase.FAILED
    (condition,) = status.conditions
    assert (condition.type, condition.status, condition.reason) == ("Valid", "False", "InvalidSpec")
    assert condition.message == (
        "NodeMigration m: "
        "spec.drain.gracePeriodSeconds: must be of type integer, not string ('30'); "
        'spec.mode: Unsupported value: "Migrat": supported values: "Plan", "Migrate"; '
        "spec.rollout.maxUnavailable: must be a percentage from 1% to 100%, not 150%"
    )
    assert not cluster.nodes["w1"].unschedulable


def test_a_condition_too_long_for_every_problem_ends_on_a_whole_problem_and_counts_the_rest(
    clock: Clock,
) -> None:
    cluster = FakeCluster(workers(1), clock)
    runtime = handlers.Runtime(make_engine(cluster, FakeNodes(cluster), clock))
    cluster.create(manifest())
    registries = [
        {"host": f"r{i}.example.com", "mirrors": [f"ftp://mirror-{j}.example.com/a-path" for j in range(5)]}
        for i in range(8)
    ]
    bad = manifest(containerd={"registries": registries})  # 40 mirrors that are not mirror URLs

    reconcile(body=bad, memo={"runtime": runtime})

    (condition,) = cluster.status().conditions
    assert len(condition.message) <= CONDITION_MESSAGE_MAX
    shown = condition.message.count("is not a mirror URL")
    assert 0 < shown < 40
    assert condition.message.endswith(
        f"is not a mirror URL; write e.g. https://mirror.example.com:5000 (scheme http or https, a host, "
        f"an optional port and path); and {40 - shown} more problems: run `shimshift validate` on the "
        "manifest for the full list"
    )
