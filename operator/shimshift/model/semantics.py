"""Checks on a NodeMigration that its structural schema cannot express.

Each check returns problems located by field path and saying what to do. The operator reports them as a
condition; `shimshift validate` prints them.

The checks run on the defaulted spec even when the schema refused it, so one run reports every problem
(`shimshift.model.migration`). They read raw mappings and take nothing for granted: a field of the wrong
type (a string where a mapping belongs, a number where a string does) is skipped, never a crash, because
the schema has already reported it.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from shimshift.model.cron import never_matches, parse_cron
from shimshift.model.durations import format_duration, parse_duration
from shimshift.model.errors import Problem
from shimshift.model.hooks import HOOK_TIMEOUT_DEFAULT, HOOK_TIMEOUT_MAX
from shimshift.model.limits import InputLimitError, toml_loads
from shimshift.model.names import is_object_name, is_secret_key
from shimshift.model.pem import ca_bundle_problem
from shimshift.model.selectors import parse_label_selector
from shimshift.model.spec import (
    CANARY_TIMEOUT_DEFAULT,
    CANARY_TIMEOUT_MAX,
    CANARY_TIMEOUT_MIN,
    VERIFY_TIMEOUT_DEFAULT,
    VERIFY_TIMEOUT_MAX,
    VERIFY_TIMEOUT_MIN,
    load_zone,
)
from shimshift.model.unsafe import unsafe_problems

_DOCKERSHIM_ENDPOINTS = ("dockershim.sock", "docker.sock", "cri-dockerd.sock")


def _map(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one (a wrong type is the schema's problem to report)."""
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one (a wrong type is the schema's problem to report)."""
    return value if isinstance(value, list) else []


def check_spec(spec: Any) -> list[Problem]:
    """Problems in a defaulted spec that only code can see; fields of the wrong type are skipped."""
    if not isinstance(spec, Mapping):
        return []
    return sorted(
        [
            *_check_selection(spec),
            *_check_rollout(_map(spec.get("rollout"))),
            *_check_windows(_map(spec.get("rollout"))),
            *_check_gates(spec),
            *_check_hooks(spec),
            *_check_drain(_map(spec.get("drain"))),
            *_check_verify(_map(spec.get("verify"))),
            *_check_containerd(_map(spec.get("containerd"))),
            *_check_kubelet(_map(spec.get("kubelet"))),
            *_check_ssh(spec),
            *_check_secret_refs(spec, "spec"),
            *_check_registry_secrets(spec),
            *_check_durations(spec),
        ]
    )


def _check_secret_refs(node: Any, path: str) -> Iterator[Problem]:
    """Every `*SecretRef` anywhere in the spec names a Secret and a data key, never a path.

    The CRD says the same; this walk keeps a path out of the API calls even if a reference is added to
    the CRD without its pattern (see `shimshift.model.names`).
    """
    if isinstance(node, Mapping):
        for name, value in node.items():
            here = f"{path}.{name}"
            if str(name).endswith("SecretRef") and isinstance(value, Mapping):
                if "name" in value and not is_object_name(value["name"]):
                    yield Problem(
                        f"{here}.name",
                        f"invalid value {value['name']!r}: must be the name of a Secret in the "
                        "operator's namespace, never a path (lowercase letters, digits, '-' and '.')",
                    )
                if "key" in value and not is_secret_key(value["key"]):
                    yield Problem(
                        f"{here}.key",
                        f"invalid value {value['key']!r}: must be a Secret data key "
                        "(letters, digits, '-', '_' and '.')",
                    )
            else:
                yield from _check_secret_refs(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _check_secret_refs(item, f"{path}[{i}]")


def _check_selection(spec: Mapping[str, Any]) -> Iterator[Problem]:
    if "nodeSelector" not in spec and not spec.get("nodeNames"):
        yield Problem("spec", "select the nodes to migrate with nodeSelector and/or nodeNames")
    for i, expr in enumerate(_list(_map(spec.get("nodeSelector")).get("matchExpressions"))):
        if not isinstance(expr, Mapping) or not isinstance(expr.get("values") or [], list):
            continue
        has_values = bool(expr.get("values"))
        operator = expr.get("operator")
        if operator in ("In", "NotIn") and not has_values:
            yield Problem(
                f"spec.nodeSelector.matchExpressions[{i}].values",
                f"operator {operator} needs at least one value",
            )
        if operator in ("Exists", "DoesNotExist") and has_values:
            yield Problem(
                f"spec.nodeSelector.matchExpressions[{i}].values",
                f"operator {operator} takes no values; remove them",
            )
    names = [n for n in _list(spec.get("nodeNames")) if isinstance(n, str)]
    for name, count in Counter(names).items():
        if count > 1:
            yield Problem("spec.nodeNames", f'"{name}" is listed {count} times; list each node once')


_DURATIONS = (
    ("rollout", "pauseBetweenNodes"),
    ("drain", "timeout"),
    ("verify", "timeout"),
    ("ssh", "connectTimeout"),
    ("ssh", "commandTimeout"),
)


def _check_durations(spec: Mapping[str, Any]) -> Iterator[Problem]:
    """Every duration within the parser's bounds (the CRD pattern bounds digits, not the value)."""
    for section, key in _DURATIONS:
        value = _map(spec.get(section)).get(key)
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as e:
                yield Problem(f"spec.{section}.{key}", str(e))
    canary_timeout = _map(_map(spec.get("verify")).get("canary")).get("timeout")
    if isinstance(canary_timeout, str):
        try:
            parse_duration(canary_timeout)
        except ValueError as e:
            yield Problem("spec.verify.canary.timeout", str(e))


def _seconds(value: Any, default: str) -> float | None:
    """The duration's seconds, or None when it is out of bounds (`_check_durations` reports that)."""
    try:
        return parse_duration(value if isinstance(value, str) else default)
    except ValueError:
        return None


def _check_rollout(rollout: Mapping[str, Any]) -> Iterator[Problem]:
    yield from _check_int_or_percent(rollout.get("maxUnavailable", 1), "spec.rollout.maxUnavailable")
    if "maxUnavailablePerZone" in rollout:
        yield from _check_int_or_percent(
            rollout["maxUnavailablePerZone"], "spec.rollout.maxUnavailablePerZone"
        )
    label = rollout.get("zoneLabel")
    if isinstance(label, str) and "/" in label:
        prefix, name = label.split("/", 1)
        if len(prefix) > 253 or len(name) > 63:
            yield Problem(
                "spec.rollout.zoneLabel",
                f"{label[:80]!r} is not a label key: at most 253 characters before the '/' and 63 after",
            )
    elif isinstance(label, str) and len(label) > 63:
        yield Problem(
            "spec.rollout.zoneLabel",
            f"{label[:80]!r} is not a label key: a name without a prefix has at most 63 characters",
        )


def _check_int_or_percent(raw: Any, path: str) -> Iterator[Problem]:
    """A count of at least 1 node, or a percentage from 1% to 100%."""
    if isinstance(raw, int) and raw < 1:
        yield Problem(
            path, f"must be at least 1 node, not {raw} (a rollout that may take no node never starts)"
        )
    if isinstance(raw, str) and re.fullmatch(r"[0-9]{1,9}%", raw):
        percent = int(raw[:-1])
        if not 1 <= percent <= 100:
            yield Problem(path, f"must be a percentage from 1% to 100%, not {raw}")


def _check_window_start(path: str, window: Mapping[str, Any]) -> Iterator[Problem]:
    cron = window.get("cron")
    if cron is None:
        if "start" not in window:
            yield Problem(path, 'give the window a start ("22:00", with days) or a cron expression')
        return
    if "start" in window or "days" in window:
        yield Problem(f"{path}.cron", "a window takes cron or start and days, not both; remove one")
    if isinstance(cron, str):
        try:
            parsed = parse_cron(cron)
        except ValueError as e:
            yield Problem(f"{path}.cron", str(e))
            return
        if never_matches(parsed):
            yield Problem(f"{path}.cron", f"{cron!r} matches no day of any year; the window would never open")


#: The longest maintenance window: a week, so one window every day of the week may be open throughout.
MAX_WINDOW = 7 * 24 * 3600.0


def _check_windows(rollout: Mapping[str, Any]) -> Iterator[Problem]:
    zone = rollout.get("timeZone", "UTC")
    if isinstance(zone, str):
        try:
            load_zone(zone)
        except ValueError as e:
            yield Problem("spec.rollout.timeZone", str(e))
    for i, window in enumerate(_list(rollout.get("windows"))):
        yield from _check_window_start(f"spec.rollout.windows[{i}]", _map(window))
        duration = _map(window).get("duration")
        if not isinstance(duration, str):
            continue
        path = f"spec.rollout.windows[{i}].duration"
        try:
            seconds = parse_duration(duration)
        except ValueError as e:
            yield Problem(path, str(e))
            continue
        if seconds <= 0:
            yield Problem(path, "must be longer than 0s (a window that is never open starts nothing)")
        elif seconds > MAX_WINDOW:
            yield Problem(
                path,
                f"{duration} is longer than 168h (7 days); "
                "for no restriction, leave spec.rollout.windows out",
            )
    selector = rollout.get("blockingPodSelector")
    if selector and isinstance(selector, str):
        try:
            parse_label_selector(selector)
        except ValueError as e:
            yield Problem("spec.rollout.blockingPodSelector", str(e))


def _check_drain(drain: Mapping[str, Any]) -> Iterator[Problem]:
    grace = drain.get("gracePeriodSeconds")
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        grace = None  # the schema reports a wrong type
    timeout = _seconds(drain.get("timeout"), "10m")
    if timeout is not None and grace is not None and timeout < grace:
        yield Problem(
            "spec.drain.timeout",
            f"{drain.get('timeout', '10m')} is shorter than gracePeriodSeconds ({grace}s): every drain "
            "would time out while pods are still terminating; raise the timeout",
        )
    if timeout == 0:
        yield Problem("spec.drain.timeout", "must be longer than 0s")
    if drain.get("podSelector") and isinstance(drain["podSelector"], str):
        try:
            parse_label_selector(drain["podSelector"])
        except ValueError as e:
            yield Problem("spec.drain.podSelector", str(e))


def _check_verify(verify: Mapping[str, Any]) -> Iterator[Problem]:
    timeout = _seconds(verify.get("timeout"), VERIFY_TIMEOUT_DEFAULT)
    if timeout is not None and not VERIFY_TIMEOUT_MIN <= timeout <= VERIFY_TIMEOUT_MAX:
        yield Problem(
            "spec.verify.timeout",
            f"must be from {format_duration(VERIFY_TIMEOUT_MIN)} to {format_duration(VERIFY_TIMEOUT_MAX)}, "
            f"not {verify.get('timeout')} (a restarted kubelet needs time to report Ready, and an hour "
            "is ample)",
        )
    canary = _map(verify.get("canary"))
    canary_timeout = _seconds(canary.get("timeout"), CANARY_TIMEOUT_DEFAULT)
    if canary_timeout is not None and not CANARY_TIMEOUT_MIN <= canary_timeout <= CANARY_TIMEOUT_MAX:
        yield Problem(
            "spec.verify.canary.timeout",
            f"must be from {format_duration(CANARY_TIMEOUT_MIN)} to {format_duration(CANARY_TIMEOUT_MAX)}, "
            f"not {canary.get('timeout')} (the canary pod needs seconds to start from an image on the "
            "node, a pull a few minutes at most)",
        )


def _check_containerd(containerd: Mapping[str, Any]) -> Iterator[Problem]:
    version = containerd.get("configVersion", "auto")
    if isinstance(version, str) and version != "auto":
        yield Problem("spec.containerd.configVersion", f'must be "auto", 2, 3 or 4, not {version!r}')
    registries = _list(containerd.get("registries"))
    hosts = [r["host"] for r in registries if isinstance(r, Mapping) and isinstance(r.get("host"), str)]
    for host, count in Counter(hosts).items():
        if count > 1:
            yield Problem(
                "spec.containerd.registries",
                f'host "{host}" appears {count} times; merge its settings into one entry',
            )
    for i, reg in enumerate(registries):
        if isinstance(reg, Mapping):
            yield from _check_registry(f"spec.containerd.registries[{i}]", reg)
    extra = containerd.get("extraConfig", "")
    if extra and isinstance(extra, str):
        allowed = [a for a in _list(containerd.get("allowUnsafe")) if isinstance(a, str)]
        yield from _check_extra_config(extra, allowed)


def _check_registry(path: str, reg: Mapping[str, Any]) -> Iterator[Problem]:
    for j, mirror in enumerate(_list(reg.get("mirrors"))):
        if not isinstance(mirror, str):
            continue
        parts = urlsplit(mirror)
        try:
            parts.port  # noqa: B018 - raises on a bad port
            bad_port = False
        except ValueError:
            bad_port = True
        if parts.scheme not in ("http", "https") or not parts.hostname or bad_port or parts.query:
            yield Problem(
                f"{path}.mirrors[{j}]",
                f"{mirror!r} is not a mirror URL; write e.g. https://mirror.example.com:5000 "
                "(scheme http or https, a host, an optional port and path)",
            )
    if "caSecretRef" in reg and "caBundle" in reg:
        yield Problem(f"{path}.caBundle", "the CA is given twice (caBundle and caSecretRef); keep one")
    if isinstance(reg.get("caBundle"), str):
        bad = ca_bundle_problem(reg["caBundle"])
        if bad:
            yield Problem(
                f"{path}.caBundle",
                f"is not a PEM certificate bundle: {bad} (it is written world-readable on every node)",
            )
    has_ca = "caBundle" in reg or "caSecretRef" in reg
    if reg.get("plainHTTP") and (has_ca or reg.get("skipVerify") or "clientCertSecretRef" in reg):
        yield Problem(
            f"{path}.plainHTTP",
            "plain HTTP uses no TLS, so a CA, client certificate or skipVerify has no effect; "
            "remove them or set plainHTTP: false",
        )
    if reg.get("skipVerify") and has_ca:
        yield Problem(f"{path}.skipVerify", "skipVerify ignores the CA given for this host; keep one of them")


def _check_extra_config(extra: str, allowed: Collection[str]) -> Iterator[Problem]:
    path = "spec.containerd.extraConfig"
    try:
        doc = toml_loads(extra)
    except tomllib.TOMLDecodeError as e:
        yield Problem(path, f"is not valid TOML: {e}")
        return
    except InputLimitError as e:
        yield Problem(path, f"refused: {e}")
        return
    if "version" in doc:
        yield Problem(path, "must not set version; use spec.containerd.configVersion")
    disabled = doc.get("disabled_plugins", [])
    if isinstance(disabled, list) and any("cri" in str(p) for p in disabled):
        yield Problem(path, "must not disable the CRI plugin: kubelet could not use containerd")
    yield from unsafe_problems(doc, allowed)


def _check_kubelet(kubelet: Mapping[str, Any]) -> Iterator[Problem]:
    endpoint = kubelet.get("runtimeEndpoint", "")
    if isinstance(endpoint, str) and any(endpoint.endswith(sock) for sock in _DOCKERSHIM_ENDPOINTS):
        yield Problem(
            "spec.kubelet.runtimeEndpoint",
            f"{endpoint} is a Docker endpoint; point kubelet at containerd, e.g. "
            "unix:///run/containerd/containerd.sock",
        )


def _check_ssh(spec: Mapping[str, Any]) -> Iterator[Problem]:
    ssh = spec.get("ssh")
    if ssh is None:
        if spec.get("mode") == "Migrate":
            yield Problem("spec.ssh", "is required when mode is Migrate (shimshift changes nodes over SSH)")
        return
    if not isinstance(ssh, Mapping):
        return
    if "privateKeySecretRef" not in ssh and spec.get("mode") == "Migrate":
        yield Problem("spec.ssh.privateKeySecretRef", "is required when mode is Migrate")
    if ssh.get("hostKeyPolicy", "Strict") == "Strict" and "knownHostsSecretRef" not in ssh:
        yield Problem(
            "spec.ssh.knownHostsSecretRef",
            "is required with hostKeyPolicy Strict (the default): give the nodes' known_hosts, "
            "or set hostKeyPolicy: AcceptNew to trust each node's key on first use",
        )
    if ssh.get("user", "root") != "root" and not ssh.get("sudo"):
        yield Problem("spec.ssh.sudo", f"must be true when user is {ssh['user']!r} (not root)")
    if _seconds(ssh.get("connectTimeout"), "10s") == 0:
        yield Problem("spec.ssh.connectTimeout", "must be longer than 0s")
    if _seconds(ssh.get("commandTimeout"), "5m") == 0:
        yield Problem("spec.ssh.commandTimeout", "must be longer than 0s")


#: The Secrets spec.ssh reads, by field; none of them may also be registry material.
SSH_SECRET_FIELDS = ("privateKeySecretRef", "knownHostsSecretRef")


def ssh_secret_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Secret name -> the spec.ssh field that names it."""
    ssh = _map(spec.get("ssh"))
    names: dict[str, str] = {}
    for field in SSH_SECRET_FIELDS:
        ref = ssh.get(field)
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
            names.setdefault(ref["name"], f"spec.ssh.{field}")
    return names


def credential_secret_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Secret name -> the field that names it, for every Secret of credentials: the SSH Secrets and
    the notification URLs' Secret (its URLs carry webhook tokens)."""
    names = ssh_secret_names(spec)
    ref = _map(_map(spec.get("notifications")).get("urlSecretRef"))
    if isinstance(ref.get("name"), str):
        names.setdefault(ref["name"], "spec.notifications.urlSecretRef")
    return names


def _check_registry_secrets(spec: Mapping[str, Any]) -> Iterator[Problem]:
    """A registry's CA or client certificate never comes from an SSH Secret (nor the notification URLs'
    Secret): a CA is written world-readable on every node, so caSecretRef naming the SSH key's Secret
    would publish the key."""
    ssh = credential_secret_names(spec)
    if not ssh:
        return
    for i, reg in enumerate(_list(_map(spec.get("containerd")).get("registries"))):
        if not isinstance(reg, Mapping):
            continue
        for field in ("caSecretRef", "clientCertSecretRef"):
            ref = reg.get(field)
            name = ref.get("name") if isinstance(ref, Mapping) else None
            if isinstance(name, str) and name in ssh:
                what = (
                    "an SSH Secret" if ssh[name].startswith("spec.ssh.") else "the notification URLs' Secret"
                )
                yield Problem(
                    f"spec.containerd.registries[{i}].{field}",
                    f"names Secret {name}, which {ssh[name]} names too: {what} is never used as "
                    "registry material (it would be written onto the nodes); put the registry's "
                    "certificate(s) in a Secret of their own",
                )


def _check_regexp(value: Any, path: str) -> Iterator[Problem]:
    if isinstance(value, str) and value:
        try:
            re.compile(value)
        except re.error as e:
            yield Problem(path, f"{value[:80]!r} is not a regular expression: {e}")


def _check_hooks(spec: Mapping[str, Any]) -> Iterator[Problem]:
    """spec.rollout.hooks.pre and .post: a namespace, a pod template with containers that each name an
    image, a timeout above 0 and at most HOOK_TIMEOUT_MAX, a restartPolicy a Job accepts."""
    hooks = _map(_map(spec.get("rollout")).get("hooks"))
    for kind in ("pre", "post"):
        if kind not in hooks:
            continue
        path = f"spec.rollout.hooks.{kind}"
        hook = hooks[kind]
        if not isinstance(hook, Mapping):
            continue  # the schema says what is wrong with it
        namespace = hook.get("namespace")
        if not isinstance(namespace, str) or not re.fullmatch(
            r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace
        ):
            yield Problem(f"{path}.namespace", f"must name the namespace the Job runs in, not {namespace!r}")
        timeout = hook.get("timeout", HOOK_TIMEOUT_DEFAULT)
        if isinstance(timeout, str):
            try:
                seconds = parse_duration(timeout)
            except ValueError as e:
                yield Problem(f"{path}.timeout", str(e))
            else:
                if not 0 < seconds <= HOOK_TIMEOUT_MAX:
                    yield Problem(
                        f"{path}.timeout",
                        f"must be longer than 0s and at most {format_duration(HOOK_TIMEOUT_MAX)}, "
                        f"not {timeout}",
                    )
        template = _map(hook.get("template"))
        pod = _map(template.get("spec"))
        containers = _list(pod.get("containers"))
        if not containers:
            yield Problem(
                f"{path}.template.spec.containers", "the hook's pod template needs at least one container"
            )
        for part in ("initContainers", "containers"):
            for i, container in enumerate(_list(pod.get(part))):
                where = f"{path}.template.spec.{part}[{i}]"
                if not isinstance(container, Mapping):
                    yield Problem(where, "must be a container")
                    continue
                if not isinstance(container.get("name"), str) or not container.get("name"):
                    yield Problem(f"{where}.name", "every container needs a name")
                if not isinstance(container.get("image"), str) or not container.get("image"):
                    yield Problem(f"{where}.image", "every container needs an image")
        restart = pod.get("restartPolicy")
        if restart is not None and restart not in ("Never", "OnFailure"):
            yield Problem(
                f"{path}.template.spec.restartPolicy",
                f'must be "Never" (the default) or "OnFailure" for a Job, not {restart!r}',
            )


def _check_gates(spec: Mapping[str, Any]) -> Iterator[Problem]:
    """spec.rollout.gates: one form of Prometheus gate, regexps that compile, an http(s) URL without
    credentials in it (they go in bearerTokenSecretRef), no SSH Secret as a token or CA, durations."""
    gates = _map(_map(spec.get("rollout")).get("gates"))
    path = "spec.rollout.gates"
    for key, default in (("timeout", "2h"), ("interval", "1m")):
        value = gates.get(key, default)
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as e:
                yield Problem(f"{path}.{key}", str(e))
                continue
            if seconds <= 0:
                yield Problem(f"{path}.{key}", f"must be more than 0s (got {value!r})")
    if "prometheus" not in gates:
        return
    prom = _map(gates.get("prometheus"))
    here = f"{path}.prometheus"
    if bool(prom.get("query")) == ("alerts" in prom):
        yield Problem(
            here,
            "give exactly one of query (an expression that must return nothing, or values under "
            "threshold) and alerts (the firing alerts, less the ignored ones)",
        )
    if "alerts" in prom and prom.get("threshold") is not None:
        yield Problem(
            f"{here}.threshold", "applies to query only: any alert left after the filters closes the gate"
        )
    url = prom.get("url")
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            yield Problem(
                f"{here}.url", f"{url[:80]!r} is not an http:// or https:// URL (http://prometheus:9090)"
            )
        elif parts.username or parts.password:
            yield Problem(
                f"{here}.url",
                "carries credentials: put a token in bearerTokenSecretRef instead (never in the URL)",
            )
    alerts = _map(prom.get("alerts"))
    yield from _check_regexp(alerts.get("alertFilterRegexp"), f"{here}.alerts.alertFilterRegexp")
    for label, pattern in _map(alerts.get("ignoreLabels")).items():
        yield from _check_regexp(pattern, f"{here}.alerts.ignoreLabels.{label}")
    value = prom.get("requestTimeout")
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError as e:
            yield Problem(f"{here}.requestTimeout", str(e))
    ssh = ssh_secret_names(spec)
    for field in ("bearerTokenSecretRef", "caSecretRef"):
        ref = _map(prom.get(field))
        name = ref.get("name")
        if isinstance(name, str) and name in ssh:
            yield Problem(
                f"{here}.{field}",
                f"names Secret {name}, which {ssh[name]} names too: put the Prometheus token or CA in a "
                "Secret of its own",
            )
