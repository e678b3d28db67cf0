"""`build_plan`: the whole plan report as a function of (spec, cluster, node facts, now).

The operator calls it for `mode: Plan` (with the cluster it read and the facts its read-only probe
gathered, and the registry Secrets' material), the CLI calls it with a snapshot. The files a node's
migration writes are the configure and switch steps' own plans (`steps.configure.SharedRenders`,
`steps.switch.SharedKubeletEdits`). Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from shimshift.model.errors import NodeError, Problem, ShimshiftError, ValidationError
from shimshift.model.facts import NodeFacts
from shimshift.model.gates import GateReading
from shimshift.model.selectors import parse_label_selector
from shimshift.model.spec import LabelSelector, NodeMigrationSpec
from shimshift.model.steporder import order_reason, step_order
from shimshift.model.timestamps import iso
from shimshift.planning.apiserver import (
    OPT_IN,
    ApiServers,
    api_server_hosts,
    evidence,
    sole_api_nodes,
    static_pod_image_findings,
)
from shimshift.planning.canary import canary_findings
from shimshift.planning.cluster import Cluster, Node
from shimshift.planning.cni import cni_findings
from shimshift.planning.dataroot import data_root_findings, root_move_findings
from shimshift.planning.dockerdeps import DockerDependency, Severity, find_docker_dependencies, socket_note
from shimshift.planning.drain import DrainContext, NodeDrain, PodAction, plan_node_drain
from shimshift.planning.estimate import ASSUMPTIONS, NodeEstimate, estimate_node, estimate_waves
from shimshift.planning.faq import FAQ
from shimshift.planning.findings import Finding, Level, name_some, sorted_findings
from shimshift.planning.gates import rollout_gates
from shimshift.planning.gpu import gpu_fleet_findings, gpu_node_findings
from shimshift.planning.hooks import hook_findings
from shimshift.planning.operatorpod import operator_pod_findings
from shimshift.planning.pdb import evaluate_pdbs
from shimshift.planning.preflight import check_images, check_node, node_runtime
from shimshift.planning.report import (
    EXIT_BLOCKERS,
    EXIT_CLEAN,
    EXIT_WARNINGS,
    DrainSummary,
    NodeReport,
    NodeStatus,
    PlanReport,
    SpecSummary,
    Summary,
    Verdict,
    WavePlan,
)
from shimshift.planning.report import SCHEMA_VERSION as REPORT_SCHEMA
from shimshift.planning.runtimeclasses import runtime_class_findings
from shimshift.planning.selection import NodeSkipReason, Skipped, select_nodes
from shimshift.planning.settings import setting_findings
from shimshift.planning.undo import plan_note
from shimshift.planning.waves import Wave, plan_waves
from shimshift.rendering import RegistryMaterial
from shimshift.steps.configure import SharedRenders
from shimshift.steps.filesection import FileSection
from shimshift.steps.images.fit import ImageSummary, summarise_images
from shimshift.steps.switch import SharedKubeletEdits


class FilesPlan(Protocol):
    """A step's plan of the files it writes on a node; raises ShimshiftError when they cannot be planned."""

    def __call__(self, spec: NodeMigrationSpec, node: Node, facts: NodeFacts) -> FileSection: ...


