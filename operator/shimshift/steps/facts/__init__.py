"""The facts step: the read-only probe of a node (`playbooks/facts.yaml`, script `facts.sh`, one SSH round
trip), parsed into `NodeFacts` (`steps.facts.parse`). A node shimshift refuses as it is
(`steps.facts.refuse`) fails here: a Windows or OpenShift node from its Node object, before any SSH; an
RKE1, k3s or RKE2 node, or Docker containers outside the kubelet the spec has not let stop, from its
facts; a GPU node while NVIDIA's GPU operator runs (`model.gpuoperator`); a node whose network
containerd's CRI could not set up (no CNI configuration and no CNI DaemonSet to write one, one it cannot
load, a `--network-plugin` or CNI directory it has no equivalent of: the plan's CNI blockers,
`steps.facts.cni`), from its facts and the config.toml it would get. Then the node port decides what the
changing steps will write, so a spec this node cannot take (a refused registry CA, a missing Secret)
fails here too, before the lock, the cordon and the drain. It records the order the node runs in
(`model.steporder.node_staging`: spec.staging, or AfterCordon where containerd.service's KillMode is not
`process`). Changes nothing, so there is nothing to undo.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shimshift.model import keys
from shimshift.model.errors import NodeError, ShimshiftError
from shimshift.model.facts import NodeFacts
from shimshift.model.gpuoperator import gpu_evidence, gpu_operator_refusal_text
from shimshift.model.keys import StepId
from shimshift.model.kubenet import kubenet_translation
from shimshift.model.migration import NodeMigration
from shimshift.model.status import NodeRecord
from shimshift.model.steporder import node_staging
from shimshift.playbooks import shipped_playbook
from shimshift.rendering import render_node_config
from shimshift.steps.base import NodePort, Outcome, Step, StepContext
from shimshift.steps.execute import run_playbook
from shimshift.steps.facts.cni import cni_refusal, node_cni
from shimshift.steps.facts.parse import parse_facts
from shimshift.steps.facts.refuse import node_refusal, refusal
from shimshift.steps.runner import CommandRunner

PLAYBOOK = "facts"


def probe(runner: CommandRunner, *, kubelet_version: str | None = None) -> NodeFacts:
    """The read-only probe: one round trip. `kubelet_version` (the Node's nodeInfo) fills in when the
    node has no `kubelet` binary on PATH."""
    result = run_playbook(runner, shipped_playbook(PLAYBOOK), {})
    return parse_facts(runner.node, result.output, kubelet_version=kubelet_version)


def summary(facts: NodeFacts) -> str:
    return (
        f"docker {facts.docker_version or '?'}, containerd {facts.containerd_version or '?'}, "
        f"kubelet {facts.kubelet.version or '?'}, {len(facts.images)} image(s)"
    )


def _run(ctx: StepContext, migration: NodeMigration, port: NodePort, record: NodeRecord) -> Outcome:
    name = record.name
    # a Windows or OpenShift node: refused from its Node object, before any connection to it
    view = ctx.cluster.read_node(name)
    if view is not None and (why := node_refusal(view.labels, view.annotations, view.operating_system)):
        raise NodeError(name, why)
    facts = port.facts(name)
    if view is not None and view.pod_cidrs:  # what a kubenet node's bridge network allocates from
        facts = replace(facts, pod_cidrs=tuple(view.pod_cidrs))
    # an RKE1/k3s/RKE2 node, or Docker containers outside the kubelet the spec has not let stop: refused
    # untouched (the switch would stop them with Docker)
    if (why := refusal(migration.spec.docker_outside_containers, facts)) is not None:
        raise NodeError(name, why)
    # a GPU node while NVIDIA's GPU operator runs: refused untouched (its toolkit reconfigures the
    # runtime of a pool's nodes on the other runtime); the Deployments are read for GPU nodes only
    evidence = gpu_evidence(view.labels if view is not None else {}, facts.daemon_json)
    if evidence and (why := gpu_operator_refusal_text(evidence, ctx.cluster.gpu_operators())) is not None:
        raise NodeError(name, why)
    # what the changing steps will write is decided now, before the lock, cordon and drain: a spec
    # this node cannot take (a refused registry CA, a missing Secret) fails here, untouched
    port.prepare(name, facts)
    # the node's network as containerd's CRI will find it: what the plan blocks (no CNI configuration
    # and no CNI DaemonSet to write one, a configuration containerd cannot load, a network flag
    # containerd has no equivalent of, a kubelet unit flag the switch cannot edit safely) is refused
    # here, untouched
    if (why := _network_refusal(ctx, migration, port, name, facts)) is not None:
        raise NodeError(name, why)
    ctx.remember_facts(migration, name, facts)
    host_key = port.host_key_fingerprint(name) or record.host_key_fingerprint
    # the order this node runs in, decided once from its facts (the plan reports the same): not staged
    # before its cordon where containerd's restart would kill Docker's containers
    staging, why = node_staging(migration.spec.staging, facts)
    message = summary(facts) + (f"; {why}" if why else "")
    return Outcome(True, replace(record, host_key_fingerprint=host_key, staging=staging.value), message)


def _network_refusal(
    ctx: StepContext, migration: NodeMigration, port: NodePort, name: str, facts: NodeFacts
) -> str | None:
    """The plan's CNI blockers (`steps.facts.cni`) on the config.toml the configure step will write."""
    config: Mapping[str, Any] = {}
    try:
        rendered = render_node_config(migration.spec, facts, port.registry_material())
        text = next((f.text for f in rendered.files if f.path == keys.CONTAINERD_CONFIG), None)
        config = tomllib.loads(text) if text is not None else {}
    except (ShimshiftError, tomllib.TOMLDecodeError):
        pass  # port.prepare decides what a render that fails means; the flags' directories then
    writers: tuple[str, ...] = ()
    conf_dir = node_cni(facts, config)[0]
    if facts.cni_conf_dirs.get(conf_dir) == () and kubenet_translation(facts) is None:
        # an empty conf_dir: only then does a CNI DaemonSet that will write there matter (one LIST)
        writers = ctx.cluster.cni_config_writers(name, conf_dir)
    return cni_refusal(facts, config, writers)


STEP = Step(StepId.FACTS, _run, scripts=("facts",))
