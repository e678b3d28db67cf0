"""Parsing a NodeMigration into typed values: defaults, types, and problems named by field path."""

from __future__ import annotations

from typing import Any

import pytest

from shimshift.model import ValidationError, parse_nodemigration
from shimshift.model.spec import (
    CgroupDriver,
    ControlPlanePolicy,
    DockerPolicy,
    HostKeyPolicy,
    ImageStrategy,
    IntOrPercent,
    Mode,
    RollbackPolicy,
)
from tests import pki
from tests.unit.conftest import minimal_manifest

CA = pki.CA_PEM


def problems_of(body: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(body, crd)
    return [str(p) for p in info.value.problems]


def test_a_minimal_manifest_gets_the_schema_defaults(crd: dict[str, Any]) -> None:
    nm = parse_nodemigration(minimal_manifest(), crd)
    spec = nm.spec
    assert nm.name == "m"
    assert spec.mode is Mode.PLAN
    assert spec.node_names == ("node-1",)
    assert spec.rollout.max_unavailable == IntOrPercent(1, False)
    assert spec.rollout.max_failures == 0
    assert spec.rollout.control_plane is ControlPlanePolicy.LAST
    assert spec.drain.timeout == 600.0
    assert spec.drain.ignore_daemonsets is True
    assert spec.drain.grace_period_seconds is None
    assert spec.verify.timeout == 300.0
    assert spec.containerd.config_version is None
    assert spec.containerd.cgroup_driver is CgroupDriver.AUTO
    assert spec.containerd.import_docker_config is True
    assert spec.kubelet.runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert spec.images.strategy is ImageStrategy.AUTO
    assert spec.ssh is None
    assert spec.docker is DockerPolicy.KEEP
    assert spec.rollback is RollbackPolicy.AUTOMATIC


def test_a_full_manifest_maps_every_field(crd: dict[str, Any]) -> None:
    body = minimal_manifest(
        mode="Migrate",
        nodeSelector={"matchLabels": {"pool": "a"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]},
        rollout={"maxUnavailable": "25%", "maxFailures": 2, "pauseBetweenNodes": "1m30s", "paused": True},
        drain={
            "timeout": "20m",
            "gracePeriodSeconds": 30,
            "podSelector": "app=web",
            "onTimeout": "DeletePods",
        },
        verify={"timeout": "12m30s"},
        containerd={
            "configVersion": 2,
            "sandboxImage": "registry.k8s.io/pause:3.6",
            "cgroupDriver": "systemd",
            "registries": [{"host": "docker.io", "mirrors": ["https://m.example.com"], "caBundle": CA}],
            "extraConfig": "[plugins]\n",
        },
        images={"strategy": "Transfer", "include": ["*"], "exclude": ["*debug*"]},
        ssh={
            "user": "ops",
            "sudo": True,
            "port": 2222,
            "hostKeyPolicy": "AcceptNew",
            "privateKeySecretRef": {"name": "k"},
            "connectTimeout": "5s",
            "jumpHost": {"host": "bastion.example.com"},
        },
        docker="Stop",
        rollback="Manual",
    )
    spec = parse_nodemigration(body, crd).spec
    assert spec.mode is Mode.MIGRATE
    assert spec.node_selector is not None and spec.node_selector.matches({"pool": "a", "x": ""})
    assert not spec.node_selector.matches({"pool": "a"})
    assert spec.rollout.max_unavailable.resolve(10) == 2
    assert spec.rollout.pause_between_nodes == 90.0
    assert spec.rollout.paused is True
    assert spec.drain.grace_period_seconds == 30
    assert spec.verify.timeout == 750.0
    assert spec.containerd.config_version == 2
    assert spec.containerd.registries[0].mirrors == ("https://m.example.com",)
    assert spec.containerd.registries[0].ca_bundle == CA
    assert spec.ssh is not None
    assert spec.ssh.port == 2222
    assert spec.ssh.host_key_policy is HostKeyPolicy.ACCEPT_NEW
    assert spec.ssh.private_key is not None and spec.ssh.private_key.key == "ssh-privatekey"
    assert spec.ssh.jump_host is not None and spec.ssh.jump_host.port == 22
    assert spec.ssh.connect_timeout == 5.0
    assert spec.docker is DockerPolicy.STOP


@pytest.mark.parametrize(
    ("total", "raw", "expected"),
    [(10, 3, 3), (10, "25%", 2), (3, "10%", 1), (4, "100%", 4), (7, "50%", 3)],
)
def test_max_unavailable_resolves_counts_and_percentages_rounding_down_but_never_to_zero(
    total: int, raw: int | str, expected: int
) -> None:
    assert IntOrPercent.parse(raw).resolve(total) == expected


# Ten and more distinct kinds of bad input, each with the message a user sees.
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "enum",
        {"mode": "migrate"},
        'spec.mode: Unsupported value: "migrate": supported values: "Plan", "Migrate"',
    ),
    (
        "misspelt field",
        {"rollout": {"maxUnavailabel": 2}},
        'spec.rollout.maxUnavailabel: unknown field "maxUnavailabel"; did you mean "maxUnavailable"?',
    ),
    (
        "duration",
        {"drain": {"timeout": "ten minutes"}},
        "spec.drain.timeout: invalid value 'ten minutes': must be a duration such as 30s, 5m or 1h30m",
    ),
    (
        "verify duration",
        {"verify": {"timeout": "5 minutes"}},
        "spec.verify.timeout: invalid value '5 minutes': must be a duration such as 30s, 5m or 1h30m",
    ),
    (
        "verify too short",
        {"verify": {"timeout": "10s"}},
        "spec.verify.timeout: must be from 30s to 1h, not 10s",
    ),
    (
        "verify too long",
        {"verify": {"timeout": "1h0m1s"}},
        "spec.verify.timeout: must be from 30s to 1h, not 1h0m1s",
    ),
    ("verify zero", {"verify": {"timeout": "0s"}}, "spec.verify.timeout: must be from 30s to 1h, not 0s"),
    (
        "verify over a year",
        {"verify": {"timeout": "9999h"}},
        "spec.verify.timeout: '9999h' is longer than the maximum of 8760h",
    ),
    (
        "percent over 100",
        {"rollout": {"maxUnavailable": "150%"}},
        "spec.rollout.maxUnavailable: must be a percentage from 1% to 100%, not 150%",
    ),
    (
        "zero nodes",
        {"rollout": {"maxUnavailable": 0}},
        "spec.rollout.maxUnavailable: must be at least 1 node",
    ),
    (
        "int-or-string garbage",
        {"rollout": {"maxUnavailable": "two"}},
        "spec.rollout.maxUnavailable: invalid value 'two': must be a count such as 2 or a percentage",
    ),
    (
        "wrong type",
        {"rollout": {"maxFailures": "1"}},
        "spec.rollout.maxFailures: must be of type integer, not string ('1')",
    ),
    (
        "bound",
        {"ssh": {"port": 70000, "hostKeyPolicy": "AcceptNew"}},
        "spec.ssh.port: must be <= 65535, not 70000",
    ),
    (
        "mirror not a URL",
        {"containerd": {"registries": [{"host": "docker.io", "mirrors": ["mirror:5000"]}]}},
        "spec.containerd.registries[0].mirrors[0]: 'mirror:5000' is not a mirror URL",
    ),
    (
        "CA twice",
        {
            "containerd": {
                "registries": [{"host": "r.example.com", "caBundle": CA, "caSecretRef": {"name": "ca"}}]
            }
        },
        "spec.containerd.registries[0].caBundle: the CA is given twice (caBundle and caSecretRef); keep one",
    ),
    (
        "CA not PEM",
        {"containerd": {"registries": [{"host": "r.example.com", "caBundle": "hello"}]}},
        "spec.containerd.registries[0].caBundle: is not a PEM certificate",
    ),
    (
        "CA bundle with its key appended",
        {"containerd": {"registries": [{"host": "r.example.com", "caBundle": CA + pki.CLIENT_KEY_PEM}]}},
        "spec.containerd.registries[0].caBundle: is not a PEM certificate bundle: PEM block 2 is a private key",
    ),
    (
        "CA from the SSH key Secret",
        {
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "kh"}},
            "containerd": {
                "registries": [
                    {"host": "r.example.com", "caSecretRef": {"name": "ssh", "key": "ssh-privatekey"}}
                ]
            },
        },
        "spec.containerd.registries[0].caSecretRef: names Secret ssh, which spec.ssh.privateKeySecretRef names "
        "too: an SSH Secret is never used as registry material",
    ),
    (
        "CA from the notification URLs' Secret",
        {
            "notifications": {"urlSecretRef": {"name": "hooks"}},
            "containerd": {"registries": [{"host": "r.example.com", "caSecretRef": {"name": "hooks"}}]},
        },
        "spec.containerd.registries[0].caSecretRef: names Secret hooks, which spec.notifications.urlSecretRef "
        "names too: the notification URLs' Secret is never used as registry material",
    ),
    (
        "client certificate from the known_hosts Secret",
        {
            "ssh": {"privateKeySecretRef": {"name": "ssh"}, "knownHostsSecretRef": {"name": "kh"}},
            "containerd": {"registries": [{"host": "r.example.com", "clientCertSecretRef": {"name": "kh"}}]},
        },
        "spec.containerd.registries[0].clientCertSecretRef: names Secret kh, which "
        "spec.ssh.knownHostsSecretRef names too",
    ),
    (
        "duplicate registry host",
        {"containerd": {"registries": [{"host": "a.io"}, {"host": "a.io"}]}},
        'spec.containerd.registries: host "a.io" appears 2 times',
    ),
    (
        "plain HTTP with CA",
        {"containerd": {"registries": [{"host": "a.io", "plainHTTP": True, "caSecretRef": {"name": "c"}}]}},
        "spec.containerd.registries[0].plainHTTP: plain HTTP uses no TLS",
    ),
    (
        "bad registry host",
        {"containerd": {"registries": [{"host": "https://a.io"}]}},
        "spec.containerd.registries[0].host: invalid value 'https://a.io'",
    ),
    (
        "drain shorter than grace",
        {"drain": {"timeout": "30s", "gracePeriodSeconds": 60}},
        "spec.drain.timeout: 30s is shorter than gracePeriodSeconds (60s)",
    ),
    (
        "pod selector syntax",
        {"drain": {"podSelector": "app in web"}},
        "spec.drain.podSelector: cannot parse 'app in web'",
    ),
    (
        "extra TOML syntax",
        {"containerd": {"extraConfig": "[plugins\n"}},
        "spec.containerd.extraConfig: is not valid TOML",
    ),
    (
        "extra TOML disables CRI",
        {"containerd": {"extraConfig": 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'}},
        "spec.containerd.extraConfig: must not disable the CRI plugin",
    ),
    (
        "docker endpoint",
        {"kubelet": {"runtimeEndpoint": "unix:///var/run/dockershim.sock"}},
        "spec.kubelet.runtimeEndpoint: unix:///var/run/dockershim.sock is a Docker endpoint",
    ),
    ("migrate without ssh", {"mode": "Migrate"}, "spec.ssh: is required when mode is Migrate"),
    (
        "strict without known_hosts",
        {"ssh": {"privateKeySecretRef": {"name": "k"}}},
        "spec.ssh.knownHostsSecretRef: is required with hostKeyPolicy Strict",
    ),
    (
        "non-root without sudo",
        {"ssh": {"user": "ops", "hostKeyPolicy": "AcceptNew"}},
        "spec.ssh.sudo: must be true when user is 'ops' (not root)",
    ),
    (
        "In without values",
        {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        "spec.nodeSelector.matchExpressions[0].values: operator In needs at least one value",
    ),
    ("duplicate node", {"nodeNames": ["a", "a"]}, 'spec.nodeNames: "a" is listed 2 times'),
    (
        "missing required",
        {"nodeSelector": {"matchExpressions": [{"operator": "Exists"}]}},
        "spec.nodeSelector.matchExpressions[0].key: Required value",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "expected"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_rejected_with_a_message_naming_the_field(
    crd: dict[str, Any], kind: str, spec: dict[str, Any], expected: str
) -> None:
    messages = problems_of(minimal_manifest(**spec), crd)
    assert any(m.startswith(expected) for m in messages), messages


@pytest.mark.parametrize(("raw", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("90s", 90.0)])
def test_the_verify_timeout_takes_its_bounds_and_any_duration_between(
    crd: dict[str, Any], raw: str, seconds: float
) -> None:
    assert parse_nodemigration(minimal_manifest(verify={"timeout": raw}), crd).spec.verify.timeout == seconds


def test_no_node_selection_is_rejected(crd: dict[str, Any]) -> None:
    body = minimal_manifest()
    del body["spec"]["nodeNames"]
    assert problems_of(body, crd) == ["spec: select the nodes to migrate with nodeSelector and/or nodeNames"]


def test_an_empty_node_selector_selects_every_node_as_in_kubernetes(crd: dict[str, Any]) -> None:
    body = minimal_manifest(nodeSelector={})
    del body["spec"]["nodeNames"]
    spec = parse_nodemigration(body, crd).spec
    assert spec.node_selector is not None and spec.node_selector.matches({"any": "label"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"apiVersion": "v1", "kind": "NodeMigration", "metadata": {"name": "a"}, "spec": {}},
            "apiVersion: must be shimshift.io/v1alpha1, not 'v1'",
        ),
        (
            {"apiVersion": "shimshift.io/v1alpha1", "kind": "Node", "metadata": {"name": "a"}, "spec": {}},
            "kind: must be NodeMigration, not 'Node'",
        ),
        (
            {"apiVersion": "shimshift.io/v1alpha1", "kind": "NodeMigration", "spec": {"nodeNames": ["a"]}},
            "metadata: Required value",
        ),
        (
            {
                "apiVersion": "shimshift.io/v1alpha1",
                "kind": "NodeMigration",
                "metadata": {"name": "A_b"},
                "spec": {"nodeNames": ["a"]},
            },
            "metadata.name: 'A_b' is not a valid name",
        ),
        (
            {"apiVersion": "shimshift.io/v1alpha1", "kind": "NodeMigration", "metadata": {"name": "a"}},
            "spec: Required value",
        ),
        (["not", "a", "mapping"], "expected a NodeMigration object (a YAML mapping), got list"),
    ],
)
def test_documents_that_are_not_nodemigrations_are_rejected(
    crd: dict[str, Any], body: Any, expected: str
) -> None:
    assert any(m.startswith(expected) for m in problems_of(body, crd))


def test_validation_error_message_lists_every_problem_with_its_source(crd: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        parse_nodemigration(minimal_manifest(mode="x", docker="Delete"), crd, source="f.yaml")
    text = str(info.value)
    assert text.startswith("f.yaml: ")
    assert "spec.mode" in text and "spec.docker" in text