def selector_text(selector: LabelSelector | None) -> str:
    if selector is None:
        return ""
    parts = [f"{k}={v}" if v else f"{k}=" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        if req.operator in ("In", "NotIn"):
            parts.append(f"{req.key} {req.operator.lower()} ({','.join(req.values)})")
        else:
            parts.append(req.key if req.operator == "Exists" else f"!{req.key}")
    return ",".join(parts) or "(every node)"


def _spec_summary(spec: NodeMigrationSpec, after_cordon: Sequence[str] = ()) -> SpecSummary:
    """The spec as the report states it; `after_cordon` names the nodes that run the AfterCordon order
    although spec.staging is BeforeCordon (their StagingAfterCordon findings say why)."""
    d = spec.drain
    drain = (
        f"timeout {int(d.timeout)}s, onTimeout {d.on_timeout.value}, "
        f"ignoreDaemonSets {str(d.ignore_daemonsets).lower()}, "
        f"deleteEmptyDirData {str(d.delete_emptydir_data).lower()}, force {str(d.force).lower()}"
        + (f", gracePeriodSeconds {d.grace_period_seconds}" if d.grace_period_seconds is not None else "")
        + (f", podSelector {d.pod_selector}" if d.pod_selector else "")
    )
    im = spec.images
    images = f"migrate {str(im.migrate).lower()}, strategy {im.strategy.value}"
    if im.include:
        images += f", include {', '.join(im.include)}"
    if im.exclude:
        images += f", exclude {', '.join(im.exclude)}"
    return SpecSummary(
        mode=spec.mode.value,
        selector=selector_text(spec.node_selector),
        node_names=spec.node_names,
        max_unavailable=str(spec.rollout.max_unavailable),
        control_plane=spec.rollout.control_plane.value,
        pause_between_nodes_seconds=int(spec.rollout.pause_between_nodes),
        drain=drain,
        images=images,
        docker=spec.docker.value,
        rollback=spec.rollback.value,
        staging=spec.staging.value,
        step_order=tuple(str(s) for s in step_order(spec.staging, spec.rollout.hooks.steps)),
        step_order_reason=order_reason(spec.staging)
        + (
            f" Not on {name_some(after_cordon)}: their containerd.service would kill Docker's containers at "
            "containerd's restart (KillMode not process), so they run in the AfterCordon order "
            "(StagingAfterCordon)."
            if after_cordon
            else ""
        ),
    )


def _files(
    plan: FilesPlan, what: str, code: str, spec: NodeMigrationSpec, node: Node, facts: NodeFacts | None
) -> tuple[FileSection, list[Finding]]:
    if facts is None:
        return FileSection.not_computed("not computed: no facts for this node"), []
    try:
        try:
            section = plan(spec, node, facts)
        except RecursionError as e:  # a node file nested past what a parser checks: that node's blocker
            raise NodeError(node.name, "a file in its facts is nested too deep to read") from e
    except ShimshiftError as e:
        finding = Finding(
            code,
            Level.BLOCKER,
            f"the {what} cannot be planned: {e}",
            "fix the cause named above; the configure/switch step would fail the same way",
            node.name,
        )
        return FileSection.not_computed(f"not computed: {e}"), [finding]
    warnings = [
        Finding(f"{code.removesuffix('Failed')}Warning", Level.WARNING, w, "", node.name, what)
        for w in section.warnings
    ]
    return section, warnings


def _drain_summary(drain: NodeDrain) -> DrainSummary:
    return DrainSummary(
        evict=drain.count(PodAction.EVICT),
        ignored_daemonset=drain.count(PodAction.IGNORE_DAEMONSET),
        skipped_mirror=drain.count(PodAction.SKIP_MIRROR),
        not_selected=drain.count(PodAction.NOT_SELECTED),
        refused=drain.count(PodAction.REFUSED),
        blocked_now=len(drain.evictions_blocked_now),
        max_grace_seconds=drain.max_grace_seconds,
    )


def _status(findings: Sequence[Finding]) -> NodeStatus:
    levels = {f.level for f in findings}
    if Level.BLOCKER in levels:
        return NodeStatus.BLOCKED
    return NodeStatus.WARNINGS if Level.WARNING in levels else NodeStatus.READY


def _wave_contention(
    waves: Sequence[Wave], drains: Mapping[str, NodeDrain], allowed: Mapping[str, int]
) -> list[Finding]:
    """Nodes drained together share PDB budgets: say where a wave must wait for replacements."""
    out = []
    for wave in waves:
        if len(wave.nodes) < 2:
            continue
        counts: Counter[str] = Counter()
        spread: dict[str, set[str]] = {}
        for name in wave.nodes:
            for p in drains[name].pods:
                if p.uses_budget and len(p.pdbs) == 1:
                    counts[p.pdbs[0]] += 1
                    spread.setdefault(p.pdbs[0], set()).add(name)
        for key, count in sorted(counts.items()):
            if len(spread[key]) > 1 and 0 < allowed.get(key, 0) < count:
                out.append(
                    Finding(
                        "WaveSharesPdb",
                        Level.INFO,
                        f"wave {wave.index} evicts {count} pods under PDB {key} from {len(spread[key])} "
                        f"nodes and it allows {allowed[key]} at a time: these drains wait on each other",
                        "a smaller spec.rollout.maxUnavailable makes each wave's drains independent",
                        "",
                        key,
                    )
                )
    return out


def _dependency_findings(deps: Sequence[DockerDependency]) -> list[Finding]:
    out = []
    for dep in deps:
        level = Level.INFO if dep.severity == Severity.LOW else Level.WARNING
        out.append(
            Finding(
                f"Docker{dep.kind.value}",
                level,
                f"{dep.namespace}/{dep.workload} ({dep.pods} pod(s) on {name_some(dep.nodes, 3)}): "
                f"{dep.evidence} [{dep.severity.value}]",
                dep.advice,
                "",
                dep.subject,
            )
        )
    return out


def build_plan(
    spec: NodeMigrationSpec,
    cluster: Cluster,
    facts_by_node: Mapping[str, NodeFacts],
    now: dt.datetime,
    *,
    name: str = "",
    facts_taken_at: str = "",
    source: str = "",
    material: RegistryMaterial | None = None,
    gate_readings: Sequence[GateReading] | None = None,
    operator_node: str = "",
    api_servers: ApiServers | None = None,
) -> PlanReport:
    """The plan report for `spec` on `cluster`; `facts_by_node` holds whatever the probe gathered.

    `gate_readings`: what spec.rollout.gates say now, as the operator read them (None: not read, as
    offline, where the report lists the gates without their state).

    `material`: the registry Secrets as the operator resolved them (`shimshift.entry.nodeport`), so
    the plan renders what Migrate mode writes; None offline, where such registries are blockers.

    `operator_node`: the node the operator that plans runs on ("": unknown, as offline without
    --operator-node); when selected it is the last wave, as the rollout migrates it.

    `api_servers`: where the API servers run, as the operator read them (`planning.apiserver`); None
    offline, where the kube-apiserver mirror pods of `cluster` are all there is (no Endpoints)."""
    # renders and kubelet edits are shared between look-alike nodes of this plan
    containerd_plan, kubelet_plan = SharedRenders(material), SharedKubeletEdits()
    try:
        pod_selector = parse_label_selector(spec.drain.pod_selector)
    except ValueError as e:
        raise ValidationError([Problem("spec.drain.podSelector", str(e))]) from e
    api = api_servers or ApiServers(
        api_server_hosts(cluster.pods), None, "a plan from a snapshot holds no Endpoints"
    )
    api_nodes = sole_api_nodes(api)
    selection = select_nodes(spec, cluster.nodes, api)
    waves = plan_waves(spec.rollout, selection.selected, operator_node, api_nodes)
    wave_of = {n: w.index for w in waves for n in w.nodes}
    controllers = cluster.controller_index()
    pdb_states, pod_pdbs = evaluate_pdbs(cluster.pdbs, cluster.pods, controllers)
    allowed = {k: s.disruptions_allowed for k, s in pdb_states.items()}
    ctx = DrainContext(
        spec.drain,
        pod_selector,
        controllers,
        pdb_states,
        pod_pdbs,
        {p.key: p.unhealthy_pod_eviction_policy for p in cluster.pdbs},
    )
    by_node = cluster.pods_by_node()
    drains: dict[str, NodeDrain] = {}
    estimates: dict[str, NodeEstimate] = {}
    plans: list[NodeReport] = []
    fleet: list[Finding] = []
    for node in sorted(selection.selected, key=lambda n: (wave_of[n.name], n.name)):
        facts = facts_by_node.get(node.name)
        if facts is not None and node.pod_cidrs and not facts.pod_cidrs:  # as the facts step sets them
            facts = replace(facts, pod_cidrs=node.pod_cidrs)
        drain = plan_node_drain(node.name, by_node.get(node.name, ()), ctx)
        drains[node.name] = drain
        findings = list(drain.findings) + check_node(spec, node, facts)
        images: ImageSummary | None = None
        if facts is not None:
            images = summarise_images(spec, facts)
            findings += check_images(node.name, images)
        containerd, more = _files(
            containerd_plan, "containerd configuration", "ContainerdRenderFailed", spec, node, facts
        )
        findings += more
        kubelet, more = _files(kubelet_plan, "kubelet edit", "KubeletEditFailed", spec, node, facts)
        findings += more
        findings += setting_findings(spec, facts, containerd)
        findings += runtime_class_findings(cluster.runtime_classes, node, containerd)
        findings += gpu_node_findings(node, facts, cluster.gpu_operators)
        findings += data_root_findings(facts)
        findings += root_move_findings(facts, containerd)
        if facts is not None:
            findings += cni_findings(facts, containerd, by_node.get(node.name, ()))
        findings += canary_findings(spec, node.name, facts)
        findings += hook_findings(spec, name or "nodemigration", node.name)
        if node.name == operator_node:
            findings += operator_pod_findings(cluster.pods, cluster.nodes, operator_node)
            findings.append(
                Finding(
                    "RunsOperator",
                    Level.INFO,
                    "the node runs the operator: migrated last, after every other selected node; its "
                    "drain evicts the operator, and the replacement pod (or a standby replica) resumes "
                    "the rollout from its recorded step",
                    "",
                    node.name,
                )
            )
        if node.name in api_nodes:
            findings.append(_api_downtime_finding(api, node.name, spec.verify.timeout))
            findings += static_pod_image_findings(spec, node.name, by_node.get(node.name, ()), facts)
        estimates[node.name] = estimate_node(drain, images, allowed)
        node_findings = sorted_findings(findings)
        plans.append(
            NodeReport(
                name=node.name,
                role="control-plane" if node.control_plane else "worker",
                wave=wave_of[node.name],
                status=_status(node_findings),
                ready=node.ready,
                cordoned=node.unschedulable,
                runtime_version=node.runtime_version,
                runtime=node_runtime(spec, node, facts) if facts is not None else None,
                drain=_drain_summary(drain),
                pods=drain.pods,
                images=images,
                containerd=containerd,
                kubelet=kubelet,
                estimate_seconds=estimates[node.name].seconds,
                findings=node_findings,
            )
        )
    fleet += _wave_contention(waves, drains, allowed)
    selected = {n.name for n in selection.selected}
    deps = find_docker_dependencies(cluster.pods, controllers, frozenset(selected))
    fleet += _dependency_findings(deps)
    fleet += gpu_fleet_findings(cluster.nodes, selection.selected, facts_by_node, cluster.gpu_operators)
    missing = [s.node for s in selection.skipped if s.reason == NodeSkipReason.NOT_FOUND]
    if missing:
        fleet.append(
            Finding(
                "NodeNotFound",
                Level.WARNING,
                f"spec.nodeNames names nodes that do not exist: {name_some(missing)}",
                "fix the names in spec.nodeNames",
            )
        )
    fleet += _api_server_findings(api, selection.skipped)
    if not selection.selected:
        fleet.append(
            Finding(
                "NothingSelected",
                Level.WARNING,
                "no node needs migrating: the selector matches none, or every match is skipped",
                "check spec.nodeSelector / spec.nodeNames against the node labels",
            )
        )
    drivers = sorted({p.runtime.containerd_cgroup.split(" ")[0] for p in plans if p.runtime is not None})
    if len(drivers) > 1:
        fleet.append(
            Finding(
                "MixedCgroupDrivers",
                Level.INFO,
                f"the fleet mixes cgroup drivers ({', '.join(drivers)}); each node keeps its kubelet's",
                "",
            )
        )
    every = sorted_findings([*fleet, *(f for p in plans for f in p.findings)])
    blockers = tuple(f for f in every if f.level == Level.BLOCKER)
    warnings = tuple(f for f in every if f.level == Level.WARNING)
    notes = tuple(f for f in every if f.level == Level.INFO)
    wave_seconds, total = estimate_waves(waves, estimates, spec.rollout.pause_between_nodes)
    verdict, code = (
        (Verdict.BLOCKED, EXIT_BLOCKERS)
        if blockers
        else (Verdict.WARNINGS, EXIT_WARNINGS)
        if warnings
        else (Verdict.CLEAN, EXIT_CLEAN)
    )
    relevant = sorted({k for p in plans for pod in p.pods for k in pod.pdbs})
    images_all = [p.images for p in plans if p.images is not None]
    summary = Summary(
        verdict=verdict,
        exit_code=code,
        nodes_selected=len(plans),
        nodes_skipped=len(selection.skipped),
        nodes_blocked=sum(1 for p in plans if p.status == NodeStatus.BLOCKED),
        nodes_with_warnings=sum(1 for p in plans if p.status == NodeStatus.WARNINGS),
        waves=len(waves),
        pods_to_evict=sum(p.drain.evict for p in plans),
        evictions_blocked_now=sum(p.drain.blocked_now for p in plans),
        images=sum(i.count for i in images_all),
        image_bytes=sum(i.bytes for i in images_all),
        docker_dependencies=len(deps),
        blockers=len(blockers),
        warnings=len(warnings),
        estimate_seconds=total,
    )
    return PlanReport(
        schema_version=REPORT_SCHEMA,
        name=name,
        generated_at=iso(now),
        facts_taken_at=facts_taken_at,
        source=source,
        spec=_spec_summary(
            spec, [p.name for p in plans if any(f.code == "StagingAfterCordon" for f in p.findings)]
        ),
        rollout_gates=rollout_gates(spec, cluster, selection, now, gate_readings),
        summary=summary,
        waves=tuple(
            WavePlan(w.index, w.nodes, w.control_plane, s, w.runs_operator, w.api_downtime)
            for w, s in zip(waves, wave_seconds, strict=True)
        ),
        nodes=tuple(plans),
        skipped=selection.skipped,
        pdbs=tuple(pdb_states[k] for k in relevant),
        docker_dependencies=deps,
        docker_socket_note=socket_note(spec.docker),
        rollback_window=plan_note(spec, name or "<name>", [n.name for n in plans]),
        blockers=blockers,
        warnings=warnings,
        notes=notes,
        estimate_assumptions=ASSUMPTIONS,
        faq=FAQ,
    )


def _api_downtime_finding(api: ApiServers, node: str, wait: float) -> Finding:
    """The selected node runs the only API server (spec.rollout.allowApiDowntime is true)."""
    return Finding(
        "ApiDowntime",
        Level.WARNING,
        f"the node runs the cluster's only API server ({evidence(api, node)}): it is migrated last of "
        "all, and the Kubernetes API is unavailable during its switch, until the kubelet has recreated "
        "its static pods under containerd (their images and the sandbox image are moved before the "
        f"switch); the operator waits up to {wait:.0f}s (spec.verify.timeout) for the API's /readyz",
        "plan the API's downtime: nothing can schedule, scale or be reconciled while it is down",
        node,
    )


def _api_server_findings(api: ApiServers, skipped: Sequence[Skipped]) -> list[Finding]:
    """Fleet findings: nodes skipped as the only API server, and Endpoints that could not be read."""
    out: list[Finding] = []
    sole = [s.node for s in skipped if s.reason == NodeSkipReason.SOLE_API_SERVER]
    if sole:
        out.append(
            Finding(
                "SoleApiServerSkipped",
                Level.WARNING,
                f"not migrated: {name_some(sole)} runs the cluster's only API server; migrating it takes "
                "the API down while its kubelet switches",
                OPT_IN,
            )
        )
    if not api.known and len(api.hosts) == 1:  # the only case the Endpoints would have decided
        out.append(
            Finding(
                "ApiEndpointsUnreadable",
                Level.WARNING,
                "the Endpoints default/kubernetes could not be read "
                f"({api.unreadable or 'no reason given'}): "
                f"{api.hosts[0]} is the only node with a kube-apiserver mirror pod, so it is taken as "
                "running the only API server",
                "let the operator get endpoints/kubernetes in namespace default (the chart's RBAC does)",
            )
        )
    return out
