"""The emulator's Faults, applied by the proxy: error answers that never reach the upstream, a seeded
10% rate that fails exactly the requests its seed says, latency, and triggers at an exact write."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from testbed.apiproxy import ProxiedApi
from testbed.apirequests.faults import WRITE_VERBS, RequestRecord
from testbed.kubeapi import KubeApi

from .conftest import wait_until

pytestmark = pytest.mark.integration

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}}


def test_an_injected_error_is_a_real_status_and_never_reaches_the_upstream(
    proxied: ProxiedApi, upstream: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    proxied.seed(NODE)
    upstream.requests.clear()
    rule = proxied.faults.add(429, times=2, verb="patch", resource="nodes", name="n1")
    answers = []
    for _ in range(2):
        try:
            core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
        except ApiException as e:
            answers.append((e.status, json.loads(e.body or "null")))
    assert [(code, body["kind"], body["reason"], body["code"]) for code, body in answers] == [
        (429, "Status", "TooManyRequests", 429)
    ] * 2
    core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    assert rule.hits == 2 and rule.remaining == 0
    assert [r.status for r in proxied.requests.filter(verb="patch")] == [429, 429, 200]
    assert [r.status for r in upstream.requests.filter(verb="patch")] == [200]
    assert proxied.must_get("nodes", "n1")["metadata"]["labels"] == {"a": "b"}


def expected_draws(seed: int, rate: float, verbs: list[str]) -> list[int | None]:
    """What ``add_random(rate, (429, 500, 409), seed=seed)`` does to requests of these verbs, in order:
    two draws per request, 409 only for writes (the rule's documented contract, replayed here)."""
    rng = random.Random(seed)
    fates: list[int | None] = []
    for verb in verbs:
        fail, pick = rng.random() < rate, rng.random()
        statuses = [s for s in (429, 500, 409) if s != 409 or verb in WRITE_VERBS]
        fates.append(statuses[int(pick * len(statuses))] if fail else None)
    return fates


def test_a_seeded_ten_percent_rate_fails_exactly_the_requests_its_seed_picks(
    proxied: ProxiedApi, upstream: KubeApi, core: kubernetes.client.CoreV1Api
) -> None:
    proxied.seed(NODE)
    upstream.requests.clear()
    verbs = ["get", "get", "patch", "list"] * 75  # 300 requests: reads and writes
    expected = expected_draws(8, 0.10, verbs)
    rule = proxied.faults.add_random(0.10, (429, 500, 409), seed=8)
    seen: list[int | None] = []
    for i, verb in enumerate(verbs):
        try:
            if verb == "get":
                core.read_node("n1")
            elif verb == "patch":
                core.patch_node("n1", {"metadata": {"annotations": {"i": str(i)}}})
            else:
                core.list_node()
            seen.append(None)
        except ApiException as e:
            seen.append(e.status)
    proxied.faults.clear()

    assert seen == expected
    hits = [s for s in expected if s is not None]
    by_status = {s: hits.count(s) for s in set(hits)}
    print(f"\nproxy faults: {rule.hits} of {rule.considered} requests, {by_status}")
    assert (rule.considered, rule.hits, rule.by_status) == (300, len(hits), by_status)
    assert 0.07 <= len(hits) / 300 <= 0.13, len(hits)
    assert all(s != 409 for s, v in zip(seen, verbs, strict=True) if v not in WRITE_VERBS)
    # a failed request never reached the emulator; every other one did, once
    assert len([r for r in upstream.requests if r.resource == "nodes"]) == 300 - len(hits)


def test_latency_delays_a_request_without_failing_it(
    proxied: ProxiedApi, core: kubernetes.client.CoreV1Api
) -> None:
    proxied.faults.add_latency(0.4, verb="list", resource="nodes", times=1)
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started < 0.4


CLIENT = """
import sys, kubernetes
kubernetes.config.load_kube_config(config_file=sys.argv[1])
body = {"metadata": {"name": "written"}, "data": {"k": "v"}}
kubernetes.client.CoreV1Api().create_namespaced_config_map("default", body)
print("acknowledged", flush=True)
"""


def run_client_killed_at_its_write(proxied: ProxiedApi, *, before: bool) -> tuple[Any, list[Any]]:
    """A client process that creates ConfigMap ``written`` and is SIGKILLed by a trigger at that write;
    returns its exit and what the upstream held when the trigger fired."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(proxied.kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(proxied.kubeconfig)},
    )
    at_fire: list[Any] = []

    def kill(rec: RequestRecord) -> None:
        at_fire.append(proxied.get("configmaps", "written", "default"))
        os.kill(proc.pid, signal.SIGKILL)

    proxied.faults.add_trigger(
        lambda rec: rec.verb == "create" and rec.resource == "configmaps", kill, before=before
    )
    out, _ = proc.communicate(timeout=30)
    return (proc.returncode, out), at_fire


def test_a_trigger_after_the_commit_kills_the_client_with_the_object_stored(proxied: ProxiedApi) -> None:
    (code, out), at_fire = run_client_killed_at_its_write(proxied, before=False)
    assert code == -signal.SIGKILL and "acknowledged" not in out
    assert len(at_fire) == 1 and at_fire[0] is not None and at_fire[0]["data"] == {"k": "v"}
    assert proxied.must_get("configmaps", "written", "default")["data"] == {"k": "v"}
    wait_until(
        lambda: [r.status for r in proxied.requests.filter(verb="create")] == [201], what="the 201 logged"
    )


def test_a_trigger_before_the_write_kills_the_client_and_nothing_is_stored(
    proxied: ProxiedApi, upstream: KubeApi
) -> None:
    upstream.requests.clear()
    (code, out), at_fire = run_client_killed_at_its_write(proxied, before=True)
    assert code == -signal.SIGKILL and "acknowledged" not in out
    assert at_fire == [None]
    assert proxied.get("configmaps", "written", "default") is None
    wait_until(
        lambda: [r.status for r in proxied.requests.filter(verb="create")] == [503], what="the 503 logged"
    )
    assert not upstream.requests.filter(verb="create")
